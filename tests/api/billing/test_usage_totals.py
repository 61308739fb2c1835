"""Ingestion checks a batch against its metric's running total of the open window (`usage_totals`), not against
the window's events read again: the total must be the window's aggregate whatever happens to the window.

The metric of these tests sums event values at 2,000 minor units a unit: 10^15 / 2,000 = 5 x 10^11 units fit one
line (billing.limits), i.e. 500 events of the largest value, 10^9. A batch's events are checked in order, so the
first ones that fit are kept."""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from billing import limits, service
from billing.subscriptions.state import forget_catalogue
from billing.usage import repository
from controlplane.core.db import tenant_tx
from tests.api._helpers import bearer, create_api_key
from tests.api.billing._support import event, invoices, metric, plan, post_usage, subscribe, usage_values, utcnow
from tests.conftest import connect_as_inspector
from tests.factories import Factory

BIG = int(limits.MAX_USAGE_VALUE)  # 10^9
ROOM = 500  # events of BIG within the bound
PRICE = "2000"


def _plan_charges(metric_code: str = "bytes", price: str = PRICE) -> list[dict[str, Any]]:
    return [
        {"type": "flat", "amount_minor": 1000},
        {"type": "metered", "metric_code": metric_code, "model": "per_unit", "unit_amount_minor": price},
    ]


async def _tenant(client: AsyncClient, factory: Factory, **subscription: Any) -> tuple[Any, dict[str, Any], str]:
    """Staff, a tenant subscribed to `bulk` (bytes at 2,000 a unit), and a tenant API key."""
    staff = await factory.staff()
    await metric(client, staff.headers, "bytes", "sum")
    await plan(client, staff.headers, "bulk", _plan_charges())
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "bulk", **subscription)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    return staff, tenant, key


def _batch(prefix: str, count: int, at: Any = None, value: int = BIG) -> list[dict[str, Any]]:
    at = at or utcnow() - timedelta(seconds=1)
    return [event(f"{prefix}-{index}", "bytes", at, value=value) for index in range(count)]


async def _report(client: AsyncClient, key: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    response = await post_usage(client, bearer(key), events)
    assert response.status_code == 200, response.text
    reply: dict[str, Any] = response.json()
    return reply


def _refused(reply: dict[str, Any]) -> list[int]:
    assert {item["code"] for item in reply["rejected"]} <= {"usage_limit_exceeded"}, reply["rejected"]
    return [item["index"] for item in reply["rejected"]]


async def _stored(stack_env: dict[str, str], tenant_id: str) -> tuple[int, Decimal, list[Any]]:
    """(events stored, their sum, the tenant's usage_totals rows) as the owner reads them."""
    inspector = await connect_as_inspector(stack_env)
    try:
        events = await inspector.fetchrow(
            "select count(*) as n, coalesce(sum(value), 0) as units from usage_events where tenant_id = $1",
            uuid.UUID(tenant_id),
        )
        totals = await inspector.fetch(
            "select metric_code, window_start, units, events from usage_totals where tenant_id = $1 order by 1",
            uuid.UUID(tenant_id),
        )
    finally:
        await inspector.close()
    assert events is not None
    return int(events["n"]), Decimal(events["units"]), [tuple(row) for row in totals]


def _meet_before_locking(monkeypatch: pytest.MonkeyPatch, batches: int) -> None:
    """Every batch inserts before any takes its metrics' totals locks (they then contend for them): the race the
    locks are for, made certain instead of left to the event loop's timing."""
    arrived = 0
    everyone = asyncio.Event()
    lock = repository.lock_usage_totals

    async def met(tenant_id: uuid.UUID, codes: Any) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == batches:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), timeout=30)
        await lock(tenant_id, codes)

    monkeypatch.setattr(repository, "lock_usage_totals", met)


async def test_a_retried_batch_is_not_counted_twice(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    _, tenant, key = await _tenant(client, factory)
    first = _batch("first", 300)
    assert (await _report(client, key, first))["accepted"] == 300
    # The same batch again: every event is a duplicate, and the window's total does not move.
    again = await _report(client, key, first)
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 300, [])
    # Half of a batch already stored, half new: only the new half counts.
    mixed = await _report(client, key, first[:100] + _batch("second", 150))
    assert (mixed["accepted"], mixed["duplicates"], mixed["rejected"]) == (150, 100, [])
    # 450 stored: 50 more fit, not one more.
    last = await _report(client, key, _batch("last", 60))
    assert (last["accepted"], _refused(last)) == (50, list(range(50, 60)))

    count, units, totals = await _stored(stack_env, tenant["id"])
    assert (count, units) == (ROOM, ROOM * BIG)
    [(code, _, total_units, total_events)] = totals
    assert (code, total_units, total_events) == ("bytes", ROOM * BIG, ROOM)


