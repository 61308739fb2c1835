"""Stripe webhooks: signatures (unsigned, forged, stale refused), each event applied once, never backwards."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service
from billing.errors import PaymentProviderUnavailable, WebhookRejected
from billing.payments.gateway import StripeGateway
from controlplane.core import metrics
from controlplane.core.secrets import STRIPE_PATH, SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import (
    WEBHOOK_SECRET_MAX_AGE_SECONDS,
    WEBHOOK_SECRET_REFRESH_SECONDS,
    WebhookSecret,
    make_stripe_client,
)
from tests.api._helpers import assert_problem
from tests.api.billing.test_payments import GOOD_CARD, _add_card, _invoiced_tenant, card, stripe_client
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, shared
URL = "/v1/webhooks/stripe"


def signed(payload: bytes, secret: str, at: int | None = None) -> dict[str, str]:
    """The header Stripe sends: t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<payload>")."""
    stamp = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}", "Content-Type": "application/json"}


def event(event_id: str, kind: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": obj}}).encode()


@pytest.fixture
def webhook_secret(settings: Settings) -> str:
    return str(SecretStore.connect(settings).read(STRIPE_PATH)["webhook_secret"])


async def _invoice_with_a_pending_attempt(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """A collection attempt Stripe never answered (nothing listens at its address): stored, still pending."""
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    unreachable = dataclasses.replace(settings, stripe_api_base="http://127.0.0.1:9")
    gateway = StripeGateway(make_stripe_client(unreachable, SecretStore.connect(settings)))
    with pytest.raises(PaymentProviderUnavailable):
        await service.collect_invoice(gateway, uuid.UUID(tenant["id"]), uuid.UUID(invoice["id"]))
    return staff, tenant, invoice


async def test_a_lost_answer_is_settled_once_by_the_webhook_and_never_undone(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
) -> None:
    staff, _, invoice = await _invoice_with_a_pending_attempt(client, factory, settings, stripe_client)

    succeeded = event(
        "evt_paid", "payment_intent.succeeded", {"id": "pi_lost", "metadata": {"invoice_id": invoice["id"]}}
    )
    answers = [await client.post(URL, content=succeeded, headers=signed(succeeded, webhook_secret)) for _ in range(100)]
    assert [a.status_code for a in answers] == [200] * 100
    assert [a.json()["result"] for a in answers] == ["applied"] + ["duplicate"] * 99
    paid = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert (paid["status"], paid["amount_due_minor"]) == ("paid", 0)

    # An older failure arriving late changes nothing.
    failed = event(
        "evt_failed",
        "payment_intent.payment_failed",
        {"id": "pi_lost", "metadata": {"invoice_id": invoice["id"]}, "last_payment_error": {"code": "card_declined"}},
    )
    late = await client.post(URL, content=failed, headers=signed(failed, webhook_secret))
    assert (late.status_code, late.json()["result"]) == (200, "ignored")
    still = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert still["status"] == "paid"
    report = await service.verify_ledger()
    assert report.ok and report.journals == 2, report
    inspector = await connect_as_inspector(stack_env)
    try:
        payments = await inspector.fetch("select status, attempt from payments where invoice_id = $1", invoice["id"])
    finally:
        await inspector.close()
    assert [(row["status"], row["attempt"]) for row in payments] == [("succeeded", 1)]


async def test_unsigned_forged_and_stale_deliveries_are_refused_and_recorded(
    client: AsyncClient, factory: Factory, webhook_secret: str, stack_env: dict[str, str], report: Any
) -> None:
    payload = event("evt_x", "payment_intent.succeeded", {"id": "pi_x", "metadata": {}})
    unsigned = await client.post(URL, content=payload, headers={"Content-Type": "application/json"})
    forged = await client.post(URL, content=payload, headers=signed(payload, "whsec_not_the_secret"))
    stale = await client.post(URL, content=payload, headers=signed(payload, webhook_secret, int(time.time()) - 301))
    tampered = await client.post(
        URL, content=payload.replace(b"pi_x", b"pi_y"), headers=signed(payload, webhook_secret)
    )
    for response in (unsigned, forged, stale, tampered):
        assert_problem(response, 400, "webhook_rejected")
    inspector = await connect_as_inspector(stack_env)
    try:
        reasons = [row["reason"] for row in await inspector.fetch("select reason from stripe_webhook_rejections")]
        applied = await inspector.fetchval("select count(*) from stripe_webhook_events")
    finally:
        await inspector.close()
    assert sorted(reasons) == ["forged", "stale", "unsigned"]  # one row per reason a minute; the metric counts all
    assert applied == 0
    fresh = await client.post(URL, content=payload, headers=signed(payload, webhook_secret))
    assert (fresh.status_code, fresh.json()["result"]) == (200, "ignored")  # no such payment: nothing to do
    report(f"webhooks: 4 unsigned, forged, stale or tampered deliveries refused, {len(reasons)} reasons recorded")


async def test_a_refund_made_in_stripes_dashboard_is_booked_once(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
) -> None:
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    assert (await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)).status_code == 200
    inspector = await connect_as_inspector(stack_env)
    try:
        intent = await inspector.fetchval(
            "select stripe_payment_intent_id from payments where invoice_id = $1", invoice["id"]
        )
    finally:
        await inspector.close()

    def refunded(event_id: str, total: int) -> bytes:
        charge = {"object": "charge", "payment_intent": intent, "amount_refunded": total, "refunds": {"data": []}}
        return event(event_id, "charge.refunded", charge)

    first = refunded("evt_refund_1", 100)
    assert (await client.post(URL, content=first, headers=signed(first, webhook_secret))).json()["result"] == "applied"
    # Stripe's later event for the same refund (or a redelivery under another id) books nothing more.
    again = refunded("evt_refund_2", 100)
    assert (await client.post(URL, content=again, headers=signed(again, webhook_secret))).json()["result"] == "ignored"
    ours = await client.post(
        f"/v1/invoices/{invoice['id']}/refunds", json={"amount_minor": 50, "reason": "ours"}, headers=staff.headers
    )
    assert ours.status_code == 201, ours.text
    after_ours = refunded("evt_refund_3", 150)
    answer = await client.post(URL, content=after_ours, headers=signed(after_ours, webhook_secret))
    assert answer.json()["result"] == "ignored"

    notes = (await client.get(f"/v1/invoices/{invoice['id']}/credit-notes", headers=staff.headers)).json()
    assert [(note["amount_minor"], note["reason"]) for note in notes] == [(100, "Refunded at Stripe"), (50, "ours")]
    assert (await service.verify_ledger()).ok


@pytest.mark.parametrize("order", [("failed", "succeeded"), ("succeeded", "failed")])
async def test_in_whatever_order_a_failure_and_a_success_arrive_the_invoice_ends_paid(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    webhook_secret: str,
    order: tuple[str, str],
) -> None:
    staff, _, invoice = await _invoice_with_a_pending_attempt(client, factory, settings, stripe_client)
    intent = {"id": f"pi_{order[0]}", "metadata": {"invoice_id": invoice["id"]}}
    events = {
        "failed": event(f"evt_f_{order[0]}", "payment_intent.payment_failed", {**intent, "last_payment_error": {}}),
        "succeeded": event(f"evt_s_{order[0]}", "payment_intent.succeeded", intent),
    }
    for kind in order:
        answer = await client.post(URL, content=events[kind], headers=signed(events[kind], webhook_secret))
        assert answer.status_code == 200, answer.text
    final = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert (final["status"], final["amount_due_minor"]) == ("paid", 0)
    subscription = (
        await client.get(f"/v1/subscriptions/{invoice['subscription']['id']}", headers=staff.headers)
    ).json()
    assert subscription["status"] == "active"
    assert (await service.verify_ledger()).ok


class _CountingStore:
    """The real secret store, counting its reads (how many OpenBao round trips the webhooks cost)."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store
        self.reads = 0

    def read(self, path: str) -> dict[str, Any]:
        self.reads += 1
        return self.store.read(path)


async def test_a_flood_of_forged_webhooks_costs_one_secret_read_and_one_logged_row(
    settings: Settings, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    store = _CountingStore(SecretStore.connect(settings))
    now = [1000.0]
    secret = WebhookSecret(store, clock=lambda: now[0])  # type: ignore[arg-type]
    payload = event("evt_flood", "payment_intent.succeeded", {"id": "pi_x", "metadata": {}})
    rejected_before = metrics.WEBHOOKS_TOTAL.labels(outcome="rejected")._value.get()
    for _ in range(50):
        with pytest.raises(WebhookRejected):
            await service.receive_stripe_event(payload, signed(payload, "whsec_forged")["Stripe-Signature"], secret)
    assert store.reads == 1  # just read: a mismatch asks for a fresh read, but not within the interval
    assert metrics.WEBHOOKS_TOTAL.labels(outcome="rejected")._value.get() - rejected_before == 50
    inspector = await connect_as_inspector(stack_env)
    try:
        assert await inspector.fetchval("select count(*) from stripe_webhook_rejections") == 1
    finally:
        await inspector.close()

    # The interval over: a mismatch may read the secret again (a rotation is picked up), still once.
    now[0] += WEBHOOK_SECRET_REFRESH_SECONDS
    for _ in range(5):
        with pytest.raises(WebhookRejected):
            await service.receive_stripe_event(payload, signed(payload, "whsec_forged")["Stripe-Signature"], secret)
    assert store.reads == 2
    # A good signature needs no read at all.
    assert await service.receive_stripe_event(payload, signed(payload, webhook_secret)["Stripe-Signature"], secret)
    assert store.reads == 2
    # And unchecked, the secret is read again after its maximum age only.
    now[0] += WEBHOOK_SECRET_MAX_AGE_SECONDS
    secret()
    assert store.reads == 3
