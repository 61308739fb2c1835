"""Card disputes through the real Stripe webhook route (signed events): recorded once whatever the order of
delivery, booked out of cash and back (won) or to losses (lost), shown on the invoice and to staff, the tenant
suspended when the platform says so, and `ledger verify` agreeing after every step."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient
from litestar import Litestar

from billing import hooks, service
from billing.ledger.rules import CASH, DISPUTE_FEES, DISPUTE_LOSSES, credit_liability, disputes_held
from billing.money import display, exponent
from billing.payments.stripe_amounts import to_stripe
from controlplane.core import metrics
from controlplane.core.settings import Settings
from tests.api._helpers import assert_problem
from tests.api.billing._support import invoices, plan, subscribe
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.api.billing.test_wallets import movements, top_up, wallet
from tests.api.billing.test_webhooks import _invoice_with_a_pending_attempt, event, signed, webhook_secret
from tests.api.partners.test_commissions import (
    _after_this_month,
    _paid_owned_invoice,
    _qualified_reseller,
    _statement,
    _this_month,
)
from tests.conftest import connect_as_inspector
from tests.e2e.test_ledger_cli import _cli
from tests.factories import Actor, Factory
from tests.integration.notifications._outbox import queued

__all__ = ["stripe_client", "webhook_secret"]  # the fixtures, shared
URL = "/v1/webhooks/stripe"


@dataclasses.dataclass(frozen=True)
class Paid:
    staff: Actor
    tenant: dict[str, Any]
    invoice: dict[str, Any]
    intent: str
    amount_minor: int  # what the card paid, ISO minor units
    currency: str

    @property
    def stripe_amount(self) -> int:
        return to_stripe(self.amount_minor, self.currency, exponent(self.currency))


async def _paid(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    stack_env: dict[str, str],
    currency: str = "USD",
    price: int = 3100,
    tax_rate_bps: int = 1000,
    staff: Actor | None = None,
) -> Paid:
    staff = staff or await factory.staff()
    code = f"p{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": price}], currency=currency)
    tenant = await factory.tenant(staff, currency=currency, tax_rate_bps=tax_rate_bps)
    await subscribe(client, staff.headers, tenant["id"], code)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text
    inspector = await connect_as_inspector(stack_env)
    try:
        intent = await inspector.fetchval(
            "select stripe_payment_intent_id from payments where invoice_id = $1 and status = 'succeeded'",
            uuid.UUID(invoice["id"]),
        )
    finally:
        await inspector.close()
    return Paid(staff, tenant, invoice, intent, paid.json()["amount_minor"], currency)


def dispute(
    paid: Paid,
    stripe_id: str,
    status: str = "needs_response",
    *,
    amount: int | None = None,
    fee: int | None = None,
    fee_returned: int | None = None,
    fee_currency: str | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A Stripe dispute object (amounts in Stripe's units); without `fee`, no balance transactions at all
    (as localstripe would send it)."""
    amount = paid.stripe_amount if amount is None else amount
    obj: dict[str, Any] = {
        "id": stripe_id,
        "object": "dispute",
        "amount": amount,
        "currency": paid.currency.lower(),
        "charge": f"ch_{stripe_id}",
        "payment_intent": paid.intent,
        "reason": "fraudulent",
        "status": status,
        "created": int(time.time()) - 3600,
    }
    if fee is not None:
        code = (fee_currency or paid.currency).lower()
        obj["balance_transactions"] = [
            {"object": "balance_transaction", "amount": -amount, "fee": fee, "currency": code}
        ]
        if fee_returned is not None:
            obj["balance_transactions"].append(
                {"object": "balance_transaction", "amount": amount, "fee": -fee_returned, "currency": code}
            )
    return {**obj, **changes}


async def listed(
    client: AsyncClient,
    url: str,
    headers: dict[str, str],
    status: str | None = None,
    limit: int = 1,
    key: str = "stripe_dispute_id",
) -> list[str]:
    """`key` (staff's list: the Stripe id; a tenant's: our id) of every item of every page of a dispute list
    (of one status), following `next_cursor`."""
    found: list[str] = []
    params: dict[str, Any] = {"limit": limit} | ({"status": status} if status else {})
    for _ in range(100):
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(item[key] for item in page["items"])
        if page["next_cursor"] is None:
            return found
        params["cursor"] = page["next_cursor"]
    raise AssertionError(f"{url} never ended")


async def deliver(client: AsyncClient, secret: str, event_id: str, kind: str, obj: Any) -> str:
    payload = event(event_id, kind, obj)
    answer = await client.post(URL, content=payload, headers=signed(payload, secret))
    assert answer.status_code == 200, answer.text
    result: str = answer.json()["result"]
    return result


async def recorded_event(stack_env: dict[str, str], event_id: str) -> bool:
    inspector = await connect_as_inspector(stack_env)
    try:
        found = await inspector.fetchval("select count(*) from stripe_webhook_events where id = $1", event_id)
    finally:
        await inspector.close()
    return bool(found)


async def verified() -> None:
    report = await service.verify_ledger()
    assert report.ok, report


async def dispute_rows(stack_env: dict[str, str], invoice_id: str) -> list[dict[str, Any]]:
    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch("select * from disputes where invoice_id = $1", uuid.UUID(invoice_id))
    finally:
        await inspector.close()
    return [dict(row) for row in rows]


async def journals(stack_env: dict[str, str], dispute_id: uuid.UUID) -> dict[str, dict[tuple[str, str], int]]:
    """source_type -> (account, currency) -> net amount, of the dispute's journals."""
    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch(
            "select j.source_type, p.account, trim(p.currency) as currency, sum(p.amount_minor) as amount "
            "from ledger_journals j join ledger_postings p on p.journal_id = j.id where j.source_id = $1 "
            "group by 1, 2, 3",
            dispute_id,
        )
    finally:
        await inspector.close()
    found: dict[str, dict[tuple[str, str], int]] = {}
    for row in rows:
        if row["amount"]:
            found.setdefault(row["source_type"], {})[(row["account"], row["currency"])] = int(row["amount"])
    return found


async def billing_suspended(stack_env: dict[str, str], tenant_id: str) -> bool:
    inspector = await connect_as_inspector(stack_env)
    try:
        at = await inspector.fetchval("select billing_suspended_at from tenants where id = $1", uuid.UUID(tenant_id))
    finally:
        await inspector.close()
    return at is not None


@pytest.fixture
def changes() -> Iterator[list[tuple[uuid.UUID, uuid.UUID, str]]]:
    """What `billing.hooks.dispute_changed` was called with (this test's callback only)."""
    calls: list[tuple[uuid.UUID, uuid.UUID, str]] = []

    async def record(tenant_id: uuid.UUID, dispute_id: uuid.UUID, status: str) -> None:
        calls.append((tenant_id, dispute_id, status))

    before = list(hooks._DISPUTE_CHANGED)
    hooks.on_dispute_changed(record)
    yield calls
    hooks._DISPUTE_CHANGED[:] = before


