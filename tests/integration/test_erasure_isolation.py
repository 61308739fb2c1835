"""Erasing one tenant must not reach into another: users who still belong elsewhere keep their identity.

`request_erasure` erases the personal data of the tenant's former members who belong to no other tenant.
"Belong to no other tenant" is a question across tenants, so it cannot be answered without a context that
can see other tenants' memberships: with no context every membership reads as absent.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from controlplane.core.auth.principal import Principal
from controlplane.core.tenant_vault import TenantVault
from tenants import service
from tests.integration.conftest import staff_principal


async def test_erasing_a_tenant_keeps_users_who_belong_to_another(
    client: Any, owner_connection: asyncpg.Connection, report: Any, tenant_vault: TenantVault
) -> None:
    staff = staff_principal()
    tenant_a = await service.create_tenant(staff, service.NewTenant(name="A", slug="erase-a", currency="EUR"))
    tenant_b = await service.create_tenant(staff, service.NewTenant(name="B", slug="erase-b", currency="EUR"))
    admin_a = await service.add_member(staff, tenant_a.id, "admin-a@example.com", "tenant_admin")
    admin_b = await service.add_member(staff, tenant_b.id, "admin-b@example.com", "tenant_admin")
    only_a = await service.add_member(staff, tenant_a.id, "only-a@example.com", "tenant_member")

    # Tenant A's admin adds B's admin (any address will do), then erases tenant A.
    actor_a = Principal(kind="user", id=admin_a.user_id)
    await service.add_member(actor_a, tenant_a.id, "admin-b@example.com", "tenant_member")
    await service.request_erasure(actor_a, tenant_a.id, tenant_vault)

    users = {
        row["id"]: row for row in await owner_connection.fetch("select id, email, status, password_hash from users")
    }
    # B's admin still belongs to tenant B: untouched.
    assert users[admin_b.user_id]["email"] == "admin-b@example.com"
    assert users[admin_b.user_id]["status"] == "active"
    assert (await service.get_member(tenant_b.id, admin_b.user_id)).email == "admin-b@example.com"
    # Those who belonged only to A are erased.
    assert users[only_a.user_id]["status"] == "erased"
    assert users[admin_a.user_id]["status"] == "erased"
    report("erasure: tenant A erased 2 own users, kept the user who also belongs to tenant B")
