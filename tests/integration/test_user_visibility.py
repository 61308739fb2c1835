"""People's personal data (users) is under row-level security too: a tenant sees its own members only."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from controlplane.core.db import fetch, tenant_tx, user_tx
from tenants import service
from tests.integration.conftest import staff_principal


async def _emails() -> set[str]:
    return {row["email"] for row in await fetch("select email from users")}


async def test_users_are_visible_only_through_membership_or_as_oneself(
    client: Any, app_connection: asyncpg.Connection, report: Any
) -> None:
    staff = staff_principal()
    tenant_a = await service.create_tenant(staff, service.NewTenant(name="A", slug="users-a", currency="EUR"))
    tenant_b = await service.create_tenant(staff, service.NewTenant(name="B", slug="users-b", currency="EUR"))
    alice = await service.add_member(staff, tenant_a.id, "alice@a.example", "tenant_admin")
    await service.add_member(staff, tenant_b.id, "bob@b.example", "tenant_admin")
    await service.add_member(staff, tenant_a.id, "both@ab.example", "tenant_member")
    await service.add_member(staff, tenant_b.id, "both@ab.example", "tenant_member")

    async with tenant_tx(tenant_a.id):
        seen_by_a = await _emails()
    async with tenant_tx(tenant_b.id):
        seen_by_b = await _emails()
    async with user_tx(alice.user_id):
        seen_by_alice = await _emails()
    async with tenant_tx(uuid.uuid4()):
        seen_by_unknown = await _emails()
    without_context = await app_connection.fetchval("select count(*) from users")

    assert seen_by_a == {"alice@a.example", "both@ab.example"}
    assert seen_by_b == {"bob@b.example", "both@ab.example"}
    assert seen_by_alice == {"alice@a.example"}
    assert seen_by_unknown == set()
    assert without_context == 0
    report(
        f"users: tenant A sees {len(seen_by_a)}, tenant B {len(seen_by_b)}, a user sees {len(seen_by_alice)} "
        f"(self), an unknown tenant {len(seen_by_unknown)}, no context {without_context}"
    )


async def test_a_tenant_context_cannot_write_users(client: Any) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(staff, service.NewTenant(name="A", slug="users-w", currency="EUR"))
    member = await service.add_member(staff, tenant.id, "carol@a.example", "tenant_admin")
    async with tenant_tx(tenant.id):
        changed = await fetch(
            "update users set email = 'stolen@example.com' where id = {} returning id", member.user_id
        )
    assert changed == []
    assert (await service.get_member(tenant.id, member.user_id)).email == "carol@a.example"