async def test_concurrent_batches_never_both_pass_a_bound_and_refused_events_are_not_stored(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six batches of 200 at once, 1,200 events for a room of 500: each fits on its own, so without the totals
    lock several would read the same total and all pass."""
    staff, tenant, key = await _tenant(client, factory)
    batches = [_batch(f"racer{number}", 200) for number in range(6)]
    _meet_before_locking(monkeypatch, len(batches))
    replies = await asyncio.gather(*(_report(client, key, batch) for batch in batches))

    assert sum(reply["accepted"] for reply in replies) == ROOM
    assert sum(len(_refused(reply)) for reply in replies) == 1200 - ROOM
    for reply in replies:
        # A batch keeps a prefix of its events: the rest passed the bound once the ones before were counted.
        assert _refused(reply) == list(range(reply["accepted"], 200))
    count, units, totals = await _stored(stack_env, tenant["id"])
    assert (count, units) == (ROOM, ROOM * BIG)
    assert [(row[0], row[2], row[3]) for row in totals] == [("bytes", ROOM * BIG, ROOM)]
    [current] = (await usage_values(client, staff.headers, tenant["id"])).values()
    assert (Decimal(current["value"]), current["amount_minor"]) == (ROOM * BIG, limits.MAX_LINE_MINOR)
    # Every refused key can still be sent: it was never stored (and is refused again, the window being full).
    refused_keys = [batch[index] for batch, reply in zip(batches, replies, strict=True) for index in _refused(reply)]
    retry = await _report(client, key, refused_keys[:10])
    assert (retry["accepted"], retry["duplicates"], _refused(retry)) == (0, 0, list(range(10)))


async def test_usage_stored_before_the_totals_is_counted_from_the_events(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """A window without a total (events stored before it existed): the first batch computes it from the events."""
    _, tenant, key = await _tenant(client, factory)
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at, value) "
            "values ($1, 'legacy', 'bytes', $2, $3)",
            uuid.UUID(tenant["id"]),
            utcnow() - timedelta(minutes=1),
            400 * BIG,
        )
    finally:
        await inspector.close()
    reply = await _report(client, key, _batch("after", 150))
    assert (reply["accepted"], _refused(reply)) == (100, list(range(100, 150)))
    count, units, totals = await _stored(stack_env, tenant["id"])
    assert (count, units) == (101, ROOM * BIG)
    assert [(row[0], row[2], row[3]) for row in totals] == [("bytes", ROOM * BIG, 101)]


async def test_a_batch_after_the_billing_cycle_moved_the_window_counts_only_the_new_windows_events(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    start = utcnow() - timedelta(days=45)
    staff, tenant, key = await _tenant(client, factory, start_at=start)
    # 300 in the first period, 100 now: both count in the window open until the cycle (400 of 500).
    assert (await _report(client, key, _batch("old", 300, at=start + timedelta(hours=1))))["accepted"] == 300
    assert (await _report(client, key, _batch("recent", 100)))["accepted"] == 100
    report = await service.run_cycle(utcnow(), grace=timedelta(0))
    assert report.failed == [], report.failed
    [(_, first_window, _, _)] = (await _stored(stack_env, tenant["id"]))[2]
    assert first_window <= start  # the subscription's first day

    # The window now starts at the last boundary: only the 100 recent events are in it, so 400 more fit.
    reply = await _report(client, key, _batch("new", 450))
    assert (reply["accepted"], _refused(reply)) == (400, list(range(400, 450)))
    _, _, [(code, window_start, units, events)] = await _stored(stack_env, tenant["id"])
    assert first_window < window_start <= utcnow()
    assert (code, units, events) == ("bytes", ROOM * BIG, ROOM)
    # The cycle billed the first period's 300 events, and the 100 recent ones stay for the open window.
    billed = [
        line["amount_minor"]
        for invoice in await invoices(client, staff.headers, tenant["id"])
        for line in invoice["lines"]
        if line["charge_kind"] == "metered"
    ]
    assert sum(billed) == 300 * BIG * int(PRICE)


async def test_a_plan_change_moves_the_window_and_the_new_plans_bound_applies(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff, tenant, key = await _tenant(client, factory)
    await plan(client, staff.headers, "dearer", _plan_charges(price="4000"))  # 2.5 x 10^11 units a line
    assert (await _report(client, key, _batch("before", 450)))["accepted"] == 450
    _, _, [(_, first_window, _, _)] = await _stored(stack_env, tenant["id"])
    [sub] = (await client.get(f"/v1/tenants/{tenant['id']}/subscriptions", headers=staff.headers)).json()["items"]
    url = f"/v1/subscriptions/{sub['id']}/change"
    changed = await client.post(url, json={"plan_code": "dearer"}, headers=staff.headers)
    assert changed.status_code == 200, changed.text
    # The change billed the 450 and opened a window from its moment: the dearer plan's 250 fit there.
    # Stamped to the second (a moment after the change's).
    reply = await _report(client, key, _batch("after", 300, at=utcnow() + timedelta(seconds=2)))
    assert (reply["accepted"], _refused(reply)) == (250, list(range(250, 300)))
    _, _, [(_, window_start, units, events)] = await _stored(stack_env, tenant["id"])
    assert window_start > first_window
    assert (units, events) == (250 * BIG, 250)


async def test_a_metric_an_addon_starts_to_meter_is_bounded_by_everything_stored_before(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """Usage of a metric no charge meters is stored unbounded (no total kept); once a metered add-on meters it,
    its first batch computes the window's total from every event stored before."""
    staff = await factory.staff()
    await metric(client, staff.headers, "calls", "count")
    await metric(client, staff.headers, "bytes", "sum")
    await plan(client, staff.headers, "calls", _plan_charges("calls", "1"))
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "calls")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    assert (await _report(client, key, _batch("free", 300)))["accepted"] == 300
    assert (await _stored(stack_env, tenant["id"]))[2] == []

    forget_catalogue()
    charge = {"type": "metered", "name": "Transfer", "metric_code": "bytes", "model": "per_unit"}
    charge["unit_amount_minor"] = PRICE
    tenant_id = uuid.UUID(tenant["id"])
    async with tenant_tx(tenant_id):
        await service.attach_addon(
            tenant_id=tenant_id,
            source_id=uuid.uuid4(),
            name="Transfer",
            charge=charge,
            currency="EUR",
            quantity=1,
            billable_from=utcnow() - timedelta(days=1),
        )
    reply = await _report(client, key, _batch("metered", 300))
    assert (reply["accepted"], _refused(reply)) == (200, list(range(200, 300)))
    _, _, totals = await _stored(stack_env, tenant["id"])
    assert [(row[0], row[2], row[3]) for row in totals] == [("bytes", ROOM * BIG, ROOM)]


