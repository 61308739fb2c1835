"""Usage metering over HTTP: per-event rejections, batch limits, idempotency, aggregations, who may report."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta, timezone
from typing import Any

from httpx import AsyncClient

from billing.subscriptions.repository import USAGE_WINDOW_LOCK
from tests.api._helpers import assert_problem, bearer, create_api_key
from tests.api.billing._support import (
    at_midnight,
    event,
    first_of_month,
    metric,
    plan,
    post_usage,
    subscribe,
    today,
    usage_values,
    utcnow,
)
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

CODES = ["api_calls", "tokens", "gb", "peak", "users", "balance"]


async def _metered_world(client: AsyncClient, factory: Factory) -> tuple[Actor, dict[str, Any], str, Any]:
    """Staff, a tenant subscribed since the 1st of this month to a plan metering every aggregation (each unit
    at 100 minor units), a tenant_member API key, and the subscription's start."""
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls", "count")
    await metric(client, staff.headers, "tokens", "sum")
    await metric(client, staff.headers, "gb", "sum", field="gb")
    await metric(client, staff.headers, "peak", "max")
    await metric(client, staff.headers, "users", "unique_count", field="user_id")
    await metric(client, staff.headers, "balance", "latest")
    charges = [
        {"type": "metered", "metric_code": code, "model": "per_unit", "unit_amount_minor": "100"} for code in CODES
    ]
    await plan(client, staff.headers, "metered", [{"type": "flat", "amount_minor": 500}, *charges])
    tenant = await factory.tenant(staff)
    start = at_midnight(first_of_month(today()))
    await subscribe(client, staff.headers, tenant["id"], "metered", start_at=start)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    return staff, tenant, key, start


