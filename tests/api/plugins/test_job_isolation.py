"""Plugin batch jobs isolate failures per item: one license, tenant or delivery that fails is recorded (on
the item where it has a place, and in controlplane_batch_item_failures_total{batch_job,reason}) and the job goes on."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from controlplane.core import metrics
from controlplane.core.errors import DatabaseUnavailable
from controlplane.core.tenant_vault import TenantVault
from plugins_registry import repository, service
from plugins_registry.service import _licenses
from tenants import service as tenants_service
from tenants import webhook_endpoints, webhook_secrets
from tests.api._webhooks import Receiver, outbox_rows, receivers, tenant_with_endpoint
from tests.api.plugins._support import install, plugin, publisher, tenant_with_admin
from tests.api.plugins.test_activations import activate, licensed, live
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["receivers"]  # the fixture, shared


def _failures(job: str) -> float:
    labels = {"batch_job": job, "reason": "unexpected"}
    return float(metrics.BATCH_ITEM_FAILURES_TOTAL.labels(**labels)._value.get())


async def _licenses_of(stack_env: dict[str, str], ids: list[str]) -> dict[str, dict[str, Any]]:
    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch(
            "select id, status, job_error, job_failed_at from licenses where id = any($1::uuid[])", ids
        )
    finally:
        await inspector.close()
    return {str(row["id"]): dict(row) for row in rows}


async def test_a_license_that_fails_to_expire_is_recorded_and_the_others_expire(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = await factory.staff()
    made = await plugin(client, staff.headers, (await publisher(client, staff.headers))["id"])
    ids = []
    for _ in range(3):
        tenant, admin = await tenant_with_admin(factory, staff)
        ids.append((await install(client, admin.headers, tenant["id"], made["slug"]))["license"]["id"])
    inspector = await connect_as_inspector(stack_env)
    try:  # their time is over
        await inspector.execute(
            "update licenses set expires_at = now() - interval '1 minute' where id = any($1::uuid[])", ids
        )
    finally:
        await inspector.close()
    broken = uuid.UUID(ids[1])
    real = _licenses._expire_one

    async def expire_one(tenant_id: uuid.UUID, license_id: uuid.UUID, now: datetime) -> str | None:
        if license_id == broken:
            raise RuntimeError("a bug met by this license only")
        return await real(tenant_id, license_id, now)

    monkeypatch.setattr(_licenses, "_expire_one", expire_one)
    before = _failures("expire_licenses")
    assert dataclasses.asdict(await service.expire_due()) == {"converted": 0, "expired": 2}
    assert _failures("expire_licenses") - before == 1
    stored = await _licenses_of(stack_env, ids)
    assert [stored[i]["status"] for i in ids] == ["expired", "active", "expired"]
    assert stored[ids[1]]["job_error"] == "unexpected" and stored[ids[1]]["job_failed_at"] is not None
    # Not retried on every run (the next run neither loops on it nor counts it again) ...
    assert dataclasses.asdict(await service.expire_due()) == {"converted": 0, "expired": 0}
    assert _failures("expire_licenses") - before == 1
    # ... but after a pause, and once it works the error is gone.
    monkeypatch.setattr(_licenses, "_expire_one", real)
    later = datetime.now(UTC) + _licenses.EXPIRY_RETRY_AFTER
    assert dataclasses.asdict(await service.expire_due(later)) == {"converted": 0, "expired": 1}
    assert (await _licenses_of(stack_env, [ids[1]]))[ids[1]]["job_error"] is None


async def test_a_database_outage_during_license_expiry_records_nothing_on_the_license(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage is not the license's fault: the run stops (the beat runs it again) and the license keeps no
    error and no back-off, so the next run after the outage expires it."""
    staff = await factory.staff()
    made = await plugin(client, staff.headers, (await publisher(client, staff.headers))["id"])
    tenant, admin = await tenant_with_admin(factory, staff)
    license_id = (await install(client, admin.headers, tenant["id"], made["slug"]))["license"]["id"]
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update licenses set expires_at = now() - interval '1 minute' where id = $1::uuid", license_id
        )
    finally:
        await inspector.close()
    real = _licenses._expire_one

    async def outage(tenant_id: uuid.UUID, license_id: uuid.UUID, now: datetime) -> str | None:
        raise DatabaseUnavailable("The database is unavailable; retry shortly")

    monkeypatch.setattr(_licenses, "_expire_one", outage)
    with pytest.raises(DatabaseUnavailable):
        await service.expire_due()
    stored = (await _licenses_of(stack_env, [license_id]))[license_id]
    assert (stored["status"], stored["job_error"], stored["job_failed_at"]) == ("active", None, None)
    monkeypatch.setattr(_licenses, "_expire_one", real)
    assert dataclasses.asdict(await service.expire_due()) == {"converted": 0, "expired": 1}


