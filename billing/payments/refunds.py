"""Refunds of paid invoices: a Stripe refund, a credit note and the ledger entries, never more than was paid.

Like a collection, the refund row (whose id makes the Stripe idempotency key) is committed before Stripe
is called, and Stripe's answer is recorded after.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.access import tenant_of
from billing.disputes import repository as disputes_repository
from billing.errors import (
    AmountNotChargeable,
    InvalidInvoiceTransition,
    InvalidPaymentMethod,
    InvoiceDisputed,
    InvoiceNotFound,
    RefundExceedsPaid,
    RefundInFlight,
)
from billing.invoices import repository as invoices_repository
from billing.invoices.service import add_credit_note
from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.money import Money, exponent
from billing.payments import repository
from billing.payments.gateway import StripeGateway
from billing.payments.stripe_amounts import require_chargeable
from billing.wallets.application import CREDIT_PURCHASE, credit_refunded, refundable_of_purchase
from billing.wallets.rules import refundable_credit
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.views import view_of
from tenants import audit
from tenants.roles import Permission

log = logging.getLogger("controlplane.billing")


@dataclass(frozen=True, slots=True)
class RefundView:
    """A refund of a paid invoice: pending until Stripe answers, then succeeded (with its credit note) or
    failed."""

    id: uuid.UUID
    invoice_id: uuid.UUID
    payment_id: uuid.UUID
    amount_minor: int
    currency: str
    reason: str
    status: str
    stripe_refund_id: str | None
    created_at: datetime


async def refund_invoice(
    gateway: StripeGateway, actor: Principal, invoice_id: uuid.UUID, amount_minor: int, reason: str
) -> RefundView:
    """A refund whose answer was lost (Stripe unreachable: 503) stays pending; asking for it again sends it
    again with its own key, so Stripe refunds once. Another refund is refused while one is in flight, and any
    while a card dispute of the invoice is open or lost (`InvoiceDisputed`)."""
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.STAFF_ONLY, "POST")
    async with tenant_tx(tenant_id):
        invoice = await invoices_repository.get_invoice(invoice_id, lock="update")
        if invoice is None:
            raise InvoiceNotFound()
        payment = await repository.paid_attempt(invoice_id) if invoice["status"] == "paid" else None
        if payment is None or payment["stripe_payment_intent_id"] is None:
            raise InvalidInvoiceTransition(
                f"a {invoice['status']} invoice has no payment to refund", current_status=invoice["status"]
            )
        if await disputes_repository.holds_invoice(invoice_id):
            # The disputed money is with the card network or back with the cardholder: not refunded twice.
            raise InvoiceDisputed("the invoice cannot be refunded while a card dispute of it is open or lost")
        in_flight = await repository.pending_refunds(invoice_id)
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
    sent = await _send(gateway, actor, tenant_id, invoice, payment["stripe_payment_intent_id"], refund)
    return view_of(RefundView, sent)


async def _send(
    gateway: StripeGateway,
    actor: Principal | None,
    tenant_id: uuid.UUID,
    invoice: dict[str, Any],
    payment_intent_id: str,
    refund: dict[str, Any],
) -> dict[str, Any]:
    """The committed refund to Stripe, with its own key (the same on every resend), then Stripe's answer."""
    try:
        stripe_id = await asyncio.to_thread(
            gateway.refund,
            f"refund:{refund['id']}",
            payment_intent_id,
            refund["amount_minor"],
            refund["currency"],
            {"refund_id": str(refund["id"]), "invoice_id": str(invoice["id"])},
        )
    except (InvalidPaymentMethod, AmountNotChargeable):
        async with tenant_tx(tenant_id):
            await repository.settle_refund(refund["id"], "failed", None)
        raise
    async with tenant_tx(tenant_id):
        settled = await repository.settle_refund(refund["id"], "succeeded", stripe_id)
        if settled is None:  # settled meanwhile (by `charge.refunded`): its record stands
            return await repository.get_refund(refund["id"])
        await _book(actor, tenant_id, invoice, settled)
        return settled


async def resend_lost_refunds(gateway: StripeGateway, older_than: datetime, limit: int = 1_000) -> tuple[int, int]:
    """(settled, failed): refunds still pending since before `older_than` (their answer was lost and nobody
    asked again) are sent again with their own key, each on its own; Stripe replays its first answer."""
    async with system_tx(SystemReason.PLATFORM_JOB):
        lost = await repository.lost_refunds(older_than, limit)
    settled = failed = 0
    for row in lost:
        try:
            async with tenant_tx(row["tenant_id"]):
                invoice = await invoices_repository.get_invoice(row["invoice_id"])
                payment = await repository.get_attempt(row["payment_id"])
            assert invoice is not None and payment["stripe_payment_intent_id"] is not None
            done = await _send(gateway, None, row["tenant_id"], invoice, payment["stripe_payment_intent_id"], row)
            settled += done["status"] == "succeeded"
        except Exception:
            log.exception("resending refund %s failed", row["id"])
            failed += 1
    return settled, failed


