"""Stripe charged, then its answer was lost: the attempt stays pending with its key, the next run sends the same
key, and Stripe replays the first answer, so each invoice is charged exactly once and the ledger verifies.

localstripe ignores `Idempotency-Key`, so the replay comes from `tests.doubles.stripe_idempotency`, a proxy in
front of localstripe that adds only that (and the fault switch that drops answers after the work is done).
The official SDK stays the client; localstripe stays where the charges are made and counted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from httpx import AsyncClient
from stripe.params import CustomerCreateParams

from billing import service
from billing.payments.gateway import StripeGateway
from controlplane.core.secrets import STRIPE_PATH, SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import MAX_NETWORK_RETRIES, make_stripe_client
from tests.api._helpers import assert_problem
from tests.api.billing._support import credit_notes, invoices, plan, subscribe
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.api.billing.test_webhooks import event, signed
from tests.conftest import connect_as_inspector
from tests.doubles.stripe_idempotency import StripeIdempotencyDouble
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, shared
SCHEDULE = (1, 3, 5, 7)
TRIES = MAX_NETWORK_RETRIES + 1  # one call of the SDK: the first send and its own retries, all with one key


@pytest.fixture
def double(settings: Settings) -> Any:
    assert settings.stripe_api_base, "the dev stack points Stripe at localstripe"
    with StripeIdempotencyDouble(settings.stripe_api_base) as proxy:
        yield proxy


def _through(settings: Settings, double: StripeIdempotencyDouble) -> stripe.StripeClient:
    """The app's own client factory, its base address the double's."""
    return make_stripe_client(dataclasses.replace(settings, stripe_api_base=double.url), SecretStore.connect(settings))


def _intents_by_invoice(stripe_client: Any, invoice_ids: set[str]) -> dict[str, list[Any]]:
    """What localstripe itself holds (asked directly, not through the double), every page of it."""
    found: dict[str, list[Any]] = {invoice_id: [] for invoice_id in invoice_ids}
    for intent in stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter():
        invoice_id = intent.metadata.to_dict().get("invoice_id")
        if invoice_id in found:
            found[invoice_id].append(intent)
    return found


async def test_answers_lost_after_charging_are_replayed_on_the_next_run_and_nothing_is_charged_twice(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    stack_env: dict[str, str],
    double: StripeIdempotencyDouble,
    report: Any,
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    due: dict[str, int] = {}
    for _ in range(3):
        tenant = await factory.tenant(staff)
        await subscribe(client, staff.headers, tenant["id"], "pro")
        await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
        [invoice] = await invoices(client, staff.headers, tenant["id"])
        assert invoice["status"] == "finalized" and invoice["amount_due_minor"] > 0
        due[invoice["id"]] = invoice["amount_due_minor"]
    gateway = StripeGateway(_through(settings, double))
    now = datetime.now(UTC) + timedelta(minutes=1)

    # Stripe goes away in the middle of the run: the first invoice is answered; the next two are charged,
    # and every answer about them is lost, the SDK's own retries (same key, replayed) included.
    double.lose_answers(TRIES * 2, after=1)
    first = await service.collect_due_invoices(gateway, now, SCHEDULE)
    assert (first.attempted, first.succeeded, first.failed, len(first.unreachable)) == (3, 1, 0, 2), first
    assert (double.answers_still_to_lose, double.lost, double.lost_after_forwarding) == (0, TRIES * 2, 2)
    lost_invoices = set(first.unreachable)

    charged = _intents_by_invoice(stripe_client, set(due))
    assert {invoice_id: len(found) for invoice_id, found in charged.items()} == dict.fromkeys(due, 1)
    inspector = await connect_as_inspector(stack_env)
    try:
        pending = await inspector.fetch(
            "select invoice_id::text, idempotency_key, stripe_payment_intent_id from payments where status = 'pending'"
        )
        # Stripe charged them, yet we cannot know: pending, the key kept, no intent id recorded.
        assert {row["invoice_id"] for row in pending} == lost_invoices
        assert all(row["idempotency_key"] == f"invoice:{row['invoice_id']}:attempt:1" for row in pending)
        assert all(row["stripe_payment_intent_id"] is None for row in pending)

        double.answer_again()
        forwarded_before = double.forwarded
        second = await service.collect_due_invoices(gateway, now, SCHEDULE)
        assert (second.attempted, second.succeeded, second.failed, second.unreachable) == (2, 2, 0, []), second
        # The same keys, so Stripe (the double) replays its first answers: localstripe hears nothing new.
        assert double.forwarded == forwarded_before
        assert (double.replayed, double.rejected) == (2, 0)
        settled = await inspector.fetch(
            "select invoice_id::text, attempt, idempotency_key, status, amount_minor, stripe_payment_intent_id "
            "from payments"
        )
    finally:
        await inspector.close()

    assert sorted(row["invoice_id"] for row in settled) == sorted(due)  # one attempt each, no new one
    for row in settled:
        assert (row["attempt"], row["idempotency_key"], row["status"], row["amount_minor"]) == (
            1,
            f"invoice:{row['invoice_id']}:attempt:1",
            "succeeded",
            due[row["invoice_id"]],
        )
    after = _intents_by_invoice(stripe_client, set(due))
    assert {invoice_id: len(found) for invoice_id, found in after.items()} == dict.fromkeys(due, 1)  # no duplicate
    assert {row["invoice_id"]: row["stripe_payment_intent_id"] for row in settled} == {
        invoice_id: found[0].id for invoice_id, found in after.items()
    }
    assert all((found[0].status, found[0].amount) == ("succeeded", due[i]) for i, found in after.items())
    for invoice_id in due:
        paid = (await client.get(f"/v1/invoices/{invoice_id}", headers=staff.headers)).json()
        assert (paid["status"], paid["amount_due_minor"]) == ("paid", 0)
    assert (await service.collect_due_invoices(gateway, now, SCHEDULE)).attempted == 0
    ledger = await service.verify_ledger()
    assert ledger.ok, ledger
    duplicates = sum(len(found) - 1 for found in after.values())
    report(
        f"stripe double: {double.lost} answers lost after charging ({len(lost_invoices)} invoices); retries with "
        f"the same keys replayed; {sum(len(found) for found in after.values())} charges, {duplicates} duplicates"
    )


def test_the_double_replays_a_repeated_key_and_refuses_it_with_other_parameters(
    settings: Settings, stripe_client: Any, double: StripeIdempotencyDouble
) -> None:
    marker = uuid.uuid4().hex
    key = f"test:{marker}:customer"
    params = CustomerCreateParams(email=f"{marker}@example.com", metadata={"marker": marker})

    # localstripe alone ignores the key: the gap this double fills.
    direct = [stripe_client.v1.customers.create(params=params, options={"idempotency_key": f"{key}:direct"})]
    direct.append(stripe_client.v1.customers.create(params=params, options={"idempotency_key": f"{key}:direct"}))
    assert direct[0].id != direct[1].id

    proxied = _through(settings, double)
    first = proxied.v1.customers.create(params=params, options={"idempotency_key": key})
    again = proxied.v1.customers.create(params=params, options={"idempotency_key": key})
    assert again.id == first.id
    assert again.last_response is not None
    assert again.last_response.headers.get("Idempotent-Replayed") == "true"
    with pytest.raises(stripe.IdempotencyError) as refused:
        other = CustomerCreateParams(email="other@example.com", metadata={"marker": marker})
        proxied.v1.customers.create(params=other, options={"idempotency_key": key})
    assert refused.value.http_status == 400
    assert refused.value.error is not None and refused.value.error.type == "idempotency_error"
    # Reads pass through untouched, and one key made one customer.
    assert proxied.v1.customers.retrieve(first.id).email == params["email"]
    assert (double.forwarded, double.replayed, double.rejected) == (2, 1, 1)
    made = Counter(
        customer.metadata.to_dict().get("marker")
        for customer in stripe_client.v1.customers.list(params={"limit": 100}).auto_paging_iter()
    )
    assert made[marker] == 3  # two direct, one through the double


def test_a_lost_answer_is_work_done_and_the_same_key_gets_its_first_answer(
    settings: Settings, stripe_client: Any, double: StripeIdempotencyDouble
) -> None:
    marker = uuid.uuid4().hex
    key = f"test:{marker}:customer"
    params = CustomerCreateParams(metadata={"marker": marker})
    proxied = _through(settings, double)

    double.lose_answers(TRIES)  # the first send and the SDK's own retries
    with pytest.raises(stripe.APIConnectionError):
        proxied.v1.customers.create(params=params, options={"idempotency_key": key})
    assert (double.lost, double.lost_after_forwarding, double.forwarded) == (TRIES, 1, 1)
    made = [
        customer.id
        for customer in stripe_client.v1.customers.list(params={"limit": 100}).auto_paging_iter()
        if customer.metadata.to_dict().get("marker") == marker
    ]
    assert len(made) == 1  # localstripe did the work

    answered = proxied.v1.customers.create(params=params, options={"idempotency_key": key})
    assert answered.id == made[0]
    assert (double.forwarded, double.replayed) == (1, 1)


async def _paid_invoice(client: AsyncClient, factory: Factory, stripe_client: Any) -> tuple[Any, dict[str, Any], str]:
    """A staff actor, a paid invoice and its PaymentIntent (paid through the app's own gateway)."""
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "pro")
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
    [intent] = _intents_by_invoice(stripe_client, {invoice["id"]})[invoice["id"]]
    return staff, invoice, str(intent.id)


