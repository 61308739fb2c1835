"""Plugin installs, licenses, activations and outbox events, read and written directly as the app role:
in one tenant's context nothing of another tenant's is visible or writable, whatever the query says."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tests.api.plugins._support import check, install, machine_key, plugin, publisher, tenant_with_admin

TABLES = ("plugin_installs", "plugin_install_events", "licenses", "license_activations", "webhook_outbox")


async def _tenant_with_plugin(client: Any, factory: Any, staff: Any, slug: str) -> dict[str, Any]:
    tenant, admin = await tenant_with_admin(factory, staff)
    installed = await install(client, admin.headers, tenant["id"], slug)
    key = await machine_key(client, admin.headers, tenant["id"])
    activation = await client.post(
        f"/v1/licenses/{installed['license']['id']}/activations", json={"fingerprint": "host"}, headers=key
    )
    assert activation.status_code == 201, activation.text
    assert (await check(client, key, slug))["allowed"] is True
    return {"tenant_id": uuid.UUID(tenant["id"]), "install": installed}


async def test_the_app_role_sees_and_writes_only_its_own_tenants_plugin_rows(
    client: Any, factory: Any, app_connection: asyncpg.Connection, report: Any
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    a = await _tenant_with_plugin(client, factory, staff, made["slug"])
    b = await _tenant_with_plugin(client, factory, staff, made["slug"])
    refused = 0

    async with app_connection.transaction():
        await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(a["tenant_id"]))
        for table in TABLES:
            tenants = {row["tenant_id"] for row in await app_connection.fetch(f"select tenant_id from {table}")}  # noqa: S608
            assert tenants == {a["tenant_id"]}, (table, tenants)
            # Naming the other tenant explicitly finds nothing either.
            hidden = await app_connection.fetchval(f"select count(*) from {table} where tenant_id = $1", b["tenant_id"])  # noqa: S608
            assert hidden == 0
            refused += 1
        # Updates of the other tenant's license touch no row.
        moved = await app_connection.execute(
            "update licenses set status = 'revoked' where id = $1", uuid.UUID(b["install"]["license"]["id"])
        )
        assert moved == "UPDATE 0"
        refused += 1

    for table, values in (
        ("webhook_outbox", "(tenant_id, event_type, payload) values ($1, 'plugin.installed', '{}')"),
        (
            "license_activations",
            "(id, tenant_id, license_id, fingerprint) "
            f"values (gen_random_uuid(), $1, '{b['install']['license']['id']}', 'x')",
        ),
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with app_connection.transaction():
                await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(a["tenant_id"]))
                await app_connection.execute(f"insert into {table} {values}", b["tenant_id"])
        refused += 1

    # Without any context the app role sees no plugin rows at all.
    for table in TABLES:
        assert await app_connection.fetchval(f"select count(*) from {table}") == 0  # noqa: S608
    report(f"plugins: {refused} cross-tenant reads and writes refused by the database as the app role")
