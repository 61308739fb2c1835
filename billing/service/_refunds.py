"""Refunds of paid invoices: a Stripe refund, a credit note and the ledger entries, never more than was paid.

Like a collection, the refund row (whose id makes the Stripe idempotency key) is committed before Stripe
is called, and Stripe's answer is recorded after.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from billing import ledger, ledger_repository, payments_repository, repository
from billing.errors import InvalidInvoiceTransition, InvoiceNotFound
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
        refundable = min(
            payment["amount_minor"] - await payments_repository.refunded_or_refunding(invoice_id),
            invoice["total_minor"] - invoice["credited_minor"],
        )
        if amount_minor > refundable:
            raise RefundExceedsPaid(
                f"at most {Money(max(refundable, 0), invoice['currency']).format()} can be refunded",
                refundable_minor=max(refundable, 0),
            )
        refund = await payments_repository.insert_refund(
            {
                "tenant_id": tenant_id,
                "invoice_id": invoice_id,
                "payment_id": payment["id"],
                "amount_minor": amount_minor,
                "currency": invoice["currency"],
                "reason": reason,
            }
        )
    try:
        stripe_id = await asyncio.to_thread(
            gateway.refund, f"refund:{refund['id']}", payment["stripe_payment_intent_id"], amount_minor
        )
    except InvalidPaymentMethod:
        async with tenant_tx(tenant_id):
            await payments_repository.settle_refund(refund["id"], "failed", None)
        raise
    async with tenant_tx(tenant_id):
        settled = await payments_repository.settle_refund(refund["id"], "succeeded", stripe_id)
        if settled is None:
            return refund
        await _book(actor, tenant_id, invoice, settled)
        return settled


async def _book(actor: Principal | None, tenant_id: uuid.UUID, invoice: dict[str, Any], refund: dict[str, Any]) -> None:
    """Inside the caller's transaction: the credit note and the journal of a refund Stripe has made."""
    amount = refund["amount_minor"]
    await add_credit_note(actor, tenant_id, invoice["id"], amount, refund["reason"], refund=True)
    postings = ledger.refund_paid(tenant_id, invoice["currency"], amount)
    await ledger_repository.post(tenant_id, "refund", refund["id"], f"Refund on {invoice['number']}", postings)
    await audit.record(actor, tenant_id, "refund.succeeded", "invoice", invoice["id"], after={"amount_minor": amount})


async def book_refund_made_at_stripe(
    payment: dict[str, Any], amount_refunded: int, stripe_refund_id: str | None
) -> bool:
    """Inside the caller's transaction (a `charge.refunded` webhook): a refund made outside the control plane
    (in Stripe's dashboard) is booked like ours, for what Stripe refunded beyond what we know of."""
    invoice = await repository.get_invoice(payment["invoice_id"], lock="update")
    if invoice is None or invoice["status"] != "paid":
        return False
    known = await payments_repository.refunded_or_refunding(invoice["id"])
    amount = min(amount_refunded - known, invoice["total_minor"] - invoice["credited_minor"])
    if amount <= 0:
        return False
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
    settled = await payments_repository.settle_refund(refund["id"], "succeeded", stripe_refund_id)
    assert settled is not None
    await _book(None, payment["tenant_id"], invoice, settled)
    return True
