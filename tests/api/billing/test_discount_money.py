"""Discounts against plan changes, cancellations, carried credits, seat changes, the wallet and voids: what the
tenant is billed and credited, worked by hand in the comments (EUR). The subscription's clock is frozen on
15 February 2026, half-way through a 28-day February."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service as billing_service
from billing.invoices import adjustments_repository
from billing.periods import Period
from billing.rating import Line
from billing.subscriptions import service as subscriptions_service
from controlplane.core.db import tenant_tx
from tests.api._helpers import audit_actions
from tests.api.billing._support import credit_notes, invoices, plan, subscribe
from tests.api.billing.test_coupons import FEBRUARY_CYCLE, MARCH_CYCLE, START, _pro, _redeem, coupon
from tests.factories import Actor, Factory

FEBRUARY_15 = datetime(2026, 2, 15, 12, tzinfo=UTC)
FEBRUARY = Period(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC))


class _February15(datetime):
    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return FEBRUARY_15 if tz is not None else FEBRUARY_15.replace(tzinfo=None)


@pytest.fixture
def on_february_15(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions_service, "datetime", _February15)


async def _subscribed(
    client: AsyncClient, factory: Factory, plan_code: str = "pro", seats: int = 2, **coupon_fields: Any
) -> tuple[Actor, dict[str, Any], dict[str, Any], Actor]:
    """A tenant on `plan_code` since 15 January 2026 with the coupon `deal` redeemed."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    subscription = await subscribe(client, staff.headers, tenant["id"], plan_code, seats=seats, start_at=START)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await coupon(client, staff, f"deal-{uuid.uuid4().hex[:8]}", **coupon_fields)
    codes = [
        item["code"] for item in (await client.get("/v1/coupons?limit=100", headers=staff.headers)).json()["items"]
    ]
    assert (await _redeem(client, admin.headers, subscription["id"], codes[-1])).status_code == 201
    return staff, tenant, subscription, admin