# -- won and lost, in both orders ------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["won", "lost"])
@pytest.mark.parametrize("order", ["created_first", "closed_first"])
async def test_a_dispute_is_decided_once_whatever_the_order_and_however_often_it_is_delivered(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
    changes: list[tuple[uuid.UUID, uuid.UUID, str]],
    outcome: str,
    order: str,
) -> None:
    paid = await _paid(client, factory, stripe_client, stack_env)
    admin = await factory.member(paid.tenant["id"], "tenant_admin")
    tenant_id = uuid.UUID(paid.tenant["id"])
    created = dispute(paid, "dp_order", fee=1500)
    closed = dispute(paid, "dp_order", outcome, fee=1500)
    amount = paid.amount_minor

    if order == "created_first":
        assert await deliver(client, webhook_secret, "evt_created", "charge.dispute.created", created) == "applied"
        await verified()
        [row] = await dispute_rows(stack_env, paid.invoice["id"])
        assert (row["status"], row["amount_minor"], row["fee_minor"], row["closed_at"]) == ("open", amount, 1500, None)
        assert await journals(stack_env, row["id"]) == {
            "dispute_opened": {
                (disputes_held(tenant_id), "USD"): amount,
                (CASH, "USD"): -amount - 1500,
                (DISPUTE_FEES, "USD"): 1500,
            }
        }
        shown = (await client.get(f"/v1/invoices/{paid.invoice['id']}", headers=admin.headers)).json()
        assert [(d["status"], d["amount_minor"], d["currency"], d["closed_at"]) for d in shown["disputes"]] == [
            ("open", amount, "USD", None)
        ]
        assert shown["status"] == "paid"
    assert await deliver(client, webhook_secret, "evt_closed", "charge.dispute.closed", closed) == "applied"
    await verified()
    # Late or repeated deliveries change nothing: a `created` after `closed`, the same event again, another
    # `closed` with the other outcome (the first decision stands), and the events that are not applied.
    assert await deliver(client, webhook_secret, "evt_created_2", "charge.dispute.created", created) == "ignored"
    assert await deliver(client, webhook_secret, "evt_closed", "charge.dispute.closed", closed) == "duplicate"
    other = dispute(paid, "dp_order", "won" if outcome == "lost" else "lost", fee=1500)
    assert await deliver(client, webhook_secret, "evt_closed_2", "charge.dispute.closed", other) == "ignored"
    assert (
        await deliver(client, webhook_secret, "evt_reinstated", "charge.dispute.funds_reinstated", closed) == "ignored"
    )
    assert (
        await deliver(client, webhook_secret, "evt_withdrawn", "charge.dispute.funds_withdrawn", created) == "ignored"
    )
    await verified()

    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["amount_minor"], row["currency"].strip(), row["fee_minor"]) == (
        outcome,
        amount,
        "USD",
        1500,
    )
    assert row["closed_at"] is not None and row["closed_at"] >= row["opened_at"]
    books = await journals(stack_env, row["id"])
    assert books["dispute_opened"] == {
        (disputes_held(tenant_id), "USD"): amount,
        (CASH, "USD"): -amount - 1500,
        (DISPUTE_FEES, "USD"): 1500,
    }
    if outcome == "won":
        # Stripe kept its fee (no reinstated fee in the object): only the amount comes back.
        assert books["dispute_closed"] == {(CASH, "USD"): amount, (disputes_held(tenant_id), "USD"): -amount}
    else:
        assert books["dispute_closed"] == {(DISPUTE_LOSSES, "USD"): amount, (disputes_held(tenant_id), "USD"): -amount}
    # One call per change; when `closed` came first, one call with the final status.
    expected_calls = [(tenant_id, row["id"], "open"), (tenant_id, row["id"], outcome)]
    assert changes == (expected_calls if order == "created_first" else expected_calls[1:])

    # Lost: suspended as for non-payment (the platform's default); the invoice stays paid and shows it.
    assert await billing_suspended(stack_env, paid.tenant["id"]) == (outcome == "lost")
    if outcome == "lost":
        tenant_url = f"/v1/tenants/{paid.tenant['id']}"
        assert_problem(await client.get(tenant_url, headers=admin.headers), 402, "suspended_for_non_payment")
    shown = (await client.get(f"/v1/invoices/{paid.invoice['id']}", headers=admin.headers)).json()
    assert shown["status"] == "paid"
    [seen] = shown["disputes"]
    assert (seen["status"], seen["amount_minor"], seen["reason"]) == (outcome, amount, "fraudulent")
    assert seen["opened_at"] and seen["closed_at"]


