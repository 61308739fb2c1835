"""The billing cycle isolates failures per subscription: one that cannot be billed (an amount out of range, or
any other error) is recorded on the subscription (reason, when, attempts, next retry), counted in
`controlplane_billing_subscription_failures_total{reason}`, retried on a bounded back-off after healthy work,
and never stops the others. Usage is bounded per event and, per metric, over the open window (an event that would
rate a line past `MAX_LINE_MINOR` is rejected as `usage_limit_exceeded`), so no usage the API accepts overflows an
invoice: the overflowing usage of these tests is stored as the owner, as if from before the bounds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
from httpx import AsyncClient
from prometheus_client import REGISTRY

from billing import limits, service
from billing.invoices.cycle import due_batches
from tests.api._helpers import assert_problem, bearer, create_api_key
from tests.api.billing._support import event, invoices, metric, plan, post_usage, subscribe, usage_values, utcnow
from tests.conftest import connect_as_inspector
from tests.factories import Factory

START = datetime(2026, 1, 1, tzinfo=UTC)
BOUNDARY = datetime(2026, 2, 1, tzinfo=UTC)
GRACE = timedelta(hours=1)
# The largest unit price the API accepts: 10^12 units of it are 10^21 minor units, beyond any invoice.
PRICE = str(limits.MAX_UNIT_PRICE_MINOR)


def _failures(reason: str) -> float:
    return REGISTRY.get_sample_value("controlplane_billing_subscription_failures_total", {"reason": reason}) or 0.0


async def _subscription(client: AsyncClient, headers: dict[str, str], subscription_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/subscriptions/{subscription_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _insert_usage(stack_env: dict[str, str], tenant_id: str, value: Decimal) -> None:
    """Usage stored before values were bounded per event (or summed from many events): written as the owner."""
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at, value) "
            "values ($1, $2, 'bytes', $3, $4)",
            uuid.UUID(tenant_id),
            f"legacy-{uuid.uuid4().hex}",
            datetime(2026, 1, 10, tzinfo=UTC),
            value,
        )
    finally:
        await inspector.close()


async def _clear_usage(stack_env: dict[str, str], tenant_id: str) -> None:
    inspector: asyncpg.Connection = await connect_as_inspector(stack_env)
    try:
        await inspector.execute("delete from usage_events where tenant_id = $1", uuid.UUID(tenant_id))
    finally:
        await inspector.close()


async def _world(client: AsyncClient, factory: Factory) -> tuple[Any, list[tuple[str, str]]]:
    staff = await factory.staff()
    await metric(client, staff.headers, "bytes", "sum")
    charges = [
        {"type": "flat", "amount_minor": 1000},
        {"type": "metered", "metric_code": "bytes", "model": "per_unit", "unit_amount_minor": PRICE},
    ]
    await plan(client, staff.headers, "heavy", charges)
    pairs = []
    for _ in range(3):
        tenant = await factory.tenant(staff)
        sub = await subscribe(client, staff.headers, tenant["id"], "heavy", start_at=START)
        pairs.append((tenant["id"], sub["id"]))
    return staff, pairs


async def test_a_usage_value_beyond_the_per_event_bound_is_rejected(client: AsyncClient, factory: Factory) -> None:
    staff, [(tenant_id, _), *_] = await _world(client, factory)
    _, key = await create_api_key(client, staff.headers, tenant_id, role="tenant_member")
    at = utcnow() - timedelta(seconds=1)
    largest = str(limits.MAX_USAGE_VALUE)
    response = await post_usage(
        client,
        bearer(key),
        [
            event("largest", "bytes", at, value=int(largest)),
            event("one-more", "bytes", at, value=int(largest) + 1),
            event("twenty-digits", "bytes", at, value=10**19),
            event("as-text", "bytes", at, value=2**63),
        ],
    )
    assert response.status_code == 200, response.text
    reply = response.json()
    # Within the per-event bound, but 10^9 units at the plan's 10^9 a unit would be a line of 10^18.
    assert reply["accepted"] == 0
    assert [(item["index"], item["code"]) for item in reply["rejected"]] == [
        (0, "usage_limit_exceeded"),
        (1, "invalid_value"),
        (2, "invalid_value"),
        (3, "invalid_value"),
    ]


async def test_usage_that_would_rate_a_line_past_its_bound_is_rejected_and_billing_goes_on(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "bytes", "sum")
    for code, flat in (("bulk", 1000), ("bulkier", 2000)):
        charges = [
            {"type": "flat", "amount_minor": flat},
            {"type": "metered", "metric_code": "bytes", "model": "per_unit", "unit_amount_minor": "2000"},
        ]
        await plan(client, staff.headers, code, charges)
    tenant = await factory.tenant(staff)
    sub = await subscribe(client, staff.headers, tenant["id"], "bulk")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    at = utcnow() - timedelta(seconds=1)
    largest = int(limits.MAX_USAGE_VALUE)
    batch = [event(f"e{index}", "bytes", at, value=largest) for index in range(1000)]

    # 10^15 / 2000 is 5 x 10^11 units: the first 500 events of 10^9 fit, the others would pass the bound.
    reply = (await post_usage(client, bearer(key), batch)).json()
    assert (reply["accepted"], reply["duplicates"]) == (500, 0)
    assert [(item["index"], item["code"]) for item in reply["rejected"]] == [
        (index, "usage_limit_exceeded") for index in range(500, 1000)
    ]
    # A retry answers the stored events as duplicates; one more unit, in another request, is still refused.
    again = (await post_usage(client, bearer(key), batch)).json()
    assert (again["accepted"], again["duplicates"], len(again["rejected"])) == (0, 500, 500)
    one_more = (await post_usage(client, bearer(key), [event("one-more", "bytes", at, value=1)])).json()
    assert [item["code"] for item in one_more["rejected"]] == ["usage_limit_exceeded"]
    [current] = (await usage_values(client, staff.headers, tenant["id"])).values()
    assert current["amount_minor"] == limits.MAX_LINE_MINOR

    # Changing the plan and cancelling bill that usage; nothing answers amount_out_of_range.
    changed = await client.post(
        f"/v1/subscriptions/{sub['id']}/change", json={"plan_code": "bulkier"}, headers=staff.headers
    )
    assert changed.status_code == 200, changed.text
    [usage_line] = [
        line
        for invoice in await invoices(client, staff.headers, tenant["id"])
        for line in invoice["lines"]
        if line["charge_kind"] == "metered"
    ]
    assert usage_line["amount_minor"] == limits.MAX_LINE_MINOR
    cancelled = await client.post(
        f"/v1/subscriptions/{sub['id']}/cancel", json={"at_period_end": False}, headers=staff.headers
    )
    assert cancelled.status_code == 200, cancelled.text


async def test_the_cycle_bills_a_window_filled_to_its_usage_bound(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "calls", "count")
    await plan(
        client,
        staff.headers,
        "calls",
        [
            {"type": "flat", "amount_minor": 1000},
            {"type": "metered", "metric_code": "calls", "model": "per_unit", "unit_amount_minor": "1000000000"},
        ],
    )
    tenant = await factory.tenant(staff)
    sub = await subscribe(client, staff.headers, tenant["id"], "calls")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    at = utcnow() - timedelta(seconds=1)
    # A count at 10^9 a call: 10^6 calls reach the line bound, so this batch of a thousand fits...
    reply = (await post_usage(client, bearer(key), [event(f"c{i}", "calls", at) for i in range(1000)])).json()
    assert (reply["accepted"], reply["rejected"]) == (1000, [])

    boundary = datetime.fromisoformat(sub["current_period_end"])
    report = await service.run_cycle(boundary + timedelta(hours=2), grace=GRACE)
    assert (report.invoices_created, report.failed) == (1, [])


async def test_one_subscription_whose_invoice_overflows_fails_alone_and_is_recorded(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff, [(bad_tenant, bad), (_, good), (_, late)] = await _world(client, factory)
    await _insert_usage(stack_env, bad_tenant, Decimal(10**12))
    # The third subscription is not due yet at the first run: it is pushed a day later.
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update subscriptions set current_period_end = $1 where id = $2",
            BOUNDARY + timedelta(hours=3),
            uuid.UUID(late),
        )
    finally:
        await inspector.close()
    before = _failures("amount_out_of_range")

    first = await service.run_cycle(BOUNDARY + timedelta(hours=2), grace=GRACE)
    assert (first.seen, first.invoices_created) == (2, 1), first
    assert [item[0] for item in first.failed] == [bad]
    assert "amount_out_of_range" in first.failed[0][1]
    assert _failures("amount_out_of_range") == before + 1
    recorded = await _subscription(client, staff.headers, bad)
    assert recorded["billing_error"] is not None and recorded["billing_error"].startswith("amount_out_of_range")
    assert recorded["billing_error_at"] is not None
    assert recorded["billing_attempts"] == 1
    # Retried no sooner than an hour later (the back-off doubles each attempt, up to a day).
    assert datetime.fromisoformat(recorded["billing_retry_at"]) == BOUNDARY + timedelta(hours=2)
    assert recorded["current_period_end"].startswith("2026-02-01")
    healthy = await _subscription(client, staff.headers, good)
    assert (healthy["billing_error"], healthy["billing_attempts"]) == (None, 0)
    assert healthy["current_period_end"].startswith("2026-03-01")

    # A cancel or change that would bill the usage answers a problem with a code, never a 500.
    response = await client.post(
        f"/v1/subscriptions/{bad}/cancel", json={"at_period_end": False}, headers=staff.headers
    )
    assert_problem(response, 409, "amount_out_of_range")
    await plan(
        client,
        staff.headers,
        "heavier",
        [
            {"type": "flat", "amount_minor": 2000},
            {"type": "metered", "metric_code": "bytes", "model": "per_unit", "unit_amount_minor": PRICE},
        ],
    )
    response = await client.post(
        f"/v1/subscriptions/{bad}/change", json={"plan_code": "heavier"}, headers=staff.headers
    )
    assert_problem(response, 409, "amount_out_of_range")

    # The same run again: the failed subscription waits for its back-off; nothing else is due.
    again = await service.run_cycle(BOUNDARY + timedelta(hours=2), grace=GRACE)
    assert (again.seen, again.failed) == (0, [])
    assert (await _subscription(client, staff.headers, bad))["billing_attempts"] == 1

    # Once the back-off has passed, healthy work comes first, then the retry.
    order = [pair async for batch in due_batches(BOUNDARY + timedelta(hours=3)) for pair in batch]
    assert [str(due.subscription_id) for due in order] == [late, bad]
    third = await service.run_cycle(BOUNDARY + timedelta(hours=4), grace=GRACE)
    assert (third.seen, third.invoices_created, [item[0] for item in third.failed]) == (2, 1, [bad])
    retried = await _subscription(client, staff.headers, bad)
    assert retried["billing_attempts"] == 2
    assert datetime.fromisoformat(retried["billing_retry_at"]) == BOUNDARY + timedelta(hours=5)

    # Repaired, it is billed at its next retry and its record is cleared.
    await _clear_usage(stack_env, bad_tenant)
    fourth = await service.run_cycle(BOUNDARY + timedelta(hours=6), grace=GRACE)
    assert (fourth.seen, fourth.invoices_created, fourth.failed) == (1, 1, [])
    repaired = await _subscription(client, staff.headers, bad)
    assert (repaired["billing_error"], repaired["billing_error_at"], repaired["billing_attempts"]) == (None, None, 0)
    assert repaired["billing_retry_at"] is None
    assert repaired["current_period_end"].startswith("2026-03-01")


async def test_any_error_of_one_subscription_is_recorded_on_it_and_the_cycle_goes_on(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff, [(_, broken), (_, good), (_, other)] = await _world(client, factory)
    inspector = await connect_as_inspector(stack_env)
    try:
        # Plans do not check their stored charges' content: this one can no longer be read.
        broken_plan = uuid.uuid4()
        await inspector.execute(
            "insert into plans (id, code, version, name, currency, interval, trial_days, charges, "
            "proration_upgrade, proration_downgrade) values ($1, 'broken', 1, 'Broken', 'EUR', 'month', 0, "
            "'[{\"type\": \"bogus\"}]'::jsonb, 'immediate', 'next_period')",
            broken_plan,
        )
        await inspector.execute("update subscriptions set plan_id = $1 where id = $2", broken_plan, uuid.UUID(broken))
    finally:
        await inspector.close()
    before = _failures("invalid_charge")

    report = await service.run_cycle(BOUNDARY + timedelta(hours=2), grace=GRACE)
    assert (report.seen, report.invoices_created, [item[0] for item in report.failed]) == (3, 2, [broken])
    assert _failures("invalid_charge") == before + 1
    recorded = await _subscription(client, staff.headers, broken)
    assert recorded["billing_error"].startswith("invalid_charge")
    assert recorded["billing_attempts"] == 1
    for sub in (good, other):
        assert (await _subscription(client, staff.headers, sub))["current_period_end"].startswith("2026-03-01")


async def test_a_draft_that_cannot_be_finalized_fails_alone_and_is_retried_after_a_back_off(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "basic", [{"type": "flat", "amount_minor": 1000}])
    tenants = [await factory.tenant(staff, invoice_grace_hours=2) for _ in range(2)]
    for tenant in tenants:
        await subscribe(client, staff.headers, tenant["id"], "basic")
    broken, fine = (uuid.UUID(tenant["id"]) for tenant in tenants)
    inspector = await connect_as_inspector(stack_env)
    try:
        # Taking the broken tenant's next invoice number overflows: its draft cannot be finalized.
        await inspector.execute("update tenants set invoice_sequence = $1 where id = $2", 2**63 - 1, broken)
        due = utcnow() + timedelta(hours=3)
        before = (
            REGISTRY.get_sample_value("controlplane_billing_finalize_failures_total", {"reason": "unexpected"}) or 0.0
        )

        assert await service.finalize_due_drafts(due) == 1
        drafts = {
            row["tenant_id"]: row
            for row in await inspector.fetch(
                "select tenant_id, status, number, finalize_error, finalize_attempts, finalize_at from invoices "
                "where tenant_id = any($1::uuid[])",
                [broken, fine],
            )
        }
        assert (drafts[fine]["status"], drafts[fine]["finalize_error"]) == ("finalized", None)
        failed = drafts[broken]
        assert (failed["status"], failed["number"], failed["finalize_attempts"]) == ("draft", None, 1)
        assert failed["finalize_error"].startswith("unexpected: NumericValueOutOfRangeError")
        assert failed["finalize_at"] == due + timedelta(hours=1)
        assert (
            REGISTRY.get_sample_value("controlplane_billing_finalize_failures_total", {"reason": "unexpected"})
            == before + 1
        )

        # Not retried before its back-off; repaired, it is finalized at its retry and its record cleared.
        assert await service.finalize_due_drafts(due) == 0
        await inspector.execute("update tenants set invoice_sequence = 0 where id = $1", broken)
        assert await service.finalize_due_drafts(due + timedelta(hours=1)) == 1
        row = await inspector.fetchrow(
            "select status, number, finalize_error, finalize_attempts from invoices where tenant_id = $1", broken
        )
        assert (row["status"], row["finalize_error"], row["finalize_attempts"]) == ("finalized", None, 0)
        assert row["number"].endswith("-000001")
    finally:
        await inspector.close()


async def test_a_plan_change_is_refused_when_usage_already_stored_for_its_window_is_beyond_the_new_plans_bound(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "bytes", "sum")
    for code, price in (("cheap", "0.001"), ("dear", PRICE)):
        charges = [
            {"type": "flat", "amount_minor": 1000},
            {"type": "metered", "metric_code": "bytes", "model": "per_unit", "unit_amount_minor": price},
        ]
        await plan(client, staff.headers, code, charges)
    tenant = await factory.tenant(staff)
    sub = await subscribe(client, staff.headers, tenant["id"], "cheap")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    # Stamped a few minutes ahead (within the clock skew): after the change, in the window the dear plan bills.
    ahead = utcnow() + timedelta(minutes=4)
    reply = (await post_usage(client, bearer(key), [event("ahead", "bytes", ahead, value=10**9)])).json()
    assert reply["accepted"] == 1

    response = await client.post(
        f"/v1/subscriptions/{sub['id']}/change", json={"plan_code": "dear"}, headers=staff.headers
    )
    assert_problem(response, 409, "amount_out_of_range")
    kept = await _subscription(client, staff.headers, sub["id"])
    assert kept["plan_code"] == "cheap"
    report = await service.run_cycle(
        datetime.fromisoformat(kept["current_period_end"]) + timedelta(hours=2), grace=GRACE
    )
    assert report.failed == []


async def test_a_scheduled_plan_change_is_refused_when_usage_already_stored_is_beyond_the_new_plans_bound(
    client: AsyncClient, factory: Factory
) -> None:
    """A downgrade waits for the boundary, but the new plan then rates usage stored before it (stamped up to the
    clock skew ahead): the usage already stored is checked against it when the change is asked for."""
    staff = await factory.staff()
    await metric(client, staff.headers, "bytes", "sum")
    await plan(client, staff.headers, "plain", [{"type": "flat", "amount_minor": 5000}])
    charges = [
        {"type": "flat", "amount_minor": 1000},
        {"type": "metered", "metric_code": "bytes", "model": "per_unit", "unit_amount_minor": PRICE},
    ]
    await plan(client, staff.headers, "metered", charges)
    tenant = await factory.tenant(staff)
    sub = await subscribe(client, staff.headers, tenant["id"], "plain")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    # The plain plan does not meter bytes: nothing bounds them under it.
    reply = (await post_usage(client, bearer(key), [event("big", "bytes", utcnow(), value=10**9)])).json()
    assert reply["accepted"] == 1

    response = await client.post(
        f"/v1/subscriptions/{sub['id']}/change", json={"plan_code": "metered"}, headers=staff.headers
    )
    assert_problem(response, 409, "amount_out_of_range")
    kept = await _subscription(client, staff.headers, sub["id"])
    assert (kept["plan_code"], kept["pending_plan_code"]) == ("plain", None)
