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
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import audit_actions
from tests.api.billing._support import credit_notes, invoices, plan, subscribe
from tests.api.billing.test_coupons import FEBRUARY_CYCLE, MARCH_CYCLE, START, _pro, _redeem, coupon
from tests.api.billing.test_wallets import GOOD_CARD, add_card, card
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


async def _wallet_paid_february(
    client: AsyncClient, factory: Factory, currency: str, *, purchased: bool, settings: Settings | None = None
) -> tuple[Actor, dict[str, Any], dict[str, Any], Actor]:
    """A tenant in `currency` on pro (1000 + 2 seats x 250) since 15 January with 10 % off, 1000 of credit in
    its wallet (bought by card, or granted), and February's cycle invoice: 1500 - 150 = 1350, the wallet
    paying 1000 of it."""
    staff = await factory.staff()
    await _pro(client, staff, currency=currency)
    tenant = await factory.tenant(staff, currency=currency)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro", seats=2, start_at=START)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await coupon(client, staff, f"deal-{uuid.uuid4().hex[:8]}", percent_off_bps=1000)
    codes = [
        item["code"] for item in (await client.get("/v1/coupons?limit=100", headers=staff.headers)).json()["items"]
    ]
    assert (await _redeem(client, admin.headers, subscription["id"], codes[-1])).status_code == 201
    if purchased:
        assert settings is not None
        stripe = make_stripe_client(settings, SecretStore.connect(settings))
        await add_card(client, admin.headers, tenant["id"], card(stripe, GOOD_CARD))
    bought = await client.post(
        f"/v1/tenants/{tenant['id']}/wallet/top-ups",
        json={"amount_minor": 1000, "paid": purchased},
        headers=(admin if purchased else staff).headers,
    )
    assert bought.status_code == 201, bought.text
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    [february] = [item for item in await invoices(client, admin.headers, tenant["id"]) if item["kind"] == "cycle"][1:]
    assert (february["total_minor"], february["credits_applied_minor"]) == (1350, 1000)
    if purchased:
        # The card pays the 350 left.
        paid = await client.post(f"/v1/invoices/{february['id']}/pay", headers=admin.headers)
        assert (paid.status_code, paid.json()["status"]) == (200, "succeeded"), paid.text
    return staff, tenant, subscription, admin


@pytest.mark.parametrize(("currency", "purchased"), [("USD", True), ("JPY", False), ("EUR", False)])
async def test_cancelling_an_invoice_paid_partly_by_the_wallet_gives_the_wallet_its_share_back(
    client: AsyncClient, factory: Factory, settings: Settings, on_february_15: None, currency: str, purchased: bool
) -> None:
    """Card first, then wallet: February's 1350 was paid 1000 by the wallet and 350 by the card (or is still
    due). Unused: 750 x 1350 / 1500 = 675, credited in full by one note: 350 of what the card paid, and the
    other 325 of what the wallet paid goes back to the wallet (its credits applied fall to 675)."""
    _, tenant, subscription, admin = await _wallet_paid_february(
        client, factory, currency, purchased=purchased, settings=settings
    )
    await _cancel_now(client, admin, subscription["id"])
    [february] = [item for item in await invoices(client, admin.headers, tenant["id"]) if item["kind"] == "cycle"][1:]
    # Bought by card, the card paid the 350 at the cycle; granted (no card), the 350 was still due.
    assert february["status"] == ("paid" if purchased else "finalized")
    notes = await credit_notes(client, admin.headers, february["id"])
    assert [note["amount_minor"] for note in notes] == [675]
    assert (february["credited_minor"], february["credits_applied_minor"], february["amount_due_minor"]) == (
        675,
        675,
        0,
    )
    held = await _wallet(client, admin, tenant["id"], currency)
    assert (held["balance_minor"], held["purchased_minor" if purchased else "granted_minor"]) == (325, 325)
    assert [(item["kind"], item["amount_minor"]) for item in held["transactions"]][-2:] == [
        ("applied", -1000),
        ("restored", 325),
    ]
    assert (await billing_service.verify_ledger()).ok


async def test_a_void_after_a_cancellation_gives_back_only_what_the_wallet_still_paid(
    client: AsyncClient, factory: Factory, on_february_15: None
) -> None:
    """The cancellation gave 325 of the wallet's 1000 back; voiding February's invoice afterwards gives back
    the 675 still applied (not the 1000 again): the wallet holds its 1000, the ledger agrees."""
    staff, tenant, subscription, admin = await _wallet_paid_february(client, factory, "JPY", purchased=False)
    await _cancel_now(client, admin, subscription["id"])
    [february] = [item for item in await invoices(client, admin.headers, tenant["id"]) if item["kind"] == "cycle"][1:]
    assert (february["status"], february["credits_applied_minor"]) == ("finalized", 675)
    voided = await client.post(f"/v1/invoices/{february['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text
    held = await _wallet(client, admin, tenant["id"], "JPY")
    assert held["balance_minor"] == 1000
    assert [(item["kind"], item["amount_minor"]) for item in held["transactions"]][-3:] == [
        ("applied", -1000),
        ("restored", 325),
        ("restored", 675),
    ]
    assert (await billing_service.verify_ledger()).ok


async def _wallet(client: AsyncClient, actor: Actor, tenant_id: str, currency: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tenants/{tenant_id}/wallet?currency={currency}", headers=actor.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


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
