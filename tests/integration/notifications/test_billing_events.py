"""Billing's events are queued in the transaction of the change they tell about, to the tenant's billing contact
and admins, with the data of the contract (the catalogue's `EventType.data`, which `notify` enforces), once
however often the change is asked for, and not at all when it is refused or rolled back. The webhook-only
subscription events queue no email: what billing asked `notify` for is read from a spy on it."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from billing import hooks as billing_hooks
from billing import service as billing
from billing.documents.layout import format_period
from billing.errors import PaymentProviderUnavailable
from billing.payments import service as payments_service
from billing.payments.gateway import StripeGateway
from controlplane.core.db import SystemReason, fetch, system_tx
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api.billing._support import invoices, parse, plan, subscribe
from tests.api.billing.test_payments import DECLINED_CARD, GOOD_CARD, _add_card, card, stripe_client
from tests.api.billing.test_webhooks import URL, event, signed, webhook_secret
from tests.api.partners.test_commissions import _after_this_month, _paid_owned_invoice, _qualified_reseller, _this_month
from tests.factories import Factory
from tests.integration.notifications._outbox import Call, both, of, one_occurrence, queued, told, told_tenant

__all__ = ["stripe_client", "told", "webhook_secret"]  # the fixtures, used by name
SCHEDULE = (1, 3, 5, 7)


@pytest.fixture
def gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))


def _at(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text is not None else None


# -- invoice.finalized -----------------------------------------------------------------------------------


async def test_a_finalized_invoice_is_told_once_with_its_figures_and_its_document(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff, currency="KWD")
    url = f"/v1/tenants/{tenant['id']}/invoices"
    body = {"currency": "KWD", "lines": [{"description": "Setup", "quantity": 1, "unit_amount_minor": 1234560}]}
    created = await client.post(url, json={**body, "finalize": False}, headers=staff.headers)
    assert created.status_code == 201, created.text
    draft = created.json()
    # A draft is not an invoice the tenant owes yet: nothing is told.
    assert await queued("invoice.finalized") == []

    finalize = f"/v1/invoices/{draft['id']}/finalize"
    for _ in range(2):  # finalizing again answers the invoice as it is, and tells nothing more
        response = await client.post(finalize, headers=staff.headers)
        assert response.status_code == 200, response.text
    invoice = response.json()
    rows = await queued("invoice.finalized")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    row = one_occurrence(rows)
    # The invoice is the occurrence, and its document the attachment.
    assert (row["event_key"], str(row["attachment_id"]), str(row["tenant_id"])) == (
        invoice["id"],
        invoice["id"],
        tenant["id"],
    )
    data = row["data"]
    assert data == {
        "invoice_id": invoice["id"],
        "number": invoice["number"],
        "kind": "one_off",
        "currency": "KWD",
        "total_minor": 1234560,
        "total": "1,234.560 KWD",
        "amount_due_minor": 1234560,
        "amount_due": "1,234.560 KWD",
        "due_at": None,
        "period_start": data["period_start"],
        "period_end": data["period_end"],
        "period": format_period(parse(invoice["period_start"]), parse(invoice["period_end"])),
    }
    assert _at(data["period_start"]) == parse(invoice["period_start"])
    assert _at(data["period_end"]) == parse(invoice["period_end"])
    assert data["period_start"].endswith("+00:00")

    # A draft voided is numbered (numbers are gapless) but was never an invoice to pay: nothing is told.
    other = await client.post(url, json={**body, "finalize": False}, headers=staff.headers)
    voided = await client.post(f"/v1/invoices/{other.json()['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text
    # Nor is a void invoice, which cannot be finalized (refused).
    refused = await client.post(f"/v1/invoices/{other.json()['id']}/finalize", headers=staff.headers)
    assert refused.status_code == 409, refused.text
    assert [row["event_key"] for row in await queued("invoice.finalized")] == [invoice["id"]] * 2


async def test_a_subscription_invoice_is_told_as_finalized_with_its_period(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff, tax_rate_bps=1000)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    rows = await queued("invoice.finalized")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    data = one_occurrence(rows)["data"]
    assert (data["kind"], data["number"], data["total_minor"], data["amount_due_minor"]) == (
        "cycle",
        invoice["number"],
        invoice["total_minor"],
        invoice["amount_due_minor"],
    )
    euros, cents = divmod(invoice["total_minor"], 100)
    assert data["total"] == f"{euros}.{cents:02d} EUR"
    assert (_at(data["period_start"]), _at(data["period_end"])) == (
        parse(invoice["period_start"]),
        parse(invoice["period_end"]),
    )
    # Shown as the PDF shows it: the last day inclusive.
    assert data["period"] == format_period(parse(invoice["period_start"]), parse(invoice["period_end"]))
    assert data["period"].split(" to ")[-1] == (parse(invoice["period_end"]) - timedelta(days=1)).date().isoformat()


# -- invoice.paid ----------------------------------------------------------------------------------------


@pytest.fixture
def failing_payment_hook(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """A hook that fails the payment's transaction while `fail["on"]`."""
    fail = {"on": True}

    async def boom(tenant_id: Any, invoice_id: Any) -> None:
        if fail["on"]:
            raise RuntimeError("a hook failed after the invoice turned paid")

    monkeypatch.setattr(billing_hooks, "_INVOICE_PAID", [*billing_hooks._INVOICE_PAID, boom])
    yield fail


