"""Wallet defects found in review, each reproduced through the app: an expiry beside a refund in flight, a
declined top-up beside another payment attempt, an expiry checked against the wrong moment, and a purchase
funded after the expiry it asked for."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from billing import service
from billing.payments import repository as payments_repository
from billing.payments.gateway import StripeGateway
from billing.subscriptions import repository as subscriptions_repository
from billing.wallets import service as wallets_service
from controlplane.core.db import tenant_tx
from controlplane.core.settings import Settings
from tests.api._helpers import assert_problem
from tests.api.billing._support import parse, stamp, subscribe, utcnow
from tests.api.billing.test_lost_stripe_answers import TRIES, _through, double
from tests.api.billing.test_wallets import (
    DECLINED_CARD,
    GOOD_CARD,
    add_card,
    assert_ledger_clean,
    card,
    invoices_of,
    movements,
    setup,
    stripe_client,
    top_up,
    wallet,
)
from tests.api.plugins._support import install, plugin, publisher
from tests.conftest import connect_as_inspector
from tests.doubles.stripe_idempotency import StripeIdempotencyDouble
from tests.factories import Factory

__all__ = ["double", "stripe_client"]  # the fixtures, shared


async def test_an_expiry_leaves_the_credit_a_refund_in_flight_takes_back(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5000 bought, expiring in an hour; a refund of all of it waits for Stripe; the expiry run passes the
    expiry: it expires nothing (the refund takes it back), so when the refund is resent and succeeds the 5000
    is paid back once and never booked as breakage too."""
    staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    soon = stamp(utcnow() + timedelta(hours=1))
    bought = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True, expires_at=soon)
    assert bought.status_code == 201, bought.text
    purchase = bought.json()["invoice_id"]
    monkeypatch.setattr(app.state, "payments", StripeGateway(_through(settings, double)))
    url = f"/v1/invoices/{purchase}/refunds"
    body = {"amount_minor": 5000, "reason": "unused credit"}
    double.lose_answers(TRIES)
    assert_problem(await client.post(url, json=body, headers=staff.headers), 503, "payment_provider_unavailable")

    report = await service.expire_credits(utcnow() + timedelta(hours=2))
    assert (report.expired, report.failed) == (0, 0)
    again = await client.post(url, json=body, headers=staff.headers)
    assert again.status_code == 201, again.text
    assert again.json()["status"] == "succeeded"
    assert (await service.expire_credits(utcnow() + timedelta(hours=2))).expired == 0
    held = await wallet(client, admin, tenant["id"])
    assert (held["balance_minor"], movements(held)) == (0, [("top_up", 5000), ("refunded", -5000)])
    await assert_ledger_clean()


async def test_an_expiry_takes_what_a_refund_in_flight_leaves_and_the_rest_once_it_fails(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5000 bought, a refund of 2000 in flight: the expiry takes 3000 and leaves the 2000 to the refund."""
    staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    soon = stamp(utcnow() + timedelta(hours=1))
    bought = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True, expires_at=soon)
    assert bought.status_code == 201, bought.text
    monkeypatch.setattr(app.state, "payments", StripeGateway(_through(settings, double)))
    url = f"/v1/invoices/{bought.json()['invoice_id']}/refunds"
    body = {"amount_minor": 2000, "reason": "part"}
    double.lose_answers(TRIES)
    assert_problem(await client.post(url, json=body, headers=staff.headers), 503, "payment_provider_unavailable")
    assert (await service.expire_credits(utcnow() + timedelta(hours=2))).expired == 1
    assert (await client.post(url, json=body, headers=staff.headers)).status_code == 201
    held = await wallet(client, admin, tenant["id"])
    assert movements(held) == [("top_up", 5000), ("expired", -3000), ("refunded", -2000)]
    await assert_ledger_clean()


async def test_a_declined_top_up_leaves_its_purchase_to_another_attempt_in_flight(
    client: AsyncClient, factory: Factory, stripe_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The card declines; meanwhile another request (a manual pay, or a top-up resuming the purchase) has
    opened attempt 2, waiting for Stripe. Voiding the purchase now would let attempt 2 charge the card for a
    void invoice that funds no credit: it is left finalized, for attempt 2's answer to settle."""
    staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    real = wallets_service.payments_service.collect_invoice

    async def with_a_second_attempt_opened(
        gateway: Any, tenant_id: uuid.UUID, invoice_id: uuid.UUID, actor: Any = None
    ) -> Any:
        payment = await real(gateway, tenant_id, invoice_id, actor)
        async with tenant_tx(tenant_id):
            first = await payments_repository.last_attempt(invoice_id)
            assert first is not None and first["status"] == "failed"
            await payments_repository.insert_attempt(
                {
                    "tenant_id": tenant_id,
                    "invoice_id": invoice_id,
                    "attempt": 2,
                    "idempotency_key": f"invoice:{invoice_id}:attempt:2",
                    "amount_minor": first["amount_minor"],
                    "currency": first["currency"],
                    "stripe_customer_id": first["stripe_customer_id"],
                    "stripe_payment_method_id": first["stripe_payment_method_id"],
                    "dunning_step": None,
                }
            )
        return payment

    monkeypatch.setattr(wallets_service.payments_service, "collect_invoice", with_a_second_attempt_opened)
    assert_problem(await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True), 402, "top_up_declined")
    [purchase] = await invoices_of(client, staff, tenant["id"])
    assert (purchase["kind"], purchase["status"]) == ("credit_purchase", "finalized")
    assert purchase["amount_due_minor"] == 5000
    await assert_ledger_clean()


