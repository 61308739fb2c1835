"""The entitlement check: served from a cache, and right on the very next request after any change."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime

from httpx import AsyncClient

from controlplane.core.invalidation import CHANNEL
from plugins_registry import service
from tests.api._helpers import assert_problem
from tests.api._webhooks import webhook_outbox_events
from tests.api.plugins._support import check, install, machine_key, plugin, publisher, tenant_with_admin
from tests.conftest import connect_as_inspector
from tests.factories import Factory


async def test_each_change_shows_in_the_very_next_answer(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"], seats=1)
    slug = made["slug"]
    tenant, admin = await tenant_with_admin(factory, staff)
    key = await machine_key(client, admin.headers, tenant["id"])

    assert await check(client, key, slug) == {
        "allowed": False,
        "reason": "not_installed",
        "plugin": slug,
        "feature": "export",
        "license_id": None,
        "trial": None,
        "expires_at": None,
        "limits": {},
        "usage": {},
    }
    installed = await install(client, admin.headers, tenant["id"], slug)
    granted = await check(client, key, slug)
    assert granted["allowed"] is True and granted["reason"] == "granted"
    assert granted["license_id"] == installed["license"]["id"]
    assert granted["limits"] == {"seats": 1, "reports": 100} and granted["usage"] == {"seats": 0}
    assert (await check(client, key, slug, "admin-panel"))["reason"] == "feature_not_included"
    assert (await check(client, key, slug, None))["allowed"] is True

    activation = await client.post(
        f"/v1/licenses/{installed['license']['id']}/activations", json={"fingerprint": "host-1"}, headers=key
    )
    assert activation.status_code == 201, activation.text
    assert (await check(client, key, slug))["usage"] == {"seats": 1}

    assert (await client.delete(f"/v1/tenants/{tenant['id']}/plugins/{slug}", headers=admin.headers)).status_code == 204
    assert (await check(client, key, slug))["reason"] == "not_installed"


async def test_expiry_is_answered_at_once_and_after_the_expiry_task(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    trial = await plugin(
        client,
        staff.headers,
        pub["id"],
        pricing={"model": "flat", "amount_minor": 900, "currency": "EUR", "trial_days": 14},
    )
    tenant, admin = await tenant_with_admin(factory, staff)
    key = await machine_key(client, admin.headers, tenant["id"])
    await client.post(
        "/v1/plans",
        json={
            "code": "basic",
            "name": "Basic",
            "currency": "EUR",
            "interval": "month",
            "charges": [{"type": "flat", "amount_minor": 1000}],
        },
        headers=staff.headers,
    )
    sub = await client.post(
        f"/v1/tenants/{tenant['id']}/subscriptions", json={"plan_code": "basic"}, headers=admin.headers
    )
    assert sub.status_code == 201, sub.text
    installed = await install(client, admin.headers, tenant["id"], trial["slug"])
    assert installed["license"]["trial"] is True
    assert (await check(client, key, trial["slug"]))["trial"] is True

    # The trial ends with no live subscription to convert it: the answer turns at once, before any task ran.
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update subscriptions set status = 'canceled' where tenant_id = $1", uuid.UUID(tenant["id"])
        )
        await inspector.execute(
            "update licenses set expires_at = now() - interval '1 second' where id = $1",
            uuid.UUID(installed["license"]["id"]),
        )
        await inspector.execute("select pg_notify($1, $2)", CHANNEL, f"entitlements:{tenant['id']}")
    finally:
        await inspector.close()
    assert (await check(client, key, trial["slug"]))["reason"] == "license_expired"
    counts = await service.expire_due(datetime.now(UTC))
    assert dataclasses.asdict(counts) == {"converted": 0, "expired": 1}
    assert (await check(client, key, trial["slug"]))["reason"] == "license_expired"
    assert dataclasses.asdict(await service.expire_due(datetime.now(UTC))) == {"converted": 0, "expired": 0}
    types = [e.event_type for e in await webhook_outbox_events(uuid.UUID(tenant["id"]))]
    assert types[-1] == "license.expired"


async def test_answers_come_from_the_cache_until_a_change_is_published(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """A write behind the service's back (no notification) is not seen: the answer is cached. The same
    write with a notification, as any other process of the control plane sends, is seen at once."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    tenant, admin = await tenant_with_admin(factory, staff)
    key = await machine_key(client, admin.headers, tenant["id"])
    installed = await install(client, admin.headers, tenant["id"], made["slug"])
    assert (await check(client, key, made["slug"]))["allowed"] is True

    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update licenses set status = 'revoked' where id = $1", uuid.UUID(installed["license"]["id"])
        )
        assert (await check(client, key, made["slug"]))["allowed"] is True
        await inspector.execute("select pg_notify($1, $2)", CHANNEL, f"entitlements:{tenant['id']}")
        for _ in range(200):  # the notification reaches the listener asynchronously, within milliseconds
            # In-process requests never wait on a socket, so give the loop a turn to read the notification.
            await asyncio.sleep(0.005)
            if (await check(client, key, made["slug"]))["reason"] == "license_revoked":
                break
        else:
            raise AssertionError("the notification did not evict the cached answer")
    finally:
        await inspector.close()


async def test_only_a_tenant_api_key_may_check(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant, admin = await tenant_with_admin(factory, staff)
    response = await client.get("/v1/entitlements/check", params={"plugin": "reports"}, headers=admin.headers)
    assert_problem(response, 403, "api_key_required")
    key = await machine_key(client, admin.headers, tenant["id"])
    bad = await client.get("/v1/entitlements/check", params={"plugin": "Not A Slug"}, headers=key)
    assert_problem(bad, 400)


async def test_checks_and_cache_lookups_are_counted(client: AsyncClient, factory: Factory) -> None:
    from controlplane.core import metrics

    def counts() -> tuple[float, ...]:
        return tuple(
            counter.labels(**{label: value})._value.get()
            for counter, label, value in (
                (metrics.ENTITLEMENT_CHECKS_TOTAL, "decision", "allowed"),
                (metrics.ENTITLEMENT_CHECKS_TOTAL, "decision", "denied"),
                (metrics.ENTITLEMENT_CACHE_LOOKUPS_TOTAL, "result", "hit"),
                (metrics.ENTITLEMENT_CACHE_LOOKUPS_TOTAL, "result", "miss"),
            )
        )

    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    tenant, admin = await tenant_with_admin(factory, staff)
    key = await machine_key(client, admin.headers, tenant["id"])
    await install(client, admin.headers, tenant["id"], made["slug"])
    before = counts()
    for feature in ("export", "export", "admin-panel"):  # a miss, then two answers from memory
        await check(client, key, made["slug"], feature)
    after = counts()
    assert tuple(b - a for a, b in zip(before, after, strict=True)) == (2, 1, 2, 1)
    scrape = (await client.get("/metrics")).text
    assert 'controlplane_entitlement_cache_lookups_total{result="hit"}' in scrape