async def test_bad_events_are_rejected_alone(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, key, start = await _metered_world(client, factory)
    now = utcnow() - timedelta(seconds=1)
    missing_key = event("unused", "api_calls", now)
    del missing_key["idempotency_key"]
    events = [
        event("ok-0", "api_calls", now),
        event("bad-1", "no_such_metric", now),
        event("bad-2", "tokens", now, value=-1),
        event("bad-3", "tokens", now, value="abc"),
        event("bad-4", "api_calls", utcnow() + timedelta(minutes=10)),
        missing_key,
        event("ok-6", "api_calls", now),
        event("ok-6", "api_calls", now),
        event("bad-8", "api_calls", start - timedelta(days=1)),
        event("ok-9", "tokens", now, value=2.5),
    ]
    response = await post_usage(client, bearer(key), events)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["accepted"] == 3
    assert reply["duplicates"] == 0
    codes = [(item["index"], item["code"]) for item in reply["rejected"]]
    assert codes == [
        (1, "unknown_metric"),
        (2, "negative_value"),
        (3, "invalid_value"),
        (4, "timestamp_in_future"),
        (5, "missing_field"),
        (7, "duplicate_in_batch"),
        (8, "period_closed"),
    ]
    assert all(item["detail"] for item in reply["rejected"])

    values = await usage_values(client, staff.headers, tenant["id"], CODES)
    assert values["api_calls"]["value"] == "2"
    assert values["tokens"]["value"] == "2.5"
    assert values["api_calls"]["amount_minor"] == 200
    assert values["tokens"]["amount_minor"] == 250
    # The rejected keys were not stored: sending them again, fixed, is accepted.
    fixed = [event("bad-2", "tokens", now, value=1), event("bad-8", "api_calls", now)]
    again = await post_usage(client, bearer(key), fixed)
    assert again.json() == {"accepted": 2, "duplicates": 0, "rejected": []}


async def test_field_checks_of_property_metrics(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, key, _ = await _metered_world(client, factory)
    now = utcnow() - timedelta(seconds=1)
    events = [
        event("g0", "gb", now, properties={"gb": 1}),
        event("g1", "gb", now, properties={"other": 1}),
        event("g2", "gb", now, properties={"gb": "3"}),
        event("g3", "gb", now, properties={"gb": -2}),
        event("g4", "gb", now),
        event("t0", "tokens", now),
        event("u0", "users", now, properties={"user_id": True}),
        event("u1", "users", now, properties={"user_id": "alice"}),
    ]
    reply = (await post_usage(client, bearer(key), events)).json()
    assert reply["accepted"] == 2
    assert [(item["index"], item["code"]) for item in reply["rejected"]] == [
        (1, "missing_field"),
        (2, "invalid_value"),
        (3, "negative_value"),
        (4, "missing_field"),
        (5, "missing_field"),
        (6, "invalid_value"),
    ]
    values = await usage_values(client, staff.headers, tenant["id"], CODES)
    assert (values["gb"]["value"], values["users"]["value"]) == ("1", "1")


async def test_aggregations(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, key, _ = await _metered_world(client, factory)
    now = utcnow()
    t1, t2, t3 = (now - timedelta(seconds=s) for s in (30, 20, 10))
    events = [
        # sum of properties.gb (integers and decimals)
        event("gb-1", "gb", t1, properties={"gb": 1.25}),
        event("gb-2", "gb", t2, properties={"gb": 2}),
        event("gb-3", "gb", t3, properties={"gb": 0.5, "region": "eu"}),
        # max of value
        event("peak-1", "peak", t1, value=4),
        event("peak-2", "peak", t2, value=10),
        event("peak-3", "peak", t3, value=7.5),
        # distinct properties.user_id
        event("users-1", "users", t1, properties={"user_id": "alice"}),
        event("users-2", "users", t2, properties={"user_id": "bob"}),
        event("users-3", "users", t3, properties={"user_id": "alice"}),
        event("users-4", "users", t3, properties={"user_id": 42}),
        # latest by timestamp (sent out of order): 3 at t3 is the latest
        event("balance-3", "balance", t3, value=3),
        event("balance-1", "balance", t1, value=5),
        event("balance-2", "balance", t2, value=9),
        # count ignores the value
        event("calls-1", "api_calls", t1, value=50),
        event("calls-2", "api_calls", t2),
    ]
    response = await post_usage(client, bearer(key), events)
    assert response.json() == {"accepted": len(events), "duplicates": 0, "rejected": []}

    values = await usage_values(client, staff.headers, tenant["id"], CODES)
    got = {code: (item["aggregation"], item["value"], item["amount_minor"]) for code, item in values.items()}
    assert got == {
        "api_calls": ("count", "2", 200),
        "tokens": ("sum", "0", 0),
        "gb": ("sum", "3.75", 375),
        "peak": ("max", "10", 1000),
        "users": ("unique_count", "3", 300),
        "balance": ("latest", "3", 300),
    }

    one = await client.get(
        f"/v1/tenants/{tenant['id']}/usage", params={"metric_code": "balance"}, headers=staff.headers
    )
    assert one.status_code == 200, one.text
    assert [(item["metric_code"], item["value"]) for item in one.json()["metrics"]] == [("balance", "3")]
    unknown = await client.get(
        f"/v1/tenants/{tenant['id']}/usage", params={"metric_code": "nope"}, headers=staff.headers
    )
    assert_problem(unknown, 404, "metric_not_found")


async def test_a_plan_metering_several_metrics(client: AsyncClient, factory: Factory) -> None:
    """GET usage without `metric_code`, and the upcoming invoice, aggregate every metric of the plan at once."""
    staff, tenant, key, _ = await _metered_world(client, factory)
    now = utcnow() - timedelta(seconds=1)
    events = [
        event("calls", "api_calls", now),
        event("tokens", "tokens", now, value=2),
        event("gb", "gb", now, properties={"gb": 3}),
        event("peak", "peak", now, value=4),
        event("users", "users", now, properties={"user_id": "alice"}),
        event("balance", "balance", now, value=6),
    ]
    assert (await post_usage(client, bearer(key), events)).json()["accepted"] == 6
    expected = {"api_calls": "1", "tokens": "2", "gb": "3", "peak": "4", "users": "1", "balance": "6"}

    one_by_one = await usage_values(client, staff.headers, tenant["id"], CODES)
    assert {code: item["value"] for code, item in one_by_one.items()} == expected

    response = await client.get(f"/v1/tenants/{tenant['id']}/usage", headers=staff.headers)
    assert response.status_code == 200, response.text
    assert {item["metric_code"]: item["value"] for item in response.json()["metrics"]} == expected

    upcoming = await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)
    assert upcoming.status_code == 200, upcoming.text
    metered = {line["metric_code"]: line["amount_minor"] for line in upcoming.json()["lines"] if line["metric_code"]}
    assert metered == {"api_calls": 100, "tokens": 200, "gb": 300, "peak": 400, "users": 100, "balance": 600}
    assert upcoming.json()["subtotal_minor"] == 1700 + 500


async def test_json_numbers_are_exact(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, key, _ = await _metered_world(client, factory)
    now = utcnow() - timedelta(seconds=1)
    stamp_text = now.replace(microsecond=0).isoformat()
    # Written by hand so the wire carries exactly `0.1`, never a binary float.
    raw = ", ".join(
        f'{{"idempotency_key": "dec-{i}", "metric_code": "tokens", "timestamp": "{stamp_text}", "value": 0.1}}'
        for i in range(3)
    )
    response = await client.post(
        "/v1/usage",
        content=f'{{"events": [{raw}]}}'.encode(),
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 3
    values = await usage_values(client, staff.headers, tenant["id"], CODES)
    assert values["tokens"]["value"] == "0.3"
    assert values["tokens"]["amount_minor"] == 30  # 0.3 x 100

    # Twelve decimal places are kept; a thirteenth is refused rather than rounded.
    precise = (
        f'{{"idempotency_key": "fine", "metric_code": "peak", "timestamp": "{stamp_text}", '
        f'"value": 0.000000000001}}, '
        f'{{"idempotency_key": "too-fine", "metric_code": "peak", "timestamp": "{stamp_text}", '
        f'"value": 0.0000000000001}}'
    )
    response = await client.post(
        "/v1/usage",
        content=f'{{"events": [{precise}]}}'.encode(),
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    reply = response.json()
    assert reply["accepted"] == 1
    assert [(item["index"], item["code"]) for item in reply["rejected"]] == [(1, "invalid_value")]
    values = await usage_values(client, staff.headers, tenant["id"], CODES)
    assert values["peak"]["value"] == "0.000000000001"


async def test_batch_limit_and_replays(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, key, _ = await _metered_world(client, factory)
    now = utcnow() - timedelta(seconds=1)

    too_many = [event(f"k{i}", "api_calls", now) for i in range(1001)]
    assert_problem(await post_usage(client, bearer(key), too_many), 422, "batch_too_large")
    assert (await usage_values(client, staff.headers, tenant["id"], CODES))["api_calls"]["value"] == "0"

    batch = too_many[:1000]
    first = await post_usage(client, bearer(key), batch)
    assert first.status_code == 200, first.text
    assert first.json() == {"accepted": 1000, "duplicates": 0, "rejected": []}

    replay = await post_usage(client, bearer(key), batch)
    assert replay.status_code == 200, replay.text
    assert replay.json() == {"accepted": 0, "duplicates": 1000, "rejected": []}

    # A partial replay: old keys are duplicates, new ones accepted.
    mixed = [*batch[:3], event("new-1", "api_calls", now), event("new-2", "api_calls", now)]
    assert (await post_usage(client, bearer(key), mixed)).json() == {"accepted": 2, "duplicates": 3, "rejected": []}
    assert (await usage_values(client, staff.headers, tenant["id"], CODES))["api_calls"]["value"] == "1002"


async def test_malformed_batches(client: AsyncClient, factory: Factory) -> None:
    _, _, key, _ = await _metered_world(client, factory)
    headers = {**bearer(key), "Content-Type": "application/json"}
    for body in (b'{"events": "x"}', b'{"items": []}', b'{"events": [], "extra": 1}', b"[]", b"not json"):
        response = await client.post("/v1/usage", content=body, headers=headers)
        assert_problem(response, 422, "invalid_usage_batch")
    empty = await post_usage(client, bearer(key), [])
    assert empty.json() == {"accepted": 0, "duplicates": 0, "rejected": []}


async def test_no_subscription(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    tenant = await factory.tenant(staff)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    events = [event(f"e{i}", "api_calls") for i in range(2)]
    response = await post_usage(client, bearer(key), events)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert (reply["accepted"], reply["duplicates"]) == (0, 0)
    assert [(item["index"], item["code"]) for item in reply["rejected"]] == [
        (0, "no_subscription"),
        (1, "no_subscription"),
    ]
    assert_problem(
        await client.get(f"/v1/tenants/{tenant['id']}/usage", headers=staff.headers), 404, "subscription_not_found"
    )


async def test_who_reports_for_which_tenant(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, member_key, _ = await _metered_world(client, factory)
    other = await factory.tenant(staff)
    await subscribe(client, staff.headers, other["id"], "metered")
    one = [event("who-1", "api_calls", utcnow() - timedelta(seconds=1))]

    # Staff name the tenant.
    assert_problem(await post_usage(client, staff.headers, one), 422, "invalid_usage_batch")
    response = await post_usage(client, staff.headers, one, tenant_id=tenant["id"])
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1

    # A tenant's key (or member) cannot report for another tenant, which looks like it does not exist.
    other_event = [event("who-2", "api_calls", utcnow() - timedelta(seconds=1))]
    assert_problem(await post_usage(client, bearer(member_key), other_event, tenant_id=other["id"]), 404)
    admin = await factory.member(tenant["id"], "tenant_admin")
    assert_problem(await post_usage(client, admin.headers, other_event, tenant_id=other["id"]), 404)
    # Naming its own tenant is fine.
    own = await post_usage(client, bearer(member_key), other_event, tenant_id=tenant["id"])
    assert own.json()["accepted"] == 1

    # A billing_viewer reads invoices but does not report usage.
    _, viewer_key = await create_api_key(client, staff.headers, tenant["id"], role="billing_viewer")
    late = [event("who-3", "api_calls", utcnow() - timedelta(seconds=1))]
    assert_problem(await post_usage(client, bearer(viewer_key), late), 403)
    viewer = await factory.member(tenant["id"], "billing_viewer")
    assert_problem(await post_usage(client, viewer.headers, late, tenant_id=tenant["id"]), 403)
    assert_problem(await post_usage(client, {}, late), 401)

    assert (await usage_values(client, staff.headers, tenant["id"], CODES))["api_calls"]["value"] == "2"
    assert (await usage_values(client, staff.headers, other["id"], CODES))["api_calls"]["value"] == "0"


async def test_text_postgresql_cannot_store_is_rejected_per_event(client: AsyncClient, factory: Factory) -> None:
    """NUL in a metric code or in properties would make PostgreSQL refuse the whole statement; each such event
    is rejected on its own and the valid event beside it is stored."""
    staff, tenant, key, _ = await _metered_world(client, factory)
    now = utcnow() - timedelta(seconds=1)
    events = [
        event("fine", "api_calls", now),
        event("nul-code", "api_\u0000calls", now),
        event("nul-property", "api_calls", now, properties={"note": "a\u0000b"}),
        {**event("not-object", "api_calls", now), "properties": [1, 2]},
    ]
    response = await client.post("/v1/usage", json={"events": events}, headers=bearer(key))
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["accepted"] == 1
    assert [(item["index"], item["code"]) for item in reply["rejected"]] == [
        (1, "invalid_event"),
        (2, "invalid_event"),
        (3, "invalid_event"),
    ]
    assert (await usage_values(client, staff.headers, tenant["id"]))["api_calls"]["value"] == "1"


async def test_a_members_usage_batch_waits_for_the_usage_window_before_locking_the_tenant_row(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """The interleaving forced: a billing run holds the usage window (exclusively) and then takes the next invoice
    number (an update of the tenant row). A member's batch waiting for the window must not hold the tenant row
    meanwhile (its share lock for a member's write), or the two deadlock and the billing run fails."""
    _, tenant, _, _ = await _metered_world(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    tenant_id = uuid.UUID(tenant["id"])
    inspector = await connect_as_inspector(stack_env)
    try:
        billing_run = inspector.transaction()
        await billing_run.start()
        await inspector.execute("select pg_advisory_xact_lock($1, hashtext($2::text))", USAGE_WINDOW_LOCK, tenant["id"])
        batch = [event("during-billing", "api_calls", utcnow() - timedelta(seconds=1))]
        posting = asyncio.create_task(post_usage(client, admin.headers, batch, tenant_id=tenant["id"]))
        waiting = (
            "select count(*) from pg_locks where locktype = 'advisory' and not granted "
            "and classid = $1::int::oid and objid = hashtext($2::text)::oid"
        )
        for _ in range(200):  # until the batch is queued behind the window
            if await inspector.fetchval(waiting, USAGE_WINDOW_LOCK, tenant["id"]):
                break
            assert not posting.done(), posting.result().text
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the usage batch never waited for the usage window")
        # The billing run's next step: the tenant row is free to update (not held by the waiting batch).
        free = await inspector.fetchval("select id from tenants where id = $1 for update skip locked", tenant_id)
        await billing_run.commit()
        response = await posting
    finally:
        await inspector.close()
    assert free == tenant_id
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


async def test_an_event_is_stored_as_it_was_sent(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """Keys, timestamps (any offset, microseconds), exact values and the properties object reach their columns
    unchanged: each compared with PostgreSQL's own reading of the text the client sent."""
    _, tenant, key, _ = await _metered_world(client, factory)
    now = utcnow() - timedelta(minutes=1)
    sent = [
        ('quote " back \\\\ slash', "tokens", now.isoformat(), "1E+2", None),
        (
            "ünïcødé 🚀 key",
            "tokens",
            now.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
            "0.000000000001",
            None,
        ),
        ("tab-free\u2028line", "tokens", now.replace(microsecond=123456).isoformat(), "123456789.123456789012", None),
        ("count-no-value", "api_calls", now.isoformat(), None, None),
        (
            "with-properties",
            "gb",
            now.isoformat(),
            None,
            '{"gb": 1.50, "nested": {"a": [1, "two", null]}, "é": "\\u00e9"}',
        ),
        ("property-number-exponent", "gb", now.isoformat(), None, '{"gb": 25e-1}'),
    ]
    events = []
    for idempotency_key, code, at, value, properties in sent:
        fields = [
            f'"idempotency_key": {json.dumps(idempotency_key)}',
            f'"metric_code": "{code}"',
            f'"timestamp": "{at}"',
        ]
        if value is not None:
            fields.append(f'"value": {value}')
        if properties is not None:
            fields.append(f'"properties": {properties}')
        events.append("{" + ", ".join(fields) + "}")
    response = await client.post(
        "/v1/usage",
        content=('{"events": [' + ", ".join(events) + "]}").encode(),
        headers={**bearer(key), "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["accepted"], response.json()["rejected"]) == (len(sent), [])
    inspector = await connect_as_inspector(stack_env)
    try:
        for idempotency_key, code, at, value, properties in sent:
            row = await inspector.fetchrow(
                "select metric_code = $3 as code_ok, occurred_at = $4::text::timestamptz as at_ok,"
                " value is not distinct from $5::text::numeric"
                " and value::text is not distinct from $5::text::numeric::text as value_ok,"
                " properties is not distinct from $6::text::jsonb as properties_ok"
                " from usage_events where tenant_id = $1 and idempotency_key = $2",
                uuid.UUID(tenant["id"]),
                idempotency_key,
                code,
                at,
                value,
                properties,
            )
            assert row is not None, idempotency_key
            assert dict(row) == {"code_ok": True, "at_ok": True, "value_ok": True, "properties_ok": True}, (
                idempotency_key
            )
    finally:
        await inspector.close()