async def test_a_top_up_expiring_within_a_minute_is_refused_not_a_500(client: AsyncClient, factory: Factory) -> None:
    staff, _admin, tenant = await setup(client, factory)
    for ahead in (timedelta(milliseconds=5), timedelta(seconds=30)):
        at = stamp(utcnow() + ahead)
        granted = await top_up(client, staff, tenant["id"], amount_minor=5, paid=False, expires_at=at)
        assert_problem(granted, 422, "invalid_top_up")
    at = stamp(utcnow() + timedelta(minutes=2))
    assert (await top_up(client, staff, tenant["id"], amount_minor=5, paid=False, expires_at=at)).status_code == 201


async def test_a_purchase_funded_after_its_expiry_gets_its_validity_from_the_funding(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
    stack_env: dict[str, str],
) -> None:
    """A top-up of 5000 valid for a day whose payment answer is lost, and only learnt two days later (the
    lot's moments are moved back to stand for the wait): the credit is not born expired (straight to
    breakage); its day of validity runs from the funding."""
    _staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    monkeypatch.setattr(app.state, "payments", StripeGateway(_through(settings, double)))
    tomorrow = stamp(utcnow() + timedelta(days=1))
    double.lose_answers(TRIES)
    lost = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True, expires_at=tomorrow)
    assert_problem(lost, 503, "payment_provider_unavailable")
    inspector: asyncpg.Connection = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update credit_lots set created_at = created_at - interval '3 days', "
            "expires_at = expires_at - interval '3 days' where tenant_id = $1",
            uuid.UUID(tenant["id"]),
        )
    finally:
        await inspector.close()

    resumed = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True, expires_at=tomorrow)
    assert resumed.status_code == 201, resumed.text
    assert double.replayed >= 1  # the same charge, answered now: not a second one
    expires = parse(resumed.json()["expires_at"])
    assert utcnow() + timedelta(hours=23) < expires <= utcnow() + timedelta(days=1)
    assert (await service.expire_credits(utcnow() + timedelta(hours=1))).expired == 0
    held = await wallet(client, admin, tenant["id"])
    assert (held["balance_minor"], movements(held)) == (5000, [("top_up", 5000)])
    await assert_ledger_clean()


async def test_a_cycle_invoice_paid_by_credits_renews_plugin_licenses_and_ends_past_due(
    client: AsyncClient, factory: Factory
) -> None:
    """A paid plugin installed, the subscription past_due, credit granted that covers the next invoice: the
    cycle's invoice is paid by credits, and that payment's consequences follow on the advanced subscription,
    not on the period just billed: the license runs to the new period's end (plus its grace) and the
    subscription is active again (not overwritten back to past_due)."""
    staff, admin, tenant = await setup(client, factory)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    pub = await publisher(client, staff.headers)
    paid = await plugin(
        client, staff.headers, pub["id"], pricing={"model": "flat", "amount_minor": 900, "currency": "EUR"}
    )
    installed = await install(client, admin.headers, tenant["id"], paid["slug"])
    boundary = parse(subscription["current_period_end"])
    grace = parse(installed["license"]["expires_at"]) - boundary
    assert grace > timedelta(0)
    granted = await top_up(client, staff, tenant["id"], amount_minor=1_000_000, paid=False)
    assert granted.status_code == 201, granted.text
    async with tenant_tx(uuid.UUID(tenant["id"])):
        await subscriptions_repository.update_subscription(uuid.UUID(subscription["id"]), {"status": "past_due"})

    report = await service.run_cycle(boundary + timedelta(hours=2), grace=timedelta(hours=1))
    assert (report.invoices_created, report.failed) == (1, [])
    cycles = [i for i in await invoices_of(client, staff, tenant["id"]) if i["kind"] == "cycle"]
    assert len(cycles) == 2  # the first period's, and the boundary's
    cycle = cycles[-1]
    assert (cycle["status"], cycle["amount_due_minor"]) == ("paid", 0)
    assert cycle["credits_applied_minor"] == cycle["total_minor"] > 0
    live = (await client.get(f"/v1/subscriptions/{subscription['id']}", headers=staff.headers)).json()
    assert live["status"] == "active"
    new_end = parse(live["current_period_end"])
    assert new_end > boundary
    renewed = (await client.get(f"/v1/licenses/{installed['license']['id']}", headers=admin.headers)).json()
    assert parse(renewed["expires_at"]) == new_end + grace
    await assert_ledger_clean()


