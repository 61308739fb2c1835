"""Refunds of paid invoices: a Stripe refund, a credit note and the ledger entries, never more than was paid.

Like a collection, the refund row (whose id makes the Stripe idempotency key) is committed before Stripe
is called, and Stripe's answer is recorded after.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from billing import ledger, ledger_repository, payments_repository, repository
from billing.errors import AmountNotChargeable, InvalidInvoiceTransition, InvoiceNotFound, RefundInFlight
from billing.money import Money
from billing.payments_gateway import InvalidPaymentMethod, StripeGateway
from billing.service._access import tenant_of
from billing.service._invoices import add_credit_note
from controlplane.auth.principal import Principal
from controlplane.db import tenant_tx
from controlplane.exceptions import Conflict
from tenants import audit
from tenants.roles import Permission


class RefundExceedsPaid(Conflict):
    code = "refund_exceeds_paid"
    title = "The refund is more than what was paid and not yet refunded"


async def refund_invoice(
    gateway: StripeGateway, actor: Principal, invoice_id: uuid.UUID, amount_minor: int, reason: str
) -> dict[str, Any]:
    """A refund whose answer was lost (Stripe unreachable: 503) stays pending; asking for it again sends it
    again with its own key, so Stripe refunds once. Another refund is refused while one is in flight."""
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.STAFF_ONLY, "POST")
    async with tenant_tx(tenant_id):
        invoice = await repository.get_invoice(invoice_id, lock="update")
        if invoice is None:
            raise InvoiceNotFound()
        payment = await payments_repository.paid_attempt(invoice_id) if invoice["status"] == "paid" else None
        if payment is None or payment["stripe_payment_intent_id"] is None:
            raise InvalidInvoiceTransition(
                f"a {invoice['status']} invoice has no payment to refund", current_status=invoice["status"]
            )
        in_flight = await payments_repository.pending_refunds(invoice_id)
        if in_flight:
            refund = in_flight[0]
            if (refund["amount_minor"], refund["reason"]) != (amount_minor, reason):
                raise RefundInFlight(
                    f"a refund of {Money(refund['amount_minor'], refund['currency']).format()} is waiting for "
                    "Stripe's answer: send it again, or wait for it to settle",
                    refund_id=str(refund["id"]),
                )
        else:
            refund = await _new_refund(tenant_id, invoice, payment, amount_minor, reason)
    try:
        stripe_id = await asyncio.to_thread(
            gateway.refund,
            f"refund:{refund['id']}",
            payment["stripe_payment_intent_id"],
            refund["amount_minor"],
            {"refund_id": str(refund["id"]), "invoice_id": str(invoice_id)},
            refund["currency"],
        )
    except (InvalidPaymentMethod, AmountNotChargeable):
        async with tenant_tx(tenant_id):
            await payments_repository.settle_refund(refund["id"], "failed", None)
        raise
    async with tenant_tx(tenant_id):
        settled = await payments_repository.settle_refund(refund["id"], "succeeded", stripe_id)
        if settled is None:  # settled meanwhile (by `charge.refunded`): its record stands
            return await payments_repository.get_refund(refund["id"])
        await _book(actor, tenant_id, invoice, settled)
        return settled


async def _new_refund(
    tenant_id: uuid.UUID, invoice: dict[str, Any], payment: dict[str, Any], amount_minor: int, reason: str
) -> dict[str, Any]:
    refundable = min(
        payment["amount_minor"] - await payments_repository.refunded_or_refunding(invoice["id"]),
        invoice["total_minor"] - invoice["credited_minor"],
    )
    if amount_minor > refundable:
        raise RefundExceedsPaid(
            f"at most {Money(max(refundable, 0), invoice['currency']).format()} can be refunded",
            refundable_minor=max(refundable, 0),
        )
    return await payments_repository.insert_refund(
        {
            "tenant_id": tenant_id,
            "invoice_id": invoice["id"],
            "payment_id": payment["id"],
            "amount_minor": amount_minor,
            "currency": invoice["currency"],
            "reason": reason,
        }
    )


async def _book(actor: Principal | None, tenant_id: uuid.UUID, invoice: dict[str, Any], refund: dict[str, Any]) -> None:
    """Inside the caller's transaction: the credit note and the journal of a refund Stripe has made."""
    amount = refund["amount_minor"]
    await add_credit_note(actor, tenant_id, invoice["id"], amount, refund["reason"], refund=True)
    postings = ledger.refund_paid(tenant_id, invoice["currency"], amount)
    await ledger_repository.post(tenant_id, "refund", refund["id"], f"Refund on {invoice['number']}", postings)
    await audit.record(actor, tenant_id, "refund.succeeded", "invoice", invoice["id"], after={"amount_minor": amount})


async def book_refund_made_at_stripe(
    payment: dict[str, Any], amount_refunded: int, refunds: list[dict[str, Any]]
) -> bool:
    """Inside the caller's transaction (a `charge.refunded` webhook), what Stripe says it refunded on the charge.

    First our own refunds whose answer was lost (still pending): matched by the refund id they carry in their
    metadata, or, when Stripe's list does not show them, by an amount Stripe refunded beyond what we have
    settled; each is settled and booked once. Then a refund made outside the control plane (in Stripe's
    dashboard) is booked like ours, for what Stripe refunded beyond everything we know of (refunds still in
    flight included, so one that completes later is not booked twice)."""
    invoice = await repository.get_invoice(payment["invoice_id"], lock="update")
    if invoice is None or invoice["status"] != "paid":
        return False
    applied = False
    listed = {
        str((item.get("metadata") or {}).get("refund_id")): item
        for item in refunds
        if (item.get("metadata") or {}).get("refund_id") and item.get("status", "succeeded") == "succeeded"
    }
    for pending in await payments_repository.pending_refunds(invoice["id"]):
        item = listed.get(str(pending["id"]))
        unexplained = amount_refunded - await payments_repository.refunded_minor(invoice["id"])
        if item is None and pending["amount_minor"] > unexplained:
            continue
        settled = await payments_repository.settle_refund(pending["id"], "succeeded", item["id"] if item else None)
        if settled is not None:
            await _book(None, payment["tenant_id"], invoice, settled)
            invoice = await repository.get_invoice(invoice["id"], lock="update")
            assert invoice is not None
            applied = True
    known = await payments_repository.refunded_or_refunding(invoice["id"])
    amount = min(amount_refunded - known, invoice["total_minor"] - invoice["credited_minor"])
    if amount <= 0:
        return applied
    others = [item for item in refunds if not (item.get("metadata") or {}).get("refund_id")]
    refund = await payments_repository.insert_refund(
        {
            "tenant_id": payment["tenant_id"],
            "invoice_id": invoice["id"],
            "payment_id": payment["id"],
            "amount_minor": amount,
            "currency": invoice["currency"],
            "reason": "Refunded at Stripe",
        }
    )
    settled = await payments_repository.settle_refund(refund["id"], "succeeded", others[0]["id"] if others else None)
    assert settled is not None
    await _book(None, payment["tenant_id"], invoice, settled)
    return True