def _refunds_at_stripe(stripe_client: Any, intent_id: str) -> list[Any]:
    return list(stripe_client.v1.refunds.list(params={"payment_intent": intent_id, "limit": 100}).auto_paging_iter())


async def test_a_refund_whose_answer_was_lost_is_sent_again_with_its_key_and_refunds_once(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff, invoice, intent_id = await _paid_invoice(client, factory, stripe_client)
    monkeypatch.setattr(app.state, "payments", StripeGateway(_through(settings, double)))
    url = f"/v1/invoices/{invoice['id']}/refunds"
    body = {"amount_minor": 500, "reason": "service outage"}

    double.lose_answers(TRIES)  # Stripe refunds, every answer about it is lost
    lost = await client.post(url, json=body, headers=staff.headers)
    assert_problem(lost, 503, "payment_provider_unavailable")
    assert len(_refunds_at_stripe(stripe_client, intent_id)) == 1

    # Another refund while this one is in flight is refused; the same one is sent again, with its own key.
    other = await client.post(url, json={**body, "amount_minor": 700}, headers=staff.headers)
    assert_problem(other, 409, "refund_in_flight")
    again = await client.post(url, json=body, headers=staff.headers)
    assert again.status_code == 201, again.text
    assert (again.json()["status"], again.json()["amount_minor"]) == ("succeeded", 500)
    assert double.replayed == 1
    [made] = _refunds_at_stripe(stripe_client, intent_id)  # refunded once
    assert made.amount == 500
    notes = await credit_notes(client, staff.headers, invoice["id"])
    assert [(note["amount_minor"], note["reason"]) for note in notes] == [(500, "service outage")]
    assert (await service.verify_ledger()).ok


async def test_charge_refunded_settles_our_refund_whose_answer_was_lost_instead_of_counting_it_as_known(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff, invoice, intent_id = await _paid_invoice(client, factory, stripe_client)
    monkeypatch.setattr(app.state, "payments", StripeGateway(_through(settings, double)))
    url = f"/v1/invoices/{invoice['id']}/refunds"
    double.lose_answers(TRIES)
    lost = await client.post(url, json={"amount_minor": 500, "reason": "service outage"}, headers=staff.headers)
    assert_problem(lost, 503, "payment_provider_unavailable")
    [made] = _refunds_at_stripe(stripe_client, intent_id)

    # Stripe tells us by webhook: the charge, with the refund it made (carrying our refund's id).
    charge = {
        "object": "charge",
        "payment_intent": intent_id,
        "amount_refunded": 500,
        "refunds": {"data": [made.to_dict()]},
    }
    secret = str(SecretStore.connect(settings).read(STRIPE_PATH)["webhook_secret"])
    payload = event("evt_lost_refund", "charge.refunded", charge)
    answer = await client.post("/v1/webhooks/stripe", content=payload, headers=signed(payload, secret))
    assert answer.json()["result"] == "applied", answer.text
    notes = await credit_notes(client, staff.headers, invoice["id"])
    assert [(note["amount_minor"], note["reason"]) for note in notes] == [(500, "service outage")]
    refunded = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert refunded["credited_minor"] == 500
    # Then a refund made in Stripe's dashboard: listed beside ours, it alone is booked; the same news again
    # (a later event listing both) books nothing more.
    dashboard = stripe_client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 300})
    both = {**charge, "amount_refunded": 800, "refunds": {"data": [dashboard.to_dict(), made.to_dict()]}}
    for event_id, result in (("evt_dashboard_refund", "applied"), ("evt_dashboard_refund_again", "ignored")):
        payload = event(event_id, "charge.refunded", both)
        answer = await client.post("/v1/webhooks/stripe", content=payload, headers=signed(payload, secret))
        assert answer.json()["result"] == result, (event_id, answer.text)
    notes = await credit_notes(client, staff.headers, invoice["id"])
    assert [(note["amount_minor"], note["reason"]) for note in notes] == [
        (500, "service outage"),
        (300, "Refunded at Stripe"),
    ]
    assert (await service.verify_ledger()).ok