async def test_lost_dispute_to_tenant_status_the_tenant_is_suspended_only_when_the_platform_says_so(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
    app: Litestar,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DISPUTE_LOST_SUSPENDS on (the default): suspended for non-payment, as dunning does (402 outside billing,
    its disputes still readable); off: the loss is booked and the tenant stays active. A won dispute never
    suspends (the parametrized test above)."""
    staff = await factory.staff()
    suspended = await _paid(client, factory, stripe_client, stack_env, staff=staff)
    kept = await _paid(client, factory, stripe_client, stack_env, staff=staff)
    assert app.state.settings.dispute_lost_suspends is True
    lost = dispute(suspended, "dp_on", "lost")
    assert await deliver(client, webhook_secret, "evt_on", "charge.dispute.closed", lost) == "applied"
    # The app reads the setting per request: off for the next delivery.
    monkeypatch.setattr(app.state, "settings", dataclasses.replace(app.state.settings, dispute_lost_suspends=False))
    assert (
        await deliver(client, webhook_secret, "evt_off", "charge.dispute.closed", dispute(kept, "dp_off", "lost"))
        == "applied"
    )

    assert await billing_suspended(stack_env, suspended.tenant["id"])
    admin = await factory.member(suspended.tenant["id"], "tenant_admin")
    tenant_url = f"/v1/tenants/{suspended.tenant['id']}"
    assert_problem(await client.get(tenant_url, headers=admin.headers), 402, "suspended_for_non_payment")
    assert (await client.get(f"{tenant_url}/disputes", headers=admin.headers)).status_code == 200
    assert (await client.get(tenant_url, headers=staff.headers)).json()["status"] == "suspended"

    assert not await billing_suspended(stack_env, kept.tenant["id"])
    other_admin = await factory.member(kept.tenant["id"], "tenant_admin")
    assert (await client.get(f"/v1/tenants/{kept.tenant['id']}", headers=other_admin.headers)).status_code == 200
    # The platform absorbs the loss: nothing is billed again.
    assert [(row["status"], row["rebill_invoice_id"]) for row in await dispute_rows(stack_env, kept.invoice["id"])] == [
        ("lost", None)
    ]
    assert [i["kind"] for i in await invoices(client, staff.headers, kept.tenant["id"])] == ["cycle"]
    await verified()


async def test_lost_dispute_to_tenant_status_the_suspension_lasts_until_the_rebilled_amount_is_paid(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """The lost amount is billed again (a one-off invoice, untaxed: the disputed charge's tax was booked and is
    not reversed); paying any other invoice leaves the tenant suspended, paying that one lifts it."""
    paid = await _paid(client, factory, stripe_client, stack_env)
    staff = paid.staff
    lost = dispute(paid, "dp_rebill", "lost")
    for event_id in ("evt_rb1", "evt_rb2"):
        await deliver(client, webhook_secret, event_id, "charge.dispute.closed", lost)
    assert await billing_suspended(stack_env, paid.tenant["id"])
    rebills = [i for i in await invoices(client, staff.headers, paid.tenant["id"]) if i["kind"] == "one_off"]
    [rebill] = rebills  # once, however often `closed` was delivered
    assert [line["description"] for line in rebill["lines"]] == [
        f"Disputed payment of invoice {paid.invoice['number']}"
    ]
    assert (rebill["status"], rebill["total_minor"], rebill["tax_minor"], rebill["amount_due_minor"]) == (
        "finalized",
        paid.amount_minor,
        0,
        paid.amount_minor,
    )
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert str(row["rebill_invoice_id"]) == rebill["id"]
    await verified()

    other = await client.post(
        f"/v1/tenants/{paid.tenant['id']}/invoices",
        json={"currency": "USD", "lines": [{"description": "Setup", "quantity": 1, "unit_amount_minor": 500}]},
        headers=staff.headers,
    )
    assert other.status_code == 201, other.text
    paid_other = await client.post(f"/v1/invoices/{other.json()['id']}/pay", headers=staff.headers)
    assert paid_other.json()["status"] == "succeeded", paid_other.text
    assert await billing_suspended(stack_env, paid.tenant["id"])

    paid_rebill = await client.post(f"/v1/invoices/{rebill['id']}/pay", headers=staff.headers)
    assert paid_rebill.json()["status"] == "succeeded", paid_rebill.text
    assert not await billing_suspended(stack_env, paid.tenant["id"])
    await verified()


# -- currencies ------------------------------------------------------------------------------------------------


async def test_journals_in_usd_with_the_fee_given_back_on_a_win(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    paid = await _paid(client, factory, stripe_client, stack_env, "USD", 3100)
    tenant_id = uuid.UUID(paid.tenant["id"])
    won = dispute(paid, "dp_usd", "won", fee=1500, fee_returned=1500)
    assert await deliver(client, webhook_secret, "evt_usd", "charge.dispute.closed", won) == "applied"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["fee_minor"], row["fee_returned_minor"]) == (1500, 1500)
    books = await journals(stack_env, row["id"])
    assert books["dispute_closed"] == {
        (CASH, "USD"): paid.amount_minor + 1500,
        (disputes_held(tenant_id), "USD"): -paid.amount_minor,
        (DISPUTE_FEES, "USD"): -1500,
    }
    await verified()


async def test_journals_in_jpy_with_stripes_fee_in_dollars_on_a_loss(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """Yen have no minor unit at Stripe or in ISO: the amount is the same number; the fee is the USD account's."""
    paid = await _paid(client, factory, stripe_client, stack_env, "JPY", 5000, tax_rate_bps=0)
    tenant_id = uuid.UUID(paid.tenant["id"])
    assert paid.stripe_amount == paid.amount_minor
    created = dispute(paid, "dp_jpy", fee=1500, fee_currency="USD")
    assert await deliver(client, webhook_secret, "evt_jpy_1", "charge.dispute.created", created) == "applied"
    lost = dispute(paid, "dp_jpy", "lost", fee=1500, fee_currency="USD")
    assert await deliver(client, webhook_secret, "evt_jpy_2", "charge.dispute.closed", lost) == "applied"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["amount_minor"], row["currency"].strip(), row["fee_minor"], row["fee_currency"].strip()) == (
        paid.amount_minor,
        "JPY",
        1500,
        "USD",
    )
    books = await journals(stack_env, row["id"])
    assert books == {
        "dispute_opened": {
            (disputes_held(tenant_id), "JPY"): paid.amount_minor,
            (CASH, "JPY"): -paid.amount_minor,
            (DISPUTE_FEES, "USD"): 1500,
            (CASH, "USD"): -1500,
        },
        "dispute_closed": {
            (DISPUTE_LOSSES, "JPY"): paid.amount_minor,
            (disputes_held(tenant_id), "JPY"): -paid.amount_minor,
        },
    }
    await verified()


async def test_journals_in_kwd_without_balance_transactions(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """Fils are thousandths at Stripe and in ISO; no balance transactions (as localstripe sends): no fee."""
    paid = await _paid(client, factory, stripe_client, stack_env, "KWD", 12340, tax_rate_bps=0)
    tenant_id = uuid.UUID(paid.tenant["id"])
    part = paid.amount_minor // 2 // 10 * 10  # a partial dispute, still in Stripe's steps of 10 fils
    created = dispute(paid, "dp_kwd", amount=part)
    assert "balance_transactions" not in created
    assert await deliver(client, webhook_secret, "evt_kwd_1", "charge.dispute.created", created) == "applied"
    assert (
        await deliver(
            client,
            webhook_secret,
            "evt_kwd_2",
            "charge.dispute.closed",
            dispute(paid, "dp_kwd", "warning_closed", amount=part),
        )
        == "applied"
    )
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["amount_minor"], row["fee_minor"]) == ("won", part, 0)
    assert await journals(stack_env, row["id"]) == {
        "dispute_opened": {(disputes_held(tenant_id), "KWD"): part, (CASH, "KWD"): -part},
        "dispute_closed": {(CASH, "KWD"): part, (disputes_held(tenant_id), "KWD"): -part},
    }
    await verified()


# -- inquiries and late fees ------------------------------------------------------------------------------------


async def test_an_inquiry_withdraws_nothing_and_closes_with_nothing_to_return(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """Stripe's inquiries (`warning_*`) take no money: recorded open with no journal; `warning_closed` closes it
    (as won) with nothing to return."""
    paid = await _paid(client, factory, stripe_client, stack_env)
    inquiry = dispute(paid, "dp_inquiry", "warning_needs_response")
    assert await deliver(client, webhook_secret, "evt_i1", "charge.dispute.created", inquiry) == "applied"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["funds_withdrawn"]) == ("open", False)
    assert await journals(stack_env, row["id"]) == {}
    await verified()
    under_review = dispute(paid, "dp_inquiry", "warning_under_review")
    assert await deliver(client, webhook_secret, "evt_i2", "charge.dispute.created", under_review) == "ignored"
    closed = dispute(paid, "dp_inquiry", "warning_closed")
    assert await deliver(client, webhook_secret, "evt_i3", "charge.dispute.closed", closed) == "applied"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["funds_withdrawn"]) == ("won", False)
    assert await journals(stack_env, row["id"]) == {}
    await verified()