async def test_a_card_payment_is_told_once_and_not_when_its_transaction_rolls_back(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    gateway: StripeGateway,
    failing_payment_hook: dict[str, bool],
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff, tax_rate_bps=1000)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))

    with pytest.raises(RuntimeError):
        await payments_service.collect_invoice(gateway, _uuid(tenant["id"]), _uuid(invoice["id"]))
    assert await queued("invoice.paid") == []

    failing_payment_hook["on"] = False
    for _ in range(2):  # the pending attempt is settled; paying again answers with it
        paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "succeeded"
    rows = await queued("invoice.paid")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    row = one_occurrence(rows)
    assert row["event_key"] == invoice["id"]
    data = row["data"]
    euros, cents = divmod(invoice["total_minor"], 100)
    assert {key: value for key, value in data.items() if key != "paid_at"} == {
        "invoice_id": invoice["id"],
        "number": invoice["number"],
        "currency": "EUR",
        "amount_paid_minor": invoice["total_minor"],
        "amount_paid": f"{euros}.{cents:02d} EUR",
    }
    paid_at = _at(data["paid_at"])
    assert paid_at is not None and abs(datetime.now(UTC) - paid_at) < timedelta(minutes=5)
    assert await queued("invoice.payment_failed") == []


async def test_a_payment_settled_by_stripes_webhook_is_told_once(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any, webhook_secret: str
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    # Stripe's answer is lost (nothing listens at its address): the attempt stays pending, nothing is told.
    unreachable = dataclasses.replace(settings, stripe_api_base="http://127.0.0.1:9")
    lost = StripeGateway(make_stripe_client(unreachable, SecretStore.connect(settings)))
    with pytest.raises(PaymentProviderUnavailable):
        await billing.collect_invoice(lost, _uuid(tenant["id"]), _uuid(invoice["id"]))
    assert await queued("invoice.paid") == []

    # The webhook applies it in a system transaction, as often as Stripe delivers it.
    intent = {"id": "pi_told", "metadata": {"invoice_id": invoice["id"]}}
    succeeded = event("evt_told", "payment_intent.succeeded", intent)
    for _ in range(3):
        answer = await client.post(URL, content=succeeded, headers=signed(succeeded, webhook_secret))
        assert answer.status_code == 200, answer.text
    rows = await queued("invoice.paid")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    assert one_occurrence(rows)["data"]["amount_paid_minor"] == invoice["total_minor"]


async def test_an_invoice_the_wallet_pays_is_told_finalized_then_paid(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    grant = {"amount_minor": 100_000, "paid": False}
    granted = await client.post(f"/v1/tenants/{tenant['id']}/wallet/top-ups", json=grant, headers=staff.headers)
    assert granted.status_code == 201, granted.text
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    assert (invoice["status"], invoice["amount_due_minor"]) == ("paid", 0)

    finalized = one_occurrence(await queued("invoice.finalized"))["data"]
    assert (finalized["total_minor"], finalized["amount_due_minor"], finalized["amount_due"]) == (
        invoice["total_minor"],
        0,
        "0.00 EUR",
    )
    rows = await queued("invoice.paid")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    assert one_occurrence(rows)["data"]["amount_paid_minor"] == invoice["total_minor"]


# -- invoice.payment_failed ------------------------------------------------------------------------------


async def _first_failure(invoice_id: str) -> datetime:
    async with system_tx(SystemReason.STAFF_VIEW):
        rows = await fetch(
            "select min(created_at) as at from payments where invoice_id = {}::uuid and status = 'failed'", invoice_id
        )
    at: datetime = rows[0]["at"]
    return at


async def test_a_failed_payment_names_its_attempt_and_the_next_retry_of_the_schedule(
    client: AsyncClient, factory: Factory, stripe_client: Any, gateway: StripeGateway, told: list[Call]
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))

    tried = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert tried.json()["status"] == "failed", tried.text
    rows = await queued("invoice.payment_failed")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    row = one_occurrence(rows)
    assert row["event_key"] == tried.json()["id"]  # the attempt
    first = await _first_failure(invoice["id"])
    euros, cents = divmod(invoice["amount_due_minor"], 100)
    assert row["data"] == {
        "invoice_id": invoice["id"],
        "number": invoice["number"],
        "currency": "EUR",
        "amount_due_minor": invoice["amount_due_minor"],
        "amount_due": f"{euros}.{cents:02d} EUR",
        "decline_code": "card_declined",
        "attempt": 1,
        # The first retry of the schedule comes a day after the first failure.
        "next_retry_at": (first + timedelta(days=SCHEDULE[0])).astimezone(UTC).isoformat(),
    }
    # The subscription went past due: a webhook-only update.
    [(event, key, data, audience)] = of(told, "subscription.")
    assert (event, data["change"], data["status"], audience) == (
        "subscription.updated",
        "past_due",
        "past_due",
        {"tenant_id": _uuid(tenant["id"])},
    )
    assert key.startswith(f"{subscription['id']}:past_due:")

    # The collection run's first retry fails too: its own notice names the schedule's next date.
    start = datetime.now(UTC) + timedelta(minutes=1)
    for _ in range(2):  # a second run at the same moment attempts nothing and tells nothing
        await billing.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[0]), SCHEDULE)
    rows = await queued("invoice.payment_failed")
    assert len(rows) == 4
    retry = [row for row in rows if row["event_key"] != tried.json()["id"]]
    data = one_occurrence(retry)["data"]
    assert data["attempt"] == 2
    assert _at(data["next_retry_at"]) == first + timedelta(days=SCHEDULE[1])
    # Still past due: no second update.
    assert len(of(told, "subscription.")) == 1