async def test_a_tenant_whose_seats_fail_to_be_released_does_not_stop_the_others(
    client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = [await licensed(client, factory, seats=1) for _ in range(2)]
    for installed, _admin, key in made:
        await activate(client, key, installed["license"]["id"], "host-1")
    broken = uuid.UUID(made[0][0]["tenant_id"])
    real = repository.release_silent_activations

    async def release(tenant_id: uuid.UUID, before: datetime, now: datetime) -> list[dict[str, Any]]:
        if tenant_id == broken:
            raise RuntimeError("a bug met by this tenant only")
        return await real(tenant_id, before, now)

    monkeypatch.setattr(repository, "release_silent_activations", release)
    before = _failures("release_stale_activations")
    later = datetime.now(UTC) + timedelta(hours=2)
    assert await service.release_stale(timedelta(hours=1), now=later) == 1
    assert _failures("release_stale_activations") - before == 1
    (broken_install, _, broken_key), (fine_install, _, fine_key) = made
    assert len(await live(client, broken_key, broken_install["license"]["id"])) == 1  # retried by the next run
    assert await live(client, fine_key, fine_install["license"]["id"]) == []


async def _tenants_with_a_plugin_event(
    client: AsyncClient, factory: Factory, receivers: list[Receiver]
) -> list[dict[str, Any]]:
    """A tenant per receiver, each with its endpoint and a plugin install waiting to be delivered."""
    staff = await factory.staff()
    made = await plugin(client, staff.headers, (await publisher(client, staff.headers))["id"])
    tenants = []
    for receiver in receivers:
        tenant, admin, _secret = await tenant_with_endpoint(client, factory, staff, receiver.url)
        await install(client, admin.headers, tenant["id"], made["slug"])
        tenants.append(tenant)
    return tenants


async def test_a_delivery_that_fails_unexpectedly_is_recorded_and_the_others_are_delivered(
    client: AsyncClient,
    factory: Factory,
    tenant_vault: TenantVault,
    receivers: list[Receiver],
    stack_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken_receiver, fine_receiver = receivers
    tenants = await _tenants_with_a_plugin_event(client, factory, receivers)
    real = webhook_endpoints.post

    def post(url: str, body: bytes, headers: dict[str, str], *, production: bool) -> webhook_endpoints.Sent:
        if url == broken_receiver.url:
            raise RuntimeError("a bug met by this endpoint only")
        return real(url, body, headers, production=production)

    monkeypatch.setattr(webhook_endpoints, "post", post)
    before = _failures("deliver_webhooks")
    outcome = await tenants_service.deliver_webhooks(tenant_vault, production=False)
    assert outcome.delivered == len(fine_receiver.received) >= 1
    assert outcome.retrying == outcome.claimed - outcome.delivered >= 1
    assert _failures("deliver_webhooks") - before == outcome.retrying
    broken_rows = await outbox_rows(stack_env, tenants[0]["id"])
    assert {(row["attempts"], row["last_error"], row["waiting"]) for row in broken_rows} == {
        (1, "internal_error", True)
    }


async def test_a_tenant_whose_signing_secret_fails_to_load_stops_no_other_tenants_deliveries(
    client: AsyncClient,
    factory: Factory,
    tenant_vault: TenantVault,
    receivers: list[Receiver],
    stack_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken_receiver, fine_receiver = receivers
    tenants = await _tenants_with_a_plugin_event(client, factory, receivers)
    real = webhook_secrets.current

    def current(vault: TenantVault, tenant_id: uuid.UUID) -> Any:
        if str(tenant_id) == tenants[0]["id"]:
            raise RuntimeError("a bug met by this tenant's secret only")
        return real(vault, tenant_id)

    monkeypatch.setattr(webhook_secrets, "current", current)
    before = _failures("deliver_webhooks")
    outcome = await tenants_service.deliver_webhooks(tenant_vault, production=False)
    assert outcome.delivered == len(fine_receiver.received) >= 1
    assert broken_receiver.received == []
    assert _failures("deliver_webhooks") - before == 1
    assert {row["attempts"] for row in await outbox_rows(stack_env, tenants[0]["id"])} == {1}