@pytest.mark.parametrize("outcome", ["won", "lost"])
async def test_an_inquiry_that_becomes_a_dispute_books_its_opening_then_and_its_fee_once(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
    outcome: str,
) -> None:
    paid = await _paid(client, factory, stripe_client, stack_env)
    tenant_id = uuid.UUID(paid.tenant["id"])
    amount = paid.amount_minor
    inquiry = dispute(paid, "dp_escalated", "warning_needs_response")
    assert await deliver(client, webhook_secret, "evt_e1", "charge.dispute.created", inquiry) == "applied"
    withdrawn = dispute(paid, "dp_escalated", "needs_response", fee=1500)
    assert await deliver(client, webhook_secret, "evt_e2", "charge.dispute.funds_withdrawn", withdrawn) == "applied"
    assert await deliver(client, webhook_secret, "evt_e3", "charge.dispute.funds_withdrawn", withdrawn) == "ignored"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["funds_withdrawn"], row["fee_minor"]) == ("open", True, 1500)
    assert await journals(stack_env, row["id"]) == {
        "dispute_opened": {(disputes_held(tenant_id), "USD"): amount, (CASH, "USD"): -amount},
        "dispute_fee": {(DISPUTE_FEES, "USD"): 1500, (CASH, "USD"): -1500},
    }
    await verified()
    closed = dispute(paid, "dp_escalated", outcome, fee=1500)
    assert await deliver(client, webhook_secret, "evt_e4", "charge.dispute.closed", closed) == "applied"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert row["status"] == outcome
    assert set(await journals(stack_env, row["id"])) == {"dispute_opened", "dispute_fee", "dispute_closed"}
    await verified()


async def test_an_inquiry_closed_lost_first_books_its_opening_and_its_loss(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """A lost dispute took the money: an inquiry whose `closed` says `lost` (its withdrawal never told) books the
    opening before the loss."""
    paid = await _paid(client, factory, stripe_client, stack_env)
    tenant_id = uuid.UUID(paid.tenant["id"])
    inquiry = dispute(paid, "dp_inq_lost", "warning_under_review")
    assert await deliver(client, webhook_secret, "evt_l1", "charge.dispute.created", inquiry) == "applied"
    lost = dispute(paid, "dp_inq_lost", "lost")
    assert await deliver(client, webhook_secret, "evt_l2", "charge.dispute.closed", lost) == "applied"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["funds_withdrawn"]) == ("lost", True)
    assert await journals(stack_env, row["id"]) == {
        "dispute_opened": {(disputes_held(tenant_id), "USD"): paid.amount_minor, (CASH, "USD"): -paid.amount_minor},
        "dispute_closed": {
            (DISPUTE_LOSSES, "USD"): paid.amount_minor,
            (disputes_held(tenant_id), "USD"): -paid.amount_minor,
        },
    }
    await verified()


async def test_a_fee_first_seen_on_a_later_event_is_booked_once(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """`created` listed no balance transactions; `funds_withdrawn` shows Stripe's fee: a `dispute_fee` journal,
    once however often it is told, so `dispute_fees` holds what Stripe charged."""
    paid = await _paid(client, factory, stripe_client, stack_env)
    assert (
        await deliver(client, webhook_secret, "evt_f1", "charge.dispute.created", dispute(paid, "dp_fee")) == "applied"
    )
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert row["fee_minor"] == 0
    with_fee = dispute(paid, "dp_fee", fee=1500)
    assert await deliver(client, webhook_secret, "evt_f2", "charge.dispute.funds_withdrawn", with_fee) == "applied"
    assert await deliver(client, webhook_secret, "evt_f3", "charge.dispute.funds_withdrawn", with_fee) == "ignored"
    won = dispute(paid, "dp_fee", "won", fee=1500, fee_returned=1500)
    assert await deliver(client, webhook_secret, "evt_f4", "charge.dispute.closed", won) == "applied"
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["fee_minor"], row["fee_returned_minor"]) == ("won", 1500, 1500)
    books = await journals(stack_env, row["id"])
    assert books["dispute_fee"] == {(DISPUTE_FEES, "USD"): 1500, (CASH, "USD"): -1500}
    assert books["dispute_closed"][(DISPUTE_FEES, "USD")] == -1500
    await verified()
    # `ledger verify` counts the fee's own journal with the opening: without it, the fee is missing.
    owner = await connect_as_inspector(stack_env)
    try:
        await owner.execute(
            "delete from ledger_postings where journal_id = "
            "(select id from ledger_journals where source_type = 'dispute_fee' and source_id = $1)",
            row["id"],
        )
    finally:
        await owner.close()
    report = await service.verify_ledger()
    assert {(d.journal, d.account, d.expected - d.ledger) for d in report.dispute_differences} == {
        ("dispute_opened", DISPUTE_FEES, 1500),
        ("dispute_opened", CASH, -1500),
    }


# -- prepaid credits -----------------------------------------------------------------------------------------


async def _bought_credits(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str], amount: int
) -> Paid:
    """A tenant (EUR, 10 % tax, plan `pro` at 31.00) that bought `amount` of credit by card."""
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff, tax_rate_bps=1000)
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    bought = await top_up(client, staff, tenant["id"], amount_minor=amount, paid=True)
    assert bought.status_code == 201, bought.text
    purchase = (await client.get(f"/v1/invoices/{bought.json()['invoice_id']}", headers=staff.headers)).json()
    inspector = await connect_as_inspector(stack_env)
    try:
        intent = await inspector.fetchval(
            "select stripe_payment_intent_id from payments where invoice_id = $1 and status = 'succeeded'",
            uuid.UUID(purchase["id"]),
        )
    finally:
        await inspector.close()
    return Paid(staff, tenant, purchase, intent, amount, "EUR")


