"""Collecting invoices through Stripe (localstripe, through the official SDK): cards, success, decline."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import assert_problem
from tests.api.billing._support import plan, subscribe
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

GOOD_CARD = "4242424242424242"
# Attaches, then every charge is declined.
DECLINED_CARD = "4000000000000341"


@pytest.fixture
def stripe_client(settings: Settings) -> Any:
    return make_stripe_client(settings, SecretStore.connect(settings))


def card(stripe_client: Any, number: str) -> str:
    """A payment method as a browser would create it with Stripe.js."""
    method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}
    )
    return str(method.id)


async def _invoiced_tenant(client: AsyncClient, factory: Factory) -> tuple[Actor, dict[str, Any], dict[str, Any]]:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff, tax_rate_bps=1000)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = (await client.get(f"/v1/tenants/{tenant['id']}/invoices", headers=staff.headers)).json()["items"]
    assert invoice["amount_due_minor"] > 0
    return staff, tenant, {**invoice, "subscription": subscription}


async def _add_card(client: AsyncClient, headers: dict[str, str], tenant_id: str, method_id: str) -> dict[str, Any]:
    response = await client.post(
        f"/v1/tenants/{tenant_id}/payment-methods", json={"stripe_payment_method_id": method_id}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_card_pays_the_invoice_and_the_ledger_agrees(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    _, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    method = await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    assert (method["brand"], method["last4"], method["exp_month"], method["exp_year"], method["default"]) == (
        "visa",
        "4242",
        12,
        2031,
        True,
    )
    listed = (await client.get(f"/v1/tenants/{tenant['id']}/payment-methods", headers=admin.headers)).json()
    assert [item["id"] for item in listed["items"]] == [method["id"]]
    assert "stripe_payment_method_id" not in listed["items"][0]

    response = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert response.status_code == 200, response.text
    payment = response.json()
    assert (payment["status"], payment["attempt"], payment["amount_minor"]) == (
        "succeeded",
        1,
        invoice["amount_due_minor"],
    )
    paid = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert (paid["status"], paid["amount_due_minor"]) == ("paid", 0)
    # Paying again answers with the payment that paid it; nothing is charged twice.
    again = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == payment["id"]
    # Every page: localstripe keeps the whole session's intents, oldest first.
    intents = list(stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter())
    assert sum(1 for intent in intents if intent.metadata.to_dict().get("invoice_id") == invoice["id"]) == 1

    report = await service.verify_ledger()
    assert report.ok, report
    assert report.journals == 2  # the invoice issued, the payment received


async def test_a_declined_card_keeps_the_code_and_puts_the_subscription_past_due(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    response = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["decline_code"]) == ("failed", "card_declined")
    subscription = (
        await client.get(f"/v1/subscriptions/{invoice['subscription']['id']}", headers=staff.headers)
    ).json()
    assert subscription["status"] == "past_due"
    still_due = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert (still_due["status"], still_due["amount_due_minor"]) == ("finalized", invoice["amount_due_minor"])

    # A good card as the new default: the next attempt pays, and the subscription is active again.
    fixed = await client.post(
        f"/v1/tenants/{tenant['id']}/payment-methods",
        json={"stripe_payment_method_id": card(stripe_client, GOOD_CARD), "default": True},
        headers=staff.headers,
    )
    assert fixed.status_code == 201, fixed.text
    retried = (await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)).json()
    assert (retried["status"], retried["attempt"]) == ("succeeded", 2)
    subscription = (
        await client.get(f"/v1/subscriptions/{invoice['subscription']['id']}", headers=staff.headers)
    ).json()
    assert subscription["status"] == "active"
    assert (await service.verify_ledger()).ok


async def test_paying_without_a_card_or_with_a_bad_one_is_refused_cleanly(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    body = assert_problem(await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers), 409)
    assert (body["code"], body["required_actions"]) == ("no_payment_method", ["add_payment_method"])
    unknown = await client.post(
        f"/v1/tenants/{tenant['id']}/payment-methods",
        json={"stripe_payment_method_id": "pm_doesnotexist"},
        headers=staff.headers,
    )
    assert_problem(unknown, 422, "invalid_payment_method")
    malformed = await client.post(
        f"/v1/tenants/{tenant['id']}/payment-methods",
        json={"stripe_payment_method_id": "card 4242"},
        headers=staff.headers,
    )
    assert_problem(malformed, 400)
    viewer = await factory.member(tenant["id"], "billing_viewer")
    assert_problem(await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=viewer.headers), 403)
    listed = (await client.get(f"/v1/tenants/{tenant['id']}/payment-methods", headers=viewer.headers)).json()
    assert listed["items"] == []


async def test_refunds_give_back_at_most_what_was_paid(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    unpaid = await client.post(
        f"/v1/invoices/{invoice['id']}/refunds", json={"amount_minor": 1, "reason": "early"}, headers=staff.headers
    )
    assert_problem(unpaid, 409, "invalid_invoice_transition")
    assert (await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)).status_code == 200
    paid = invoice["amount_due_minor"]
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/invoices/{invoice['id']}/refunds"
    assert_problem(await client.post(url, json={"amount_minor": 1, "reason": "mine"}, headers=admin.headers), 403)

    earlier = {refund.id for refund in stripe_client.v1.refunds.list(params={"limit": 100}).data}
    first = await client.post(url, json={"amount_minor": 100, "reason": "outage credit"}, headers=staff.headers)
    assert first.status_code == 201, first.text
    assert (first.json()["status"], first.json()["amount_minor"]) == ("succeeded", 100)
    too_much = await client.post(url, json={"amount_minor": paid - 99, "reason": "all"}, headers=staff.headers)
    body = assert_problem(too_much, 409, "refund_exceeds_paid")
    assert body["refundable_minor"] == paid - 100
    rest = await client.post(url, json={"amount_minor": paid - 100, "reason": "all"}, headers=staff.headers)
    assert rest.status_code == 201, rest.text

    notes = (await client.get(f"/v1/invoices/{invoice['id']}/credit-notes", headers=staff.headers)).json()
    assert [note["amount_minor"] for note in notes] == [100, paid - 100]
    refunds = [r for r in stripe_client.v1.refunds.list(params={"limit": 100}).data if r.id not in earlier]
    assert sorted(refund.amount for refund in refunds) == sorted([100, paid - 100])
    after = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert (after["status"], after["amount_due_minor"], after["credited_minor"]) == ("paid", 0, paid)
    assert (await service.verify_ledger()).ok
    inspector = await connect_as_inspector(stack_env)
    try:
        balances = dict(
            await inspector.fetch(
                "select account, sum(amount_minor) from ledger_postings where tenant_id = $1 group by account",
                uuid.UUID(tenant["id"]),
            )
        )
    finally:
        await inspector.close()
    # Refunded revenue sits in the contra-revenue account; revenue keeps what the invoice earned.
    assert balances["revenue"] == -invoice["subtotal_minor"]
    assert balances["refunds"] == invoice["subtotal_minor"]
    assert balances["cash:stripe"] == 0


async def test_amounts_reach_stripe_in_its_own_units_for_its_special_currencies(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "krona", [{"type": "flat", "amount_minor": 3100}], currency="ISK")
    tenant = await factory.tenant(staff, currency="ISK")
    await subscribe(client, staff.headers, tenant["id"], "krona")
    [invoice] = (await client.get(f"/v1/tenants/{tenant['id']}/invoices", headers=staff.headers)).json()["items"]
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
    assert paid.json()["amount_minor"] == invoice["amount_due_minor"]  # ISO: krónur have no decimals
    intents = list(stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter())
    [intent] = [i for i in intents if i.metadata.to_dict().get("invoice_id") == invoice["id"]]
    # Stripe keeps ISK two-decimal: the same krónur, in hundredths.
    assert (intent.currency, intent.amount) == ("isk", invoice["amount_due_minor"] * 100)
    refunded = await client.post(
        f"/v1/invoices/{invoice['id']}/refunds", json={"amount_minor": 100, "reason": "goodwill"}, headers=staff.headers
    )
    assert refunded.status_code == 201, refunded.text
    [made] = stripe_client.v1.refunds.list(params={"payment_intent": intent.id, "limit": 10}).data
    assert made.amount == 100 * 100
    assert (await service.verify_ledger()).ok


async def test_an_invoice_in_a_currency_stripe_takes_in_steps_is_cash_rounded_so_it_can_be_paid(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    """HUF: Stripe charges whole forints only. 10 000 x 17/31 = 5483.87 -> 5484; tax 27 % = 1480.68 -> 1481;
    6965 due, which Stripe would refuse for ever: cash-rounded (half up, after tax) to 7000 by a line of +35."""
    staff = await factory.staff()
    await plan(client, staff.headers, "forint", [{"type": "flat", "amount_minor": 10000}], currency="HUF")
    tenant = await factory.tenant(staff, currency="HUF", tax_rate_bps=2700)
    await subscribe(client, staff.headers, tenant["id"], "forint", start_at=datetime(2026, 1, 15, tzinfo=UTC))
    [invoice] = (await client.get(f"/v1/tenants/{tenant['id']}/invoices", headers=staff.headers)).json()["items"]
    assert [(line["charge_kind"], line["amount_minor"]) for line in invoice["lines"]] == [
        ("flat", 5484),
        ("rounding", 35),
    ]
    assert (invoice["subtotal_minor"], invoice["tax_minor"], invoice["total_minor"]) == (5519, 1481, 7000)
    assert invoice["amount_due_minor"] == 7000
    assert (await service.verify_ledger()).ok  # the receivable is the rounded total

    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
    intents = list(stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter())
    [intent] = [i for i in intents if i.metadata.to_dict().get("invoice_id") == invoice["id"]]
    assert (intent.currency, intent.amount) == ("huf", 7000)

    # A refund Stripe could not send is refused before anything is written; a whole-forint one goes through.
    url = f"/v1/invoices/{invoice['id']}/refunds"
    refused = await client.post(url, json={"amount_minor": 150, "reason": "half a forint"}, headers=staff.headers)
    assert_problem(refused, 422, "amount_not_chargeable")
    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch("select 1 from refunds where invoice_id = $1", uuid.UUID(invoice["id"]))
    finally:
        await inspector.close()
    assert rows == []
    refunded = await client.post(url, json={"amount_minor": 100, "reason": "goodwill"}, headers=staff.headers)
    assert refunded.status_code == 201, refunded.text
    assert (await service.verify_ledger()).ok