async def test_an_erased_tenants_usage_is_billed_as_accepted_and_nothing_more_is_stored(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """The erasure cancels the subscription now: its final invoice bills the window's events, the accepted ones
    only (a refused event was never stored), and the tenant reports nothing afterwards."""
    staff, tenant, key = await _tenant(client, factory)
    reply = await _report(client, key, _batch("before", 520))
    assert (reply["accepted"], len(_refused(reply))) == (ROOM, 20)
    erased = await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)
    assert erased.status_code == 202, erased.text
    [metered] = [
        line
        for invoice in await invoices(client, staff.headers, tenant["id"])
        for line in invoice["lines"]
        if line["charge_kind"] == "metered"
    ]
    assert metered["amount_minor"] == limits.MAX_LINE_MINOR
    late = await post_usage(client, staff.headers, _batch("late", 1), tenant_id=tenant["id"])
    assert (late.status_code, late.json()["code"]) == (403, "tenant_not_active"), late.text
    count, units, _ = await _stored(stack_env, tenant["id"])
    assert (count, units) == (ROOM, ROOM * BIG)


async def test_batches_sending_the_same_keys_in_opposite_orders_are_stored_once_without_an_error(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], report: Any
) -> None:
    """Batches insert side by side, each waiting for the other's uncommitted keys; sent in opposite orders they
    would wait in a circle (a deadlock PostgreSQL breaks by failing one) if rows went in in the order sent: they go
    in in key order, so one waits for the other and finds its keys stored: neither fails."""
    _, tenant, key = await _tenant(client, factory)
    rounds, size = 5, 1000
    for round_ in range(rounds):
        forward = _batch(f"both{round_}", size, value=1)
        replies = await asyncio.gather(*(_report(client, key, events) for events in (forward, forward[::-1])))
        assert sum(reply["accepted"] for reply in replies) == size
        assert sum(reply["duplicates"] for reply in replies) == size
    count, units, _ = await _stored(stack_env, tenant["id"])
    assert (count, units) == (rounds * size, rounds * size)
    report(f"usage batches: {rounds} pairs of 1,000 events with the same keys in opposite orders, no deadlock")