async def test_a_lost_dispute_of_a_credit_purchase_takes_its_credits_back(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """Credits bought for 100.00 and disputed whole: lost, the cardholder has the money back, so the wallet
    gives the credits back as a refund of that amount would (a `disputed` movement), and the platform lost
    nothing (no dispute loss: the credit it owed is gone with the money)."""
    paid = await _bought_credits(client, factory, stripe_client, stack_env, 10000)
    tenant_id = uuid.UUID(paid.tenant["id"])
    assert (await wallet(client, paid.staff, paid.tenant["id"]))["balance_minor"] == 10000
    created = dispute(paid, "dp_credits")
    assert await deliver(client, webhook_secret, "evt_cr1", "charge.dispute.created", created) == "applied"
    lost = dispute(paid, "dp_credits", "lost")
    for event_id in ("evt_cr2", "evt_cr3"):
        await deliver(client, webhook_secret, event_id, "charge.dispute.closed", lost)
    body = await wallet(client, paid.staff, paid.tenant["id"])
    assert (body["balance_minor"], body["purchased_minor"]) == (0, 0)
    assert movements(body) == [("top_up", 10000), ("disputed", -10000)]
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (row["status"], row["credits_taken_minor"]) == ("lost", 10000)
    # Nothing is owed once the credits are back: nothing billed again, no suspension.
    assert row["rebill_invoice_id"] is None
    assert not await billing_suspended(stack_env, paid.tenant["id"])
    assert (await journals(stack_env, row["id"]))["dispute_closed"] == {
        (credit_liability(tenant_id), "EUR"): 10000,
        (disputes_held(tenant_id), "EUR"): -10000,
    }
    await verified()


async def test_a_lost_dispute_of_a_credit_purchase_takes_back_what_is_left_and_what_was_spent_is_lost(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """50.00 bought, part of it paid the first invoice, then the purchase is disputed and lost: what is left
    of the credits goes back; what was spent stays spent (that part is the dispute's loss)."""
    paid = await _bought_credits(client, factory, stripe_client, stack_env, 5000)
    tenant_id = uuid.UUID(paid.tenant["id"])
    await subscribe(client, paid.staff.headers, paid.tenant["id"], "pro")
    spent = 5000 - (await wallet(client, paid.staff, paid.tenant["id"]))["balance_minor"]
    assert 0 < spent < 5000
    lost = dispute(paid, "dp_spent", "lost")
    assert await deliver(client, webhook_secret, "evt_sp", "charge.dispute.closed", lost) == "applied"
    body = await wallet(client, paid.staff, paid.tenant["id"])
    assert body["balance_minor"] == 0
    assert movements(body)[-1] == ("disputed", -(5000 - spent))
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    assert (await journals(stack_env, row["id"]))["dispute_closed"] == {
        (credit_liability(tenant_id), "EUR"): 5000 - spent,
        (DISPUTE_LOSSES, "EUR"): spent,
        (disputes_held(tenant_id), "EUR"): -5000,
    }
    # What was spent is billed again, and the tenant is suspended until it pays it.
    rebill = (await client.get(f"/v1/invoices/{row['rebill_invoice_id']}", headers=paid.staff.headers)).json()
    assert (rebill["kind"], rebill["status"], rebill["amount_due_minor"]) == ("one_off", "finalized", spent)
    assert await billing_suspended(stack_env, paid.tenant["id"])
    await verified()


# -- commission ------------------------------------------------------------------------------------------------


async def test_a_lost_dispute_claws_back_the_resellers_commission_on_the_invoice(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    reseller, founder = await _qualified_reseller(
        client, factory, staff, {"currency": "EUR", "rate_bps": 1000, "pending_days": 0}
    )
    invoice = await _paid_owned_invoice(client, staff, founder, reseller, stripe_client, "EUR")
    inspector = await connect_as_inspector(stack_env)
    try:
        intent = await inspector.fetchval(
            "select stripe_payment_intent_id from payments where invoice_id = $1 and status = 'succeeded'",
            uuid.UUID(invoice["id"]),
        )
    finally:
        await inspector.close()
    paid = Paid(staff, {"id": invoice["tenant_id"]}, invoice, intent, invoice["amount_due_minor"], "EUR")
    half = paid.amount_minor // 2
    assert (
        await deliver(client, webhook_secret, "evt_c1", "charge.dispute.created", dispute(paid, "dp_c", amount=half))
        == "applied"
    )
    lost = dispute(paid, "dp_c", "lost", amount=half)
    assert await deliver(client, webhook_secret, "evt_c2", "charge.dispute.closed", lost) == "applied"
    assert await deliver(client, webhook_secret, "evt_c3", "charge.dispute.closed", lost) == "ignored"

    report = await service.close_month(_this_month(), now=_after_this_month())
    assert report.closed == 1
    statement = (await _statement(client, founder, reseller, _this_month())).json()
    net = invoice["subtotal_minor"]
    commission = (net * 1000 + 5000) // 10000
    lines = [(line["kind"], line["net_minor"], line["commission_minor"]) for line in statement["lines"]]
    assert lines[0] == ("commission", net, commission)
    [clawback] = lines[1:]  # once, however often `closed` was delivered
    disputed_net = half * invoice["subtotal_minor"] / invoice["total_minor"]
    assert clawback[0] == "clawback" and abs(clawback[1] + disputed_net) <= 1
    assert abs(clawback[2] + commission * disputed_net / net) <= 1
    await verified()


async def test_a_refund_then_a_lost_dispute_of_the_whole_charge_claw_back_at_most_the_commissioned_net(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """Half refunded, then the cardholder disputes the whole charge and wins: the refund clawed back half the
    net and the dispute only what was left of it, so the reseller gives back its commission once, not 1.5
    times."""
    staff = await factory.staff()
    reseller, founder = await _qualified_reseller(
        client, factory, staff, {"currency": "EUR", "rate_bps": 1000, "pending_days": 0}
    )
    invoice = await _paid_owned_invoice(client, staff, founder, reseller, stripe_client, "EUR")
    inspector = await connect_as_inspector(stack_env)
    try:
        intent = await inspector.fetchval(
            "select stripe_payment_intent_id from payments where invoice_id = $1 and status = 'succeeded'",
            uuid.UUID(invoice["id"]),
        )
    finally:
        await inspector.close()
    paid = Paid(staff, {"id": invoice["tenant_id"]}, invoice, intent, invoice["amount_due_minor"], "EUR")
    half = paid.amount_minor // 2
    refunded = await client.post(
        f"/v1/invoices/{invoice['id']}/refunds", json={"amount_minor": half, "reason": "half"}, headers=staff.headers
    )
    assert refunded.status_code == 201, refunded.text
    lost = dispute(paid, "dp_whole", "lost")
    assert await deliver(client, webhook_secret, "evt_whole", "charge.dispute.closed", lost) == "applied"

    report = await service.close_month(_this_month(), now=_after_this_month())
    assert report.closed == 1
    statement = (await _statement(client, founder, reseller, _this_month())).json()
    net = invoice["subtotal_minor"]
    commission = (net * 1000 + 5000) // 10000
    lines = [(line["kind"], line["net_minor"], line["commission_minor"]) for line in statement["lines"]]
    assert lines[0] == ("commission", net, commission)
    clawbacks = lines[1:]
    assert [kind for kind, _, _ in clawbacks] == ["clawback", "clawback"]
    assert sum(line[1] for line in clawbacks) == -net
    assert sum(line[2] for line in clawbacks) >= -commission
    await verified()


# -- an invoice in dispute -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stripe_status", ["needs_response", "lost"])
async def test_an_invoice_with_an_open_or_lost_dispute_is_neither_credited_nor_refunded(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
    stripe_status: str,
) -> None:
    """The disputed money is with the card network (open) or back with the cardholder (lost): a credit note or
    a refund would give it back twice. 409 `invoice_disputed`, nothing written."""
    paid = await _paid(client, factory, stripe_client, stack_env)
    kind = "charge.dispute.created" if stripe_status == "needs_response" else "charge.dispute.closed"
    assert await deliver(client, webhook_secret, "evt_held", kind, dispute(paid, "dp_held", stripe_status)) == "applied"
    url = f"/v1/invoices/{paid.invoice['id']}"
    body = {"amount_minor": 1000, "reason": "goodwill"}
    assert_problem(
        await client.post(f"{url}/credit-notes", json=body, headers=paid.staff.headers), 409, "invoice_disputed"
    )
    assert_problem(await client.post(f"{url}/refunds", json=body, headers=paid.staff.headers), 409, "invoice_disputed")
    shown = (await client.get(url, headers=paid.staff.headers)).json()
    assert shown["credited_minor"] == 0
    assert (await client.get(f"{url}/credit-notes", headers=paid.staff.headers)).json() == []
    await verified()


async def test_a_won_dispute_leaves_the_invoice_creditable_and_refundable(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    paid = await _paid(client, factory, stripe_client, stack_env)
    assert await deliver(client, webhook_secret, "evt_w1", "charge.dispute.created", dispute(paid, "dp_w")) == "applied"
    assert await deliver(client, webhook_secret, "evt_w2", "charge.dispute.closed", dispute(paid, "dp_w", "won"))
    url = f"/v1/invoices/{paid.invoice['id']}"
    body = {"amount_minor": 1000, "reason": "goodwill"}
    assert (await client.post(f"{url}/refunds", json=body, headers=paid.staff.headers)).status_code == 201
    assert (await client.get(url, headers=paid.staff.headers)).json()["credited_minor"] == 1000
    await verified()


# -- lists -----------------------------------------------------------------------------------------------------


async def test_staff_list_every_tenants_disputes_by_status_and_tenants_only_their_own(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    first = await _paid(client, factory, stripe_client, stack_env, staff=staff)
    second = await _paid(client, factory, stripe_client, stack_env, staff=staff)
    third = await _paid(client, factory, stripe_client, stack_env, staff=staff)
    assert await deliver(client, webhook_secret, "e1", "charge.dispute.created", dispute(first, "dp_a")) == "applied"
    assert await deliver(client, webhook_secret, "e2", "charge.dispute.created", dispute(second, "dp_b")) == "applied"
    assert (
        await deliver(client, webhook_secret, "e3", "charge.dispute.closed", dispute(third, "dp_c", "won")) == "applied"
    )

    assert await listed(client, "/v1/disputes", staff.headers) == ["dp_a", "dp_b", "dp_c"]
    assert await listed(client, "/v1/disputes", staff.headers, "open") == ["dp_a", "dp_b"]
    assert await listed(client, "/v1/disputes", staff.headers, "won") == ["dp_c"]
    assert await listed(client, "/v1/disputes", staff.headers, "lost") == []
    [first_open] = (
        await client.get("/v1/disputes", params={"status": "open", "limit": 1}, headers=staff.headers)
    ).json()["items"]
    assert (first_open["tenant_id"], first_open["invoice_id"], first_open["status"]) == (
        first.tenant["id"],
        first.invoice["id"],
        "open",
    )
    assert_problem(await client.get("/v1/disputes", params={"status": "closed"}, headers=staff.headers), 400)

    admin = await factory.member(first.tenant["id"], "tenant_admin")
    assert_problem(await client.get("/v1/disputes", headers=admin.headers), 403)
    assert_problem(await client.get("/v1/disputes"), 401)
    own = f"/v1/tenants/{first.tenant['id']}/disputes"
    assert await listed(client, own, admin.headers, key="id") == [first_open["id"]]
    assert await listed(client, own, admin.headers, "open", key="id") == [first_open["id"]]
    assert await listed(client, own, admin.headers, "won", key="id") == []
    # Another tenant's disputes are not this admin's to read.
    response = await client.get(f"/v1/tenants/{third.tenant['id']}/disputes", headers=admin.headers)
    assert response.status_code in (403, 404), response.text
    [third_won] = await listed(client, "/v1/disputes", staff.headers, "won", key="id")
    assert await listed(client, f"/v1/tenants/{third.tenant['id']}/disputes", staff.headers, key="id") == [third_won]


async def test_a_tenant_reads_its_disputes_without_stripes_fee_or_charge(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """Stripe's fee, what it gave back of it and the charge and dispute ids are the platform's figures: staff
    read them, the tenant's own list shows what was disputed and how it stands."""
    paid = await _paid(client, factory, stripe_client, stack_env)
    obj = dispute(paid, "dp_tenant_view", fee=1500)
    assert await deliver(client, webhook_secret, "evt_tv", "charge.dispute.created", obj) == "applied"
    admin = await factory.member(paid.tenant["id"], "tenant_admin")
    [staff_view] = (await client.get("/v1/disputes", headers=paid.staff.headers)).json()["items"]
    assert (staff_view["fee_minor"], staff_view["charge_id"]) == (1500, "ch_dp_tenant_view")
    for reader in (admin, paid.staff):
        page = await client.get(f"/v1/tenants/{paid.tenant['id']}/disputes", headers=reader.headers)
        assert page.status_code == 200, page.text
        [seen] = page.json()["items"]
        assert set(seen) == {
            "id",
            "invoice_id",
            "amount_minor",
            "currency",
            "reason",
            "status",
            "opened_at",
            "closed_at",
        }
        assert (seen["id"], seen["invoice_id"], seen["amount_minor"], seen["status"]) == (
            staff_view["id"],
            paid.invoice["id"],
            paid.amount_minor,
            "open",
        )


# -- what is ignored -------------------------------------------------------------------------------------------


async def test_a_dispute_on_an_unknown_payment_intent_is_recorded_and_ignored(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    paid = await _paid(client, factory, stripe_client, stack_env)
    stranger = dataclasses.replace(paid, intent="pi_not_ours")
    obj = dispute(stranger, "dp_stranger")
    assert await deliver(client, webhook_secret, "evt_stranger", "charge.dispute.created", obj) == "ignored"
    assert await deliver(client, webhook_secret, "evt_stranger", "charge.dispute.created", obj) == "duplicate"
    inspector = await connect_as_inspector(stack_env)
    try:
        recorded = await inspector.fetchval("select type from stripe_webhook_events where id = 'evt_stranger'")
        stored = await inspector.fetchval("select count(*) from disputes")
    finally:
        await inspector.close()
    assert (recorded, stored) == ("charge.dispute.created", 0)
    await verified()


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("negative", lambda p: dispute(p, "dp_h", amount=-500)),
        ("zero", lambda p: dispute(p, "dp_h", amount=0)),
        ("huge", lambda p: dispute(p, "dp_h", amount=10**30)),
        ("more_than_paid", lambda p: dispute(p, "dp_h", amount=p.stripe_amount + 1)),
        ("unknown_currency", lambda p: dispute(p, "dp_h", currency="xxq")),
        ("other_currency", lambda p: dispute(p, "dp_h", currency="eur")),
        ("string_amount", lambda p: dispute(p, "dp_h", amount="3410")),
        ("id_not_a_string", lambda p: dispute(p, "dp_h", id={"$ne": 1})),
        ("intent_not_a_string", lambda p: dispute(p, "dp_h", payment_intent=[p.intent])),
        ("no_object", lambda p: ["not", "a", "dispute"]),
        ("closed_undecided", lambda p: dispute(p, "dp_h", "under_review")),
    ],
)
async def test_hostile_dispute_events_are_ignored_with_a_log_and_a_count_never_a_500(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    name: str,
    obj: Any,
) -> None:
    paid = await _paid(client, factory, stripe_client, stack_env)
    ignored = metrics.WEBHOOKS_TOTAL.labels(outcome="ignored")
    before = ignored._value.get()
    kind = "charge.dispute.created" if name != "closed_undecided" else "charge.dispute.closed"
    with caplog.at_level(logging.WARNING, logger="controlplane.billing"):
        result = await deliver(client, webhook_secret, f"evt_{name}", kind, obj(paid))
    stored = await dispute_rows(stack_env, paid.invoice["id"])
    if name == "closed_undecided":
        # A `closed` whose status decides nothing still tells of the dispute: recorded open, nothing decided.
        assert result == "applied" and [row["status"] for row in stored] == ["open"]
    else:
        assert result == "ignored" and stored == []
        assert ignored._value.get() == before + 1
    assert any(
        "ignored" in record.getMessage() or "decides nothing" in record.getMessage() for record in caplog.records
    )
    await verified()


async def test_a_dispute_of_a_payment_whose_answer_is_pending_is_refused_unrecorded_so_stripe_sends_it_again(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The collection's answer was lost (its attempt pending, its payment intent unknown here) and the dispute
    comes first: 409 `dispute_payment_pending`, the event left unrecorded (Stripe retries any answer but a
    2xx); once the payment's success is told, Stripe's retry of the same event opens the dispute."""
    staff, tenant, invoice = await _invoice_with_a_pending_attempt(client, factory, settings, stripe_client)
    paid = Paid(staff, tenant, invoice, "pi_answer_lost", invoice["amount_due_minor"], invoice["currency"])
    payload = event("evt_dp_early", "charge.dispute.created", dispute(paid, "dp_early"))
    deferred = metrics.WEBHOOKS_TOTAL.labels(outcome="deferred")
    before = deferred._value.get()
    with caplog.at_level(logging.WARNING, logger="controlplane.billing"):
        for _ in range(2):
            answer = await client.post(URL, content=payload, headers=signed(payload, webhook_secret))
            assert_problem(answer, 409, "dispute_payment_pending")
    assert deferred._value.get() == before + 2
    assert any("dp_early" in r.getMessage() and "sends it again" in r.getMessage() for r in caplog.records)
    assert not await recorded_event(stack_env, "evt_dp_early")
    assert await dispute_rows(stack_env, invoice["id"]) == []
    await verified()

    succeeded = {"id": "pi_answer_lost", "metadata": {"invoice_id": invoice["id"]}}
    assert await deliver(client, webhook_secret, "evt_pi_ok", "payment_intent.succeeded", succeeded) == "applied"
    assert await deliver(client, webhook_secret, "evt_dp_early", "charge.dispute.created", dispute(paid, "dp_early"))
    [row] = await dispute_rows(stack_env, invoice["id"])
    assert (row["status"], row["amount_minor"]) == ("open", invoice["amount_due_minor"])
    assert await recorded_event(stack_env, "evt_dp_early")
    await verified()


async def test_a_dispute_of_a_charge_recorded_as_failed_waits_for_stripes_success(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """A dispute exists only on a charge that took money: when this charge's attempt is recorded as failed, the
    success Stripe will report is still to come, so the dispute is refused unrecorded until it has."""
    staff = await factory.staff()
    code = f"p{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 3100}], currency="USD")
    tenant = await factory.tenant(staff, currency="USD", tax_rate_bps=0)
    await subscribe(client, staff.headers, tenant["id"], code)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, "4000000000000341"))
    declined = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert declined.status_code in (200, 402), declined.text
    # Stripe's decline names its payment intent (localstripe's does not): recorded as Stripe's would be.
    intent = f"pi_declined_{uuid.uuid4().hex[:8]}"
    owner = await connect_as_inspector(stack_env)
    try:
        status = await owner.execute(
            "update payments set stripe_payment_intent_id = $2 where invoice_id = $1 and status = 'failed'",
            uuid.UUID(invoice["id"]),
            intent,
        )
    finally:
        await owner.close()
    assert status == "UPDATE 1"
    paid = Paid(staff, tenant, invoice, intent, invoice["amount_due_minor"], "USD")
    payload = event("evt_dp_failed", "charge.dispute.created", dispute(paid, "dp_failed"))
    assert_problem(await client.post(URL, content=payload, headers=signed(payload, webhook_secret)), 409)
    assert not await recorded_event(stack_env, "evt_dp_failed")

    succeeded = {"id": intent, "metadata": {"invoice_id": invoice["id"]}}
    assert await deliver(client, webhook_secret, "evt_pi_late", "payment_intent.succeeded", succeeded) == "applied"
    assert await deliver(client, webhook_secret, "evt_dp_failed", "charge.dispute.created", dispute(paid, "dp_failed"))
    assert [row["status"] for row in await dispute_rows(stack_env, invoice["id"])] == ["open"]
    await verified()


async def test_a_malformed_event_without_data_is_recorded_and_ignored(
    client: AsyncClient, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    payload = b'{"id": "evt_bare", "object": "event", "type": "charge.dispute.closed"}'
    answer = await client.post(URL, content=payload, headers=signed(payload, webhook_secret))
    assert (answer.status_code, answer.json()["result"]) == (200, "ignored")


# -- ledger verify -------------------------------------------------------------------------------------------


async def test_ledger_verify_finds_a_dispute_whose_journals_disagree_with_it(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    paid = await _paid(client, factory, stripe_client, stack_env)
    tenant_id = uuid.UUID(paid.tenant["id"])
    assert (
        await deliver(client, webhook_secret, "evt_v1", "charge.dispute.created", dispute(paid, "dp_v", fee=1500))
        == "applied"
    )
    assert (
        await deliver(client, webhook_secret, "evt_v2", "charge.dispute.closed", dispute(paid, "dp_v", "won"))
        == "applied"
    )
    await verified()
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    owner = await connect_as_inspector(stack_env)
    try:
        # 1. A balanced but wrong pair added to the opening journal (as the owner: the app role cannot).
        opened = await owner.fetchval(
            "select id from ledger_journals where source_type = 'dispute_opened' and source_id = $1", row["id"]
        )
        async with owner.transaction():
            for account, amount in ((disputes_held(tenant_id), 100), (CASH, -100)):
                await owner.execute(
                    "insert into ledger_postings (tenant_id, journal_id, account, amount_minor, currency) "
                    "values ($1, $2, $3, $4, 'USD')",
                    tenant_id,
                    opened,
                    account,
                    amount,
                )
        report = await service.verify_ledger()
        assert not report.ok
        assert {(d.dispute_id, d.journal, d.account, d.ledger - d.expected) for d in report.dispute_differences} == {
            (row["id"], "dispute_opened", disputes_held(tenant_id), 100),
            (row["id"], "dispute_opened", CASH, -100),
        }
        # As an operator sees it.
        command = _cli(stack_env, "ledger", "verify")
        assert command.returncode == 1, (command.stdout, command.stderr)
        assert "dispute journals disagreeing with disputes: 2" in command.stdout, command.stdout
        assert f"dispute {row['id']} dispute_opened" in command.stderr, command.stderr
        await owner.execute("delete from ledger_postings where journal_id = $1 and abs(amount_minor) = 100", opened)
        await verified()

        # 2. The dispute's row says another amount than its journals booked.
        await owner.execute("alter table disputes disable trigger disputes_forward_only")
        try:
            await owner.execute("update disputes set amount_minor = amount_minor + 1 where id = $1", row["id"])
        finally:
            await owner.execute("alter table disputes enable trigger disputes_forward_only")
        report = await service.verify_ledger()
        assert {(d.journal, d.account) for d in report.dispute_differences} == {
            ("dispute_opened", disputes_held(tenant_id)),
            ("dispute_opened", CASH),
            ("dispute_closed", disputes_held(tenant_id)),
            ("dispute_closed", CASH),
        }
        await owner.execute("alter table disputes disable trigger disputes_forward_only")
        try:
            await owner.execute("update disputes set amount_minor = amount_minor - 1 where id = $1", row["id"])
            # 3. A won dispute without its closing journal.
            await owner.execute("update disputes set status = 'open', closed_at = null where id = $1", row["id"])
        finally:
            await owner.execute("alter table disputes enable trigger disputes_forward_only")
        report = await service.verify_ledger()
        assert {(d.journal, d.expected) for d in report.dispute_differences} == {
            ("dispute_closed", 0)
        }  # the closing journal stands for a dispute that says it is open
    finally:
        await owner.close()


async def test_a_decided_dispute_cannot_move_again_and_no_journal_holds_another_tenants_dispute(
    client: AsyncClient, factory: Factory, stripe_client: Any, webhook_secret: str, stack_env: dict[str, str]
) -> None:
    """Even the owner cannot move a decided dispute or change its figures, nor post to a tenant's
    `disputes_held` account from another tenant's journal."""
    paid = await _paid(client, factory, stripe_client, stack_env)
    assert (
        await deliver(client, webhook_secret, "evt_f", "charge.dispute.closed", dispute(paid, "dp_f", "lost"))
        == "applied"
    )
    [row] = await dispute_rows(stack_env, paid.invoice["id"])
    owner = await connect_as_inspector(stack_env)
    try:
        for change in (
            "update disputes set status = 'won' where id = $1",
            "update disputes set status = 'open', closed_at = null where id = $1",
            "update disputes set amount_minor = 1 where id = $1",
            # A fee is recorded late only while open; the funds, once withdrawn, stay withdrawn.
            "update disputes set fee_minor = 5 where id = $1",
            "update disputes set funds_withdrawn = false where id = $1",
        ):
            with pytest.raises(asyncpg.CheckViolationError):
                await owner.execute(change, row["id"])
        other = await factory.tenant(paid.staff)
        journal = await owner.fetchval(
            "select id from ledger_journals where source_type = 'dispute_opened' and source_id = $1", row["id"]
        )
        with pytest.raises(asyncpg.CheckViolationError):
            await owner.execute(
                "insert into ledger_postings (tenant_id, journal_id, account, amount_minor, currency) "
                "values ($1, $2, $3, 1, 'USD')",
                uuid.UUID(paid.tenant["id"]),
                journal,
                disputes_held(uuid.UUID(other["id"])),
            )
    finally:
        await owner.close()
    await verified()


async def test_a_tenants_admins_are_told_of_a_dispute_and_of_its_loss_once_whatever_the_order(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    webhook_secret: str,
    stack_env: dict[str, str],
) -> None:
    """`invoice.disputed` when opened, `invoice.dispute_closed` (with the outcome) when decided, and the
    suspension told with its reason; a dispute whose `closed` came first is told both, once."""
    staff = await factory.staff()
    in_order = await _paid(client, factory, stripe_client, stack_env, staff=staff, currency="KWD", price=12340)
    closed_first = await _paid(client, factory, stripe_client, stack_env, staff=staff)
    for paid in (in_order, closed_first):
        await factory.member(paid.tenant["id"], "tenant_admin")

    await deliver(client, webhook_secret, "evt_n1", "charge.dispute.created", dispute(in_order, "dp_n1"))
    assert [row["data"]["dispute_id"] for row in await queued("invoice.disputed")] != []
    assert await queued("invoice.dispute_closed") == []
    for repeat in ("evt_n2", "evt_n3"):
        await deliver(client, webhook_secret, repeat, "charge.dispute.closed", dispute(in_order, "dp_n1", "lost"))
    await deliver(client, webhook_secret, "evt_n4", "charge.dispute.closed", dispute(closed_first, "dp_n2", "won"))
    await deliver(client, webhook_secret, "evt_n5", "charge.dispute.created", dispute(closed_first, "dp_n2"))

    disputed = await queued("invoice.disputed")
    closed = await queued("invoice.dispute_closed")
    assert len(disputed) == len(closed) == 2  # one admin per tenant, each told once per event
    by_tenant = {str(row["tenant_id"]): row["data"] for row in closed}
    lost = by_tenant[str(in_order.tenant["id"])]
    assert (lost["status"], lost["amount"], lost["number"]) == (
        "lost",
        display(in_order.amount_minor, "KWD"),
        in_order.invoice["number"],
    )
    assert by_tenant[str(closed_first.tenant["id"])]["status"] == "won"
    [suspended] = await queued("tenant.suspended")
    assert (str(suspended["tenant_id"]), suspended["data"]["reason"]) == (str(in_order.tenant["id"]), "dispute_lost")