async def test_a_refund_whose_answer_was_lost_and_nobody_asked_again_is_sent_again_by_the_hourly_run(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff, invoice, intent_id = await _paid_invoice(client, factory, stripe_client)
    gateway = StripeGateway(_through(settings, double))
    monkeypatch.setattr(app.state, "payments", gateway)
    double.lose_answers(TRIES)
    lost = await client.post(
        f"/v1/invoices/{invoice['id']}/refunds", json={"amount_minor": 500, "reason": "outage"}, headers=staff.headers
    )
    assert_problem(lost, 503, "payment_provider_unavailable")
    now = datetime.now(UTC)
    # Still in flight as far as anyone knows: left alone.
    assert (await service.collect_due_invoices(gateway, now, SCHEDULE)).refunds_resent == 0
    later = await service.collect_due_invoices(gateway, now + timedelta(hours=1), SCHEDULE)
    assert later.refunds_resent == 1, later
    assert double.replayed == 1
    assert len(_refunds_at_stripe(stripe_client, intent_id)) == 1
    assert (await service.collect_due_invoices(gateway, now + timedelta(hours=2), SCHEDULE)).refunds_resent == 0
    notes = await credit_notes(client, staff.headers, invoice["id"])
    assert [(note["amount_minor"], note["reason"]) for note in notes] == [(500, "outage")]
    assert (await service.verify_ledger()).ok


# -- cancelling now while money is in flight ---------------------------------------------------------------


async def _cancel_now(client: AsyncClient, headers: dict[str, str], subscription_id: str) -> Any:
    return await client.post(
        f"/v1/subscriptions/{subscription_id}/cancel", json={"at_period_end": False}, headers=headers
    )


async def _pending_payment(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """(staff, tenant admin, tenant, invoice): the admin paid by hand, Stripe charged and every answer was lost."""
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await subscribe(client, staff.headers, tenant["id"], "pro", start_at=start)
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    monkeypatch.setattr(app.state, "payments", StripeGateway(_through(settings, double)))
    double.lose_answers(TRIES)
    lost = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert_problem(lost, 503, "payment_provider_unavailable")
    assert len(_intents_by_invoice(stripe_client, {invoice["id"]})[invoice["id"]]) == 1  # Stripe charged
    return staff, admin, tenant, invoice


async def test_cancelling_now_is_refused_while_a_payment_of_an_invoice_it_would_credit_is_in_flight(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, admin, _, invoice = await _pending_payment(client, app, factory, settings, stripe_client, double, monkeypatch)
    refused = await _cancel_now(client, admin.headers, invoice["subscription_id"])
    assert_problem(refused, 409, "payment_in_flight")
    # Nothing was written: the amount due stands, no credit note, the subscription is live.
    after = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert (after["amount_due_minor"], after["credited_minor"]) == (invoice["amount_due_minor"], 0)
    assert await credit_notes(client, admin.headers, invoice["id"]) == []
    live = (await client.get(f"/v1/subscriptions/{invoice['subscription_id']}", headers=admin.headers)).json()
    assert live["status"] == "active"

    # Once the payment settles (the same key, Stripe replays its answer), cancelling credits the paid invoice.
    double.answer_again()
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
    assert paid.json()["amount_minor"] == invoice["amount_due_minor"]
    canceled = await _cancel_now(client, admin.headers, invoice["subscription_id"])
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    assert len(await credit_notes(client, admin.headers, invoice["id"])) == 1
    assert (await service.verify_ledger()).ok


async def test_cancelling_now_is_refused_while_a_refund_of_an_invoice_it_would_credit_is_in_flight(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff, invoice, intent_id = await _paid_invoice(client, factory, stripe_client)
    admin = await factory.member(invoice["tenant_id"], "tenant_admin")
    monkeypatch.setattr(app.state, "payments", StripeGateway(_through(settings, double)))
    url = f"/v1/invoices/{invoice['id']}/refunds"
    body = {"amount_minor": 1500, "reason": "half back"}
    double.lose_answers(TRIES)
    assert_problem(await client.post(url, json=body, headers=staff.headers), 503, "payment_provider_unavailable")

    refused = await _cancel_now(client, admin.headers, invoice["subscription_id"])
    assert_problem(refused, 409, "payment_in_flight")
    assert await credit_notes(client, staff.headers, invoice["id"]) == []

    # The refund is sent again and books; then the cancel credits what is left, and nothing is stuck.
    again = await client.post(url, json=body, headers=staff.headers)
    assert again.status_code == 201 and again.json()["status"] == "succeeded", again.text
    assert [made.amount for made in _refunds_at_stripe(stripe_client, intent_id)] == [1500]
    canceled = await _cancel_now(client, admin.headers, invoice["subscription_id"])
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled", canceled.text
    notes = await credit_notes(client, staff.headers, invoice["id"])
    assert notes[0]["amount_minor"] == 1500 and len(notes) <= 2
    after = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert after["credited_minor"] <= after["total_minor"]
    assert (await service.verify_ledger()).ok


async def test_erasure_is_not_blocked_by_money_in_flight_and_leaves_that_invoice_uncredited(
    client: AsyncClient,
    app: Any,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    double: StripeIdempotencyDouble,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    staff, _, tenant, invoice = await _pending_payment(
        client, app, factory, settings, stripe_client, double, monkeypatch
    )
    double.answer_again()
    erased = await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)
    assert erased.status_code == 202, erased.text
    subscription = (await client.get(f"/v1/subscriptions/{invoice['subscription_id']}", headers=staff.headers)).json()
    assert subscription["status"] == "canceled"
    # The charge in flight settles for what it was sent for; the invoice it pays was not credited meanwhile.
    assert await credit_notes(client, staff.headers, invoice["id"]) == []
    after = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert (after["amount_due_minor"], after["credited_minor"]) == (invoice["amount_due_minor"], 0)
    assert (await service.verify_ledger()).ok
