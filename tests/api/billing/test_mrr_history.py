"""The MRR history: each change of a tenant's MRR is appended in the transaction that made it, with its cause
and when it takes effect; the app role can never rewrite it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from billing import service as billing
from billing.analytics import history
from controlplane.core.db import tenant_tx
from tests.api.billing._support import plan, subscribe
from tests.conftest import connect_as_inspector
from tests.factories import Factory


async def _rows(stack_env: dict[str, str], tenant_id: str) -> list[Any]:
    """The tenant's history in order, as the inspector reads it."""
    connection = await connect_as_inspector(stack_env)
    try:
        return list(
            await connection.fetch(
                "select currency, effective_at, mrr_minor, cause from mrr_changes where tenant_id = $1 "
                "order by effective_at, id",
                tenant_id,
            )
        )
    finally:
        await connection.close()


async def _history(stack_env: dict[str, str], tenant_id: str) -> list[tuple[str, int, str]]:
    return [(row["currency"].strip(), row["mrr_minor"], row["cause"]) for row in await _rows(stack_env, tenant_id)]


async def _post(client: AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def test_a_subscriptions_life_is_recorded_change_by_change(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    # 49.00 flat + 9.99 a seat a month.
    charges = [{"type": "flat", "amount_minor": 4900}, {"type": "per_seat", "unit_amount_minor": 999}]
    await plan(client, staff.headers, "team", charges)
    tenant = await factory.tenant(staff)
    created = await subscribe(client, staff.headers, tenant["id"], "team", seats=2)
    sid = created["id"]
    await _post(client, staff.headers, f"/v1/subscriptions/{sid}/change", {"seats": 5})
    await _post(client, staff.headers, f"/v1/subscriptions/{sid}/change", {"seats": 5})  # a repeat: no row
    await _post(client, staff.headers, f"/v1/subscriptions/{sid}/cancel", {"at_period_end": False})

    assert await _history(stack_env, tenant["id"]) == [
        ("EUR", 4900 + 2 * 999, "subscription_created"),
        ("EUR", 4900 + 5 * 999, "subscription_changed"),
        ("EUR", 0, "subscription_canceled"),
    ]


async def test_a_subscription_started_on_the_day_of_a_cancellation_counts_after_it(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "basic", [{"type": "flat", "amount_minor": 1000}])
    await plan(client, staff.headers, "plus", [{"type": "flat", "amount_minor": 3000}])
    tenant = await factory.tenant(staff)
    first = await subscribe(client, staff.headers, tenant["id"], "basic")
    await _post(client, staff.headers, f"/v1/subscriptions/{first['id']}/cancel", {"at_period_end": False})
    # Its first period starts at today's midnight, before the cancellation: it still comes after it.
    again = await subscribe(client, staff.headers, tenant["id"], "basic")
    assert await _history(stack_env, tenant["id"]) == [
        ("EUR", 1000, "subscription_created"),
        ("EUR", 0, "subscription_canceled"),
        ("EUR", 1000, "subscription_created"),
    ]
    await _post(client, staff.headers, f"/v1/subscriptions/{again['id']}/cancel", {"at_period_end": False})
    await subscribe(client, staff.headers, tenant["id"], "plus")
    assert (await _history(stack_env, tenant["id"]))[-2:] == [
        ("EUR", 0, "subscription_canceled"),
        ("EUR", 3000, "subscription_created"),
    ]


async def test_a_yearly_price_a_trial_and_a_forever_discount(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    # 1,000.00 a year is 83.3333… a month: 8333 after its one rounding.
    await plan(client, staff.headers, "yearly", [{"type": "flat", "amount_minor": 100000}], interval="year")
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    response = await client.post(
        "/v1/coupons",
        json={"code": "quarter", "name": "Quarter", "duration": "forever", "percent_off_bps": 2500},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text

    yearly = await factory.tenant(staff)
    subscription = await subscribe(client, staff.headers, yearly["id"], "yearly")
    await _post(client, staff.headers, f"/v1/subscriptions/{subscription['id']}/discounts", {"coupon_code": "quarter"})
    # 83.3333… less 25 % is 62.50 exactly.
    assert await _history(stack_env, yearly["id"]) == [
        ("EUR", 8333, "subscription_created"),
        ("EUR", 6250, "discount_applied"),
    ]

    trialing = await factory.tenant(staff)
    trial = await subscribe(client, staff.headers, trialing["id"], "trial")
    await _post(client, staff.headers, f"/v1/subscriptions/{trial['id']}/cancel", {"at_period_end": False})
    assert await _history(stack_env, trialing["id"]) == [("EUR", 0, "trial_started"), ("EUR", 0, "trial_canceled")]


async def test_a_subscription_imported_with_a_past_start_counts_from_that_start(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "basic", [{"type": "flat", "amount_minor": 1000}])
    tenant = await factory.tenant(staff)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=40)
    await subscribe(client, staff.headers, tenant["id"], "basic", start_at=start)
    rows = await _rows(stack_env, tenant["id"])
    # From the start of its first period: the midnight (UTC) of the day it started.
    midnight = start.replace(hour=0, minute=0, second=0)
    assert [(row["effective_at"], row["mrr_minor"], row["cause"]) for row in rows] == [(midnight, 1000, "import")]


async def test_the_app_role_cannot_rewrite_the_history(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "basic", [{"type": "flat", "amount_minor": 1000}])
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "basic")
    app = await asyncpg.connect(stack_env["DATABASE_URL"], server_settings={"app.scope": "system"})
    try:
        for statement in ("update mrr_changes set mrr_minor = 1", "delete from mrr_changes"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await app.execute(statement)
    finally:
        await app.close()
    assert await _history(stack_env, tenant["id"]) == [("EUR", 1000, "subscription_created")]


async def _attach_later(tenant_id: str, billable_from: datetime) -> None:
    # A plugin's add-on attached during its trial: 20.00 a month once the trial ends.
    async with tenant_tx(uuid.UUID(tenant_id)):
        await billing.attach_addon(
            tenant_id=uuid.UUID(tenant_id),
            source_id=uuid.uuid4(),
            name="Editor Pro",
            charge={"type": "flat", "name": "Licence", "amount_minor": "2000"},
            currency="EUR",
            quantity=1,
            billable_from=billable_from,
        )


async def test_an_addon_billable_later_is_recorded_at_its_own_time_by_the_catch_up(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "basic", [{"type": "flat", "amount_minor": 1000}])
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "basic")
    billable_from = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    await _attach_later(tenant["id"], billable_from)

    assert await billing.catch_up_addon_changes(billable_from - timedelta(seconds=1)) == billing.CatchUpReport(0, 0)
    for _ in range(2):  # a second run finds it recorded
        await billing.catch_up_addon_changes(billable_from + timedelta(minutes=10))
    rows = await _rows(stack_env, tenant["id"])
    assert [(row["mrr_minor"], row["cause"]) for row in rows] == [
        (1000, "subscription_created"),
        (3000, "addon_changed"),
    ]
    assert rows[1]["effective_at"] == billable_from


async def test_the_catch_up_goes_on_past_a_tenant_that_fails(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "basic", [{"type": "flat", "amount_minor": 1000}])
    billable_from = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    broken, healthy = await factory.tenant(staff), await factory.tenant(staff)
    for tenant in (broken, healthy):
        await subscribe(client, staff.headers, tenant["id"], "basic")
        await _attach_later(tenant["id"], billable_from)
    record = history.record

    async def failing_for_one(tenant_id: uuid.UUID, cause: str, at: datetime) -> None:
        if str(tenant_id) == broken["id"]:
            raise RuntimeError("this tenant's data is bad")
        await record(tenant_id, cause, at)

    monkeypatch.setattr(history, "record", failing_for_one)
    report = await billing.catch_up_addon_changes(billable_from + timedelta(minutes=10))
    assert report == billing.CatchUpReport(1, 1)
    assert (await _history(stack_env, healthy["id"]))[-1] == ("EUR", 3000, "addon_changed")
    assert (await _history(stack_env, broken["id"]))[-1] == ("EUR", 1000, "subscription_created")