async def _cancel_now(client: AsyncClient, admin: Actor, subscription_id: str) -> None:
    response = await client.post(
        f"/v1/subscriptions/{subscription_id}/cancel", json={"at_period_end": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


async def test_cancelling_credits_the_unused_time_as_billed(
    client: AsyncClient, factory: Factory, on_february_15: None
) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    _, tenant, subscription, admin = await _subscribed(client, factory, percent_off_bps=5000)
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    [_, february] = await invoices(client, admin.headers, tenant["id"])
    # February: 1000 + 2 x 250 = 1500, 50 % off forever: 750 billed.
    assert (february["discount_minor"], february["total_minor"]) == (-750, 750)

    # Cancelled on 15 February: 14 of 28 days unused, 750 at the plan's price, 750 x 750 / 1500 = 375 as billed.
    await _cancel_now(client, admin, subscription["id"])
    notes = await credit_notes(client, admin.headers, february["id"])
    assert [note["amount_minor"] for note in notes] == [375]
    assert (await billing_service.verify_ledger()).ok


async def test_an_upgrade_credits_the_old_plan_as_billed(
    client: AsyncClient, factory: Factory, on_february_15: None
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "small", [{"type": "flat", "name": "Small", "amount_minor": 10000}])
    await plan(client, staff.headers, "large", [{"type": "flat", "name": "Large", "amount_minor": 20000}])
    _, tenant, subscription, admin = await _subscribed(client, factory, "small", 1, percent_off_bps=5000)
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))

    response = await client.post(
        f"/v1/subscriptions/{subscription['id']}/change", json={"plan_code": "large"}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    change = (await invoices(client, admin.headers, tenant["id"]))[-1]
    # Small (10000) billed at 50 %: half a period unused credits 5000 x 1/2 = -2500; large's half is +10000,
    # whose 50 % is -5000: 2500 owed, not 0.
    assert change["kind"] == "change"
    assert [(line["charge_kind"], line["amount_minor"]) for line in change["lines"]] == [
        ("proration", -2500),
        ("proration", 10000),
        ("discount", -5000),
    ]
    assert change["total_minor"] == 2500


async def test_a_discount_leaves_the_tenants_carried_credit_to_be_carried_on(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    _, tenant, subscription, admin = await _subscribed(client, factory, percent_off_bps=5000)
    credit = Line("Credit from before", "proration", Decimal(1), Decimal(-1000), Decimal(-1000), FEBRUARY)
    async with tenant_tx(uuid.UUID(tenant["id"])):
        await adjustments_repository.insert_pending_items(
            uuid.UUID(tenant["id"]), uuid.UUID(subscription["id"]), [credit]
        )
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    await billing_service.run_cycle(MARCH_CYCLE, grace=timedelta(hours=1))
    [_, february, march] = await invoices(client, admin.headers, tenant["id"])
    # February: 1500 of charges, the tenant's -1000, 50 % of the charges = -750: -250 left, carried to March.
    assert february["discount_minor"] == -750
    assert february["lines"][-1]["amount_minor"] == 250
    assert february["total_minor"] == 0
    # March: 1500, 750 off, the 250 carried: 500.
    assert [line["amount_minor"] for line in march["lines"] if line["charge_kind"] != "flat"][-2:] == [-250, -750]
    assert march["total_minor"] == 500


async def test_seat_increases_take_a_forever_amount_once_per_period(
    client: AsyncClient, factory: Factory, on_february_15: None
) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    _, tenant, subscription, admin = await _subscribed(
        client, factory, amount_off_minor=200, currency="EUR", duration="forever"
    )
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    for seats in (3, 4):
        response = await client.post(
            f"/v1/subscriptions/{subscription['id']}/change", json={"seats": seats}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
    [_, february, *changes] = await invoices(client, admin.headers, tenant["id"])
    # February's cycle invoice: 1500 - 200. Neither seat increase gets any of the 200 again:
    # to 3 seats: (1000 + 3 x 250) / 2 = 875, less the 2 seats' unused half at its billed share,
    #   750 x 1300 / 1500 = 650: 225;
    # to 4 seats: 2000 / 2 = 1000, less the 3 seats' unused half, 875 at the period's share so far,
    #   (1500 + 875 - 200) / (1500 + 875) = 2175 / 2375: 801.3 -> 801: 199.
    assert (february["discount_minor"], february["total_minor"]) == (-200, 1300)
    assert [(item["kind"], item["discount_minor"], item["total_minor"]) for item in changes] == [
        ("change", 0, 225),
        ("change", 0, 199),
    ]


async def test_cancelling_an_invoice_paid_partly_by_the_wallet_credits_what_the_card_paid(
    client: AsyncClient, factory: Factory, on_february_15: None
) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    _, tenant, subscription, admin = await _subscribed(client, factory, percent_off_bps=1000)
    granted = await client.post(
        f"/v1/tenants/{tenant['id']}/wallet/top-ups", json={"amount_minor": 1000, "paid": False}, headers=staff.headers
    )
    assert granted.status_code == 201, granted.text
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    await _cancel_now(client, admin, subscription["id"])
    february = (await invoices(client, admin.headers, tenant["id"]))[1]
    # February: 1500 - 150 = 1350; the wallet paid 1000, 350 is due. Unused: 750 x 1350 / 1500 = 675, of which a
    # credit note may take only what the wallet did not pay: 350.
    assert (february["total_minor"], february["credits_applied_minor"]) == (1350, 1000)
    notes = await credit_notes(client, admin.headers, february["id"])
    assert [note["amount_minor"] for note in notes] == [350]
    after = (await client.get(f"/v1/invoices/{february['id']}", headers=admin.headers)).json()
    assert (after["credited_minor"], after["amount_due_minor"]) == (350, 0)
    assert (await billing_service.verify_ledger()).ok


async def test_voiding_an_invoice_gives_back_the_discount_it_used(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    _, tenant, subscription, admin = await _subscribed(
        client, factory, amount_off_minor=1500, currency="EUR", duration="once"
    )
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    [_, february] = await invoices(client, admin.headers, tenant["id"])
    path = f"/v1/subscriptions/{subscription['id']}/discounts"
    [used] = (await client.get(path, headers=admin.headers)).json()["items"]
    assert (february["discount_minor"], used["status"], used["amount_remaining_minor"]) == (-1500, "ended", 0)

    voided = await client.post(f"/v1/invoices/{february['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text
    [back] = (await client.get(path, headers=admin.headers)).json()["items"]
    assert (back["status"], back["ended_reason"], back["amount_remaining_minor"]) == ("active", None, 1500)
    assert "discount.given_back" in await audit_actions(client, staff, tenant["id"])
    # The 1500 is there for March's invoice.
    await billing_service.run_cycle(MARCH_CYCLE, grace=timedelta(hours=1))
    march = (await invoices(client, admin.headers, tenant["id"]))[-1]
    assert (march["discount_minor"], march["total_minor"]) == (-1500, 0)