async def test_a_bounded_unique_count_counts_the_values_stored_before_the_batch(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """A `unique_count` keeps no running total: its bound is checked on the window's events stored before the
    batch (the batch's own, inserted first, left out), each event of the batch counted as a new value."""
    staff = await factory.staff()
    await metric(client, staff.headers, "users", "unique_count", field="user")
    # A package of one user at 10^12: (10^15 - 10^12) / 10^12 = 999 users fit one line.
    package = {"type": "metered", "metric_code": "users", "model": "package", "amount_minor": 10**12}
    await plan(client, staff.headers, "seats", [{**package, "package_size": 1}])
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "seats")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    at = utcnow() - timedelta(seconds=1)

    def users(prefix: str, count: int) -> list[dict[str, Any]]:
        return [event(f"{prefix}-{n}", "users", at, properties={"user": f"{prefix}-{n}"}) for n in range(count)]

    assert (await _report(client, key, users("a", 600)))["accepted"] == 600
    reply = await _report(client, key, users("b", 500))
    assert (reply["accepted"], _refused(reply)) == (399, list(range(399, 500)))
    count, _, totals = await _stored(stack_env, tenant["id"])
    assert (count, totals) == (999, [])


async def test_concurrent_unique_count_batches_never_both_pass_its_bound(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No running total (no row to lock) for a `unique_count`: the metric's totals lock alone keeps batches from
    reading the same stored values and all passing."""
    staff = await factory.staff()
    await metric(client, staff.headers, "users", "unique_count", field="user")
    package = {"type": "metered", "metric_code": "users", "model": "package", "amount_minor": 10**12}
    await plan(client, staff.headers, "seats", [{**package, "package_size": 1}])  # 999 users a line
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "seats")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    at = utcnow() - timedelta(seconds=1)
    batches = [
        [event(f"r{n}-{i}", "users", at, properties={"user": f"r{n}-{i}"}) for i in range(400)] for n in range(5)
    ]
    _meet_before_locking(monkeypatch, len(batches))
    replies = await asyncio.gather(*(_report(client, key, batch) for batch in batches))
    assert sum(reply["accepted"] for reply in replies) == 999
    assert (await _stored(stack_env, tenant["id"]))[0] == 999


async def test_the_app_role_deletes_only_usage_events_its_own_transaction_inserted(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """Refused events are removed by the transaction that inserted them; stored usage is never removed by the
    app (a restrictive policy on DELETE)."""
    _, tenant, key = await _tenant(client, factory)
    assert (await _report(client, key, _batch("kept", 3)))["accepted"] == 3
    app = await asyncpg.connect(stack_env["DATABASE_URL"])
    try:
        async with app.transaction():
            await app.execute("select set_config('app.tenant_id', $1, true)", tenant["id"])
            assert await app.execute("delete from usage_events where tenant_id = $1", uuid.UUID(tenant["id"])) == (
                "DELETE 0"
            )
            await app.execute(
                "insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at, value) "
                "values ($1, 'own', 'bytes', now(), 1)",
                uuid.UUID(tenant["id"]),
            )
            assert await app.execute("delete from usage_events where tenant_id = $1", uuid.UUID(tenant["id"])) == (
                "DELETE 1"
            )
    finally:
        await app.close()
    assert (await _stored(stack_env, tenant["id"]))[0] == 3


async def test_an_addon_attached_while_a_batch_waits_for_the_lock_bounds_that_batch(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch has inserted; before it takes the metric's lock, a metered add-on is attached and committed (its
    own check saw only the usage already committed). The batch reads the charges once it holds the lock, so
    the add-on's bound applies to it."""
    staff = await factory.staff()
    await metric(client, staff.headers, "calls", "count")
    await metric(client, staff.headers, "bytes", "sum")
    await plan(client, staff.headers, "calls", _plan_charges("calls", "1"))
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "calls")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    assert (await _report(client, key, _batch("unbounded", 300)))["accepted"] == 300
    tenant_id = uuid.UUID(tenant["id"])

    async def attach() -> None:
        charge = {"type": "metered", "name": "Transfer", "metric_code": "bytes", "model": "per_unit"}
        async with tenant_tx(tenant_id):
            await service.attach_addon(
                tenant_id=tenant_id,
                source_id=uuid.uuid4(),
                name="Transfer",
                charge={**charge, "unit_amount_minor": PRICE},
                currency="EUR",
                quantity=1,
                billable_from=utcnow() - timedelta(days=1),
            )

    lock = repository.lock_usage_totals
    attached: list[bool] = []

    async def attach_first(locked_tenant: uuid.UUID, codes: Any) -> None:
        if not attached:
            attached.append(True)
            # Its own transaction (a fresh context: not the batch's), committed before the batch goes on.
            await asyncio.create_task(attach(), context=contextvars.Context())
        await lock(locked_tenant, codes)

    monkeypatch.setattr(repository, "lock_usage_totals", attach_first)
    reply = await _report(client, key, _batch("raced", 300))
    assert attached == [True]
    assert (reply["accepted"], _refused(reply)) == (200, list(range(200, 300)))