async def test_credit_never_leaves_less_than_stripes_minimum_charge_due(client: AsyncClient, factory: Factory) -> None:
    """34.09 EUR of credit on the cycle's 34.10 EUR: applying it all would leave 0.01, which Stripe refuses to
    charge (and dunning would suspend the tenant over); 33.60 applies and the minimum 0.50 stays due."""
    staff, admin, tenant = await setup(client, factory)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    assert (await top_up(client, staff, tenant["id"], amount_minor=3409, paid=False)).status_code == 201
    report = await service.run_cycle(parse(subscription["current_period_end"]) + timedelta(hours=2))
    assert report.failed == [], report.failed
    latest = [i for i in await invoices_of(client, staff, tenant["id"]) if i["kind"] == "cycle"][-1]
    assert (latest["total_minor"], latest["credited_minor"]) == (3410, 0)
    assert (latest["credits_applied_minor"], latest["amount_due_minor"]) == (3360, 50)
    assert (await wallet(client, admin, tenant["id"]))["balance_minor"] == 49
    await assert_ledger_clean()


async def test_the_collection_run_resends_a_top_up_whose_answer_was_lost_and_funds_it_once(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A top-up of 5000 whose charge answer is lost (503): nobody retries the same top-up, so the collection run
    sends the pending attempt again with its own key; Stripe replays the one charge and the lot fills once. A
    second run finds nothing to send: a credit purchase is resent, never dunned."""
    _staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    gateway = StripeGateway(_through(settings, double))
    monkeypatch.setattr(app.state, "payments", gateway)
    double.lose_answers(TRIES)
    lost = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True)
    assert_problem(lost, 503, "payment_provider_unavailable")
    assert (await wallet(client, admin, tenant["id"]))["balance_minor"] == 0

    first = await service.collect_due_invoices(gateway, utcnow(), (1, 3, 5, 7))
    assert (first.attempted, first.succeeded) == (1, 1)
    assert double.replayed >= 1  # the same charge, answered now: not a second one
    held = await wallet(client, admin, tenant["id"])
    assert (held["balance_minor"], movements(held)) == (5000, [("top_up", 5000)])
    again = await service.collect_due_invoices(gateway, utcnow() + timedelta(days=8), (1, 3, 5, 7))
    assert again.attempted == 0
    await assert_ledger_clean()


async def test_a_resent_top_up_that_is_declined_voids_its_purchase(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The declined answer of a top-up's charge is lost (503); the collection run sends the attempt again and
    learns the decline: the purchase is voided (never owed, never dunned), and no later run tries it again."""
    staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    gateway = StripeGateway(_through(settings, double))
    monkeypatch.setattr(app.state, "payments", gateway)
    double.lose_answers(TRIES)
    lost = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True)
    assert_problem(lost, 503, "payment_provider_unavailable")

    first = await service.collect_due_invoices(gateway, utcnow(), (1, 3, 5, 7))
    assert (first.attempted, first.failed, first.uncollectible) == (1, 1, 0)
    [purchase] = await invoices_of(client, staff, tenant["id"])
    assert (purchase["kind"], purchase["status"], purchase["amount_due_minor"]) == ("credit_purchase", "void", 0)
    again = await service.collect_due_invoices(gateway, utcnow() + timedelta(days=8), (1, 3, 5, 7))
    assert again.attempted == 0
    assert (await wallet(client, admin, tenant["id"]))["balance_minor"] == 0
    await assert_ledger_clean()