async def test_a_payment_refused_for_want_of_a_card_tells_nothing(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant, _ = await told_tenant(factory, staff)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    refused = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert refused.status_code == 409, refused.text
    assert await queued("invoice.payment_failed") == []
    assert await queued("invoice.paid") == []


# -- subscription.updated / subscription.canceled (webhook only) ------------------------------------------


async def _change(client: AsyncClient, headers: dict[str, str], subscription_id: str, what: str, **body: Any) -> Any:
    response = await client.post(f"/v1/subscriptions/{subscription_id}/{what}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_subscription_changes_are_told_as_updates_and_its_end_as_canceled(
    client: AsyncClient, factory: Factory, told: list[Call]
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    await plan(client, staff.headers, "team", [{"type": "per_seat", "unit_amount_minor": 999}])
    await plan(client, staff.headers, "big", [{"type": "per_seat", "unit_amount_minor": 4999}])
    created = await subscribe(client, admin.headers, tenant["id"], "team", seats=2)
    sub = created["id"]
    assert of(told, "subscription.") == []  # a new subscription is no update

    await _change(client, admin.headers, sub, "change", seats=5)
    await _change(client, admin.headers, sub, "change", seats=5)  # the same again: nothing changed
    await _change(client, admin.headers, sub, "change", plan_code="big")
    await _change(client, admin.headers, sub, "change", seats=1)  # a downgrade: scheduled for the period's end
    await _change(client, admin.headers, sub, "cancel", at_period_end=True)
    await _change(client, admin.headers, sub, "cancel", at_period_end=True)
    await _change(client, admin.headers, sub, "resume")
    ended = await _change(client, admin.headers, sub, "cancel", at_period_end=False)
    await _change(client, admin.headers, sub, "cancel", at_period_end=False)

    calls = of(told, "subscription.")
    assert [(event, data.get("change")) for event, _, data, _ in calls] == [
        ("subscription.updated", "seats"),
        ("subscription.updated", "plan"),
        ("subscription.updated", "change_scheduled"),
        ("subscription.updated", "cancel_scheduled"),
        ("subscription.updated", "resumed"),
        ("subscription.canceled", None),
    ]
    assert all(audience == {"tenant_id": _uuid(tenant["id"])} for *_, audience in calls)
    assert len({key for _, key, _, _ in calls}) == len(calls)
    seats, moved, scheduled = (data for _, _, data, _ in calls[:3])
    assert (seats["plan_code"], seats["seats"], seats["status"], seats["subscription_id"]) == ("team", 5, "active", sub)
    assert (moved["plan_code"], moved["seats"]) == ("big", 5)
    assert (scheduled["pending_plan_code"], scheduled["pending_seats"], scheduled["seats"]) == ("big", 1, 5)
    assert calls[3][2]["cancel_at_period_end"] is True
    canceled = calls[5][2]
    assert canceled == {
        "subscription_id": sub,
        "plan_code": "big",
        "canceled_at": canceled["canceled_at"],
        "ends_at": canceled["canceled_at"],
    }
    assert _at(canceled["canceled_at"]) == parse(ended["canceled_at"])
    assert calls[5][1] == sub
    # None of these is emailed (webhook only).
    assert await queued("subscription.updated") == await queued("subscription.canceled") == []


async def test_a_trial_converting_and_a_cancel_at_the_periods_end_are_told_as_of_the_boundary(
    client: AsyncClient, factory: Factory, told: list[Call]
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    created = await subscribe(client, admin.headers, tenant["id"], "trial")
    trial_end = parse(created["trial_end"])
    tenant_id, sub = _uuid(tenant["id"]), _uuid(created["id"])

    for _ in range(2):  # a second run finds nothing to bill and tells nothing
        await billing.bill_subscription(tenant_id, sub, trial_end + timedelta(hours=1), timedelta(0))
    [(event, key, data, _)] = of(told, "subscription.")
    assert (event, data["change"], data["status"]) == ("subscription.updated", "trial_converted", "active")
    assert key == f"{sub}:trial_converted:{trial_end.isoformat()}"

    await _change(client, admin.headers, created["id"], "cancel", at_period_end=True)
    converted = (await client.get(f"/v1/subscriptions/{sub}", headers=admin.headers)).json()
    period_end = parse(converted["current_period_end"])
    await billing.bill_subscription(tenant_id, sub, period_end + timedelta(hours=1), timedelta(0))
    calls = of(told, "subscription.")
    assert [(event, data.get("change")) for event, _, data, _ in calls] == [
        ("subscription.updated", "trial_converted"),
        ("subscription.updated", "cancel_scheduled"),
        ("subscription.canceled", None),
    ]
    # Canceled when it ended: at the period's end, not when the cancel was asked for.
    assert _at(calls[2][2]["canceled_at"]) == period_end == _at(calls[2][2]["ends_at"])


# -- reseller.statement_ready ----------------------------------------------------------------------------


async def test_a_closed_month_tells_the_resellers_admins_once(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff = await factory.staff()
    agreement = {"currency": "EUR", "rate_bps": 1000, "pending_days": 0}
    reseller, founder = await _qualified_reseller(client, factory, staff, agreement)
    await _paid_owned_invoice(client, staff, founder, reseller, stripe_client, "EUR")
    assert await queued("reseller.statement_ready") == []

    for _ in range(2):
        await billing.close_month(_this_month(), now=_after_this_month())
    statement = (
        await client.get(f"/v1/resellers/{reseller}/statements/{_this_month():%Y-%m}", headers=founder.headers)
    ).json()
    rows = await queued("reseller.statement_ready")
    assert [(str(row["partner_id"]), row["tenant_id"], row["recipient"]) for row in rows] == [
        (reseller, None, f"user:{founder.user_id}")
    ]
    total = statement["total_minor"]
    assert total > 0
    assert rows[0]["event_key"] == statement["id"]
    assert rows[0]["data"] == {
        "statement_id": statement["id"],
        "month": f"{_this_month():%Y-%m}",
        "currency": "EUR",
        "total_minor": total,
        "total": f"{total // 100}.{total % 100:02d} EUR",
        "payable_minor": statement["payable_minor"],
        "payable": f"{statement['payable_minor'] // 100}.{statement['payable_minor'] % 100:02d} EUR",
    }


def _uuid(text: str) -> uuid.UUID:
    return uuid.UUID(text)
