"""The history of installs and trials (`plugin_install_events`) as PostgreSQL keeps it: append-only whoever asks,
kept through an erasure, and the migration's backfill rebuilds from installs and licenses exactly what the
services record as they go."""

from __future__ import annotations

import importlib
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from plugins_registry import service
from tests.api.billing._support import plan, subscribe
from tests.api.plugins._support import install, plugin, publisher
from tests.factories import Actor, Factory

history = importlib.import_module("plugins_registry.piccolo_migrations.plugins_registry_2026_12_04t12_30_00_000000")

STEPS = "select tenant_id, plugin_id, slug, kind, at from plugin_install_events"


async def _steps(connection: asyncpg.Connection) -> list[tuple[Any, ...]]:
    return sorted(tuple(row) for row in await connection.fetch(STEPS))


async def _tenant(client: AsyncClient, factory: Factory, staff: Actor) -> tuple[str, Actor, dict[str, Any]]:
    tenant = await factory.tenant(staff)
    return tenant["id"], await factory.member(tenant["id"]), await subscribe(client, staff.headers, tenant["id"], "pro")


async def _uninstall(client: AsyncClient, admin: Actor, tenant_id: str, slug: str) -> None:
    response = await client.delete(f"/v1/tenants/{tenant_id}/plugins/{slug}", headers=admin.headers)
    assert response.status_code == 204, response.text


async def test_a_recorded_step_is_never_changed_or_removed(
    client: AsyncClient,
    factory: Factory,
    app_connection: asyncpg.Connection,
    owner_connection: asyncpg.Connection,
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    await install(client, admin.headers, tenant["id"], made["slug"])
    recorded = await _steps(owner_connection)
    assert [step[3] for step in recorded] == ["installed"]

    # The app role, even in its own tenant's context where it sees the row: no right to change or remove it.
    for statement in (
        "update plugin_install_events set at = at - interval '1 day'",
        "update plugin_install_events set kind = 'uninstalled'",
        "delete from plugin_install_events",
    ):
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with app_connection.transaction():
                await app_connection.execute("select set_config('app.tenant_id', $1, true)", tenant["id"])
                assert await app_connection.fetchval("select count(*) from plugin_install_events") == 1
                await app_connection.execute(statement)
    # The owner has every right on its table, and the trigger still refuses.
    for statement in (
        "update plugin_install_events set at = at - interval '1 day'",
        "delete from plugin_install_events",
    ):
        with pytest.raises(asyncpg.CheckViolationError, match="never changed or removed"):
            await owner_connection.execute(statement)
    assert await _steps(owner_connection) == recorded


async def test_the_backfill_rebuilds_the_history_the_services_recorded(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection
) -> None:
    """Each kind of step, through every path that records one: install, uninstall, reinstall, a trial started,
    converted by the expiry job, expired by it, cut short by an uninstall and by the tenant's erasure."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    free = await plugin(client, staff.headers, pub["id"])
    pricing = {"model": "flat", "amount_minor": 900, "currency": "EUR", "trial_days": 1}
    paid = await plugin(client, staff.headers, pub["id"], pricing=pricing)
    converting, expiring, uninstalling, erased = [await _tenant(client, factory, staff) for _ in range(4)]

    for tenant_id, admin, _ in (converting, expiring, uninstalling, erased):
        assert (await install(client, admin.headers, tenant_id, paid["slug"]))["license"]["trial"] is True
    tenant_id, admin, _ = converting
    await install(client, admin.headers, tenant_id, free["slug"])
    await _uninstall(client, admin, tenant_id, free["slug"])
    await install(client, admin.headers, tenant_id, free["slug"])
    tenant_id, admin, _ = uninstalling
    await _uninstall(client, admin, tenant_id, paid["slug"])
    # No live subscription when its trial ends: it expires.
    canceled = await client.post(
        f"/v1/subscriptions/{expiring[2]['id']}/cancel", json={"at_period_end": False}, headers=staff.headers
    )
    assert canceled.status_code == 200, canceled.text
    erasure = await client.delete(f"/v1/tenants/{erased[0]}", headers=staff.headers)
    assert erasure.status_code == 202, erasure.text
    report = await service.expire_due(datetime.now(UTC) + timedelta(days=2))
    assert (report.converted, report.expired) == (1, 1)

    recorded = await _steps(owner_connection)
    assert Counter(step[3] for step in recorded) == {
        "installed": 6,
        "uninstalled": 2,
        "trial_started": 4,
        "trial_converted": 1,
        "trial_ended": 3,
    }
    # The erased tenant's history stays (ids and times, nothing personal): its install and its trial's end.
    assert [step[3] for step in recorded if step[0] == uuid.UUID(erased[0])] == [
        "installed",
        "trial_ended",
        "trial_started",
    ]

    transaction = owner_connection.transaction()
    await transaction.start()
    try:
        # Row triggers do not fire on TRUNCATE: the owner empties the table as a fresh deploy would have it.
        await owner_connection.execute("truncate plugin_install_events")
        await owner_connection.execute(history.BACKFILL)
        rebuilt = await _steps(owner_connection)
    finally:
        await transaction.rollback()
    assert rebuilt == recorded