async def _new_refund(
    tenant_id: uuid.UUID, invoice: dict[str, Any], payment: dict[str, Any], amount_minor: int, reason: str
) -> dict[str, Any]:
    refundable = min(
        payment["amount_minor"] - await repository.refunded_or_refunding(invoice["id"]),
        invoice["total_minor"] - invoice["credited_minor"],
    )
    if invoice["kind"] == CREDIT_PURCHASE:
        # Only the credit not yet applied (nor expired) goes back: the rest has paid invoices already.
        unapplied = await refundable_of_purchase(invoice["id"])
        refundable = refundable_credit(refundable, unapplied or 0)
    # Refused before anything is written: Stripe sends HUF, KWD, ... only in steps (billing.stripe_amounts).
    require_chargeable(amount_minor, invoice["currency"], exponent(invoice["currency"]))
    if amount_minor > refundable:
        raise RefundExceedsPaid(
            f"at most {Money(max(refundable, 0), invoice['currency']).format()} can be refunded",
            refundable_minor=max(refundable, 0),
        )
    return await repository.insert_refund(
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
    if invoice["kind"] == CREDIT_PURCHASE:
        await credit_refunded(tenant_id, invoice, refund)
    postings = ledger.refund_paid(tenant_id, invoice["currency"], amount)
    await ledger_repository.post(tenant_id, "refund", refund["id"], f"Refund on {invoice['number']}", postings)
    await audit.record(actor, tenant_id, "refund.succeeded", "invoice", invoice["id"], after={"amount_minor": amount})


@dataclass(frozen=True, slots=True)
class StripeRefund:
    """One refund as `charge.refunded` lists it: Stripe's id, the amount in ISO minor units, and our refund's
    id when we made it (the metadata we sent)."""

    id: str
    amount_minor: int
    ours: str | None


async def book_refund_made_at_stripe(
    payment: dict[str, Any], amount_refunded: int, listed: list[StripeRefund] | None
) -> bool:
    """Inside the caller's transaction (a `charge.refunded` webhook), what Stripe says it refunded on the charge.

    When Stripe lists the refunds, each is matched: ours (by the refund id in its metadata) whose answer was
    lost is settled and booked; one we already recorded (by Stripe's id) is known; any other was made outside
    the control plane (Stripe's dashboard) and is booked like ours. Without the list, only the amount tells:
    a pending refund of ours is settled when Stripe refunded at least that much beyond what we have settled,
    then what remains beyond everything we know of (refunds in flight included) is booked as made at Stripe."""
    invoice = await invoices_repository.get_invoice(payment["invoice_id"], lock="update")
    if invoice is None or invoice["status"] != "paid":
        return False
    applied = False
    pending = {str(row["id"]): row for row in await repository.pending_refunds(invoice["id"])}
    if listed:
        for item in listed:
            if item.ours is not None:
                if item.ours in pending:
                    applied |= await _settle_lost(payment, invoice["id"], pending.pop(item.ours), item.id)
            elif not await repository.refund_with_stripe_id(invoice["id"], item.id):
                applied |= await _book_made_at_stripe(payment, invoice["id"], item.amount_minor, item.id)
        return applied
    for row in pending.values():
        if row["amount_minor"] <= amount_refunded - await repository.refunded_minor(invoice["id"]):
            applied |= await _settle_lost(payment, invoice["id"], row, None)
    known = await repository.refunded_or_refunding(invoice["id"])
    applied |= await _book_made_at_stripe(payment, invoice["id"], amount_refunded - known, None)
    return applied


async def _settle_lost(
    payment: dict[str, Any], invoice_id: uuid.UUID, refund: dict[str, Any], stripe_refund_id: str | None
) -> bool:
    """Our refund whose answer was lost, now reported by Stripe: settled and booked once."""
    settled = await repository.settle_refund(refund["id"], "succeeded", stripe_refund_id)
    if settled is None:
        return False
    invoice = await invoices_repository.get_invoice(invoice_id, lock="update")
    assert invoice is not None
    await _book(None, payment["tenant_id"], invoice, settled)
    return True


async def _book_made_at_stripe(
    payment: dict[str, Any], invoice_id: uuid.UUID, amount_minor: int, stripe_refund_id: str | None
) -> bool:
    invoice = await invoices_repository.get_invoice(invoice_id, lock="update")
    assert invoice is not None
    amount = min(amount_minor, invoice["total_minor"] - invoice["credited_minor"])
    if amount <= 0:
        return False
    refund = await repository.insert_refund(
        {
            "tenant_id": payment["tenant_id"],
            "invoice_id": invoice_id,
            "payment_id": payment["id"],
            "amount_minor": amount,
            "currency": invoice["currency"],
            "reason": "Refunded at Stripe",
        }
    )
    settled = await repository.settle_refund(refund["id"], "succeeded", stripe_refund_id)
    assert settled is not None
    await _book(None, payment["tenant_id"], invoice, settled)
    return True
