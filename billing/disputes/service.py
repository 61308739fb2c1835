"""Card disputes: Stripe's dispute events applied once, in whatever order they arrive; the lists staff and
tenants read.

A dispute event is applied inside the webhook's transaction (system scope: the event names its tenant only
through the payment it disputes), with the event id recorded in the same transaction. The dispute's row is
unique by Stripe's id and its journals by (kind, dispute), so:

- `created` (or `funds_withdrawn`) records the dispute `open` and books the amount (and Stripe's fee, where the
  object lists it) out of cash into the tenant's `disputes_held` account; a repeat, or one after `closed`,
  finds the row and changes nothing;
- an inquiry (`warning_needs_response`, `warning_under_review`) withdraws nothing: it is recorded `open` with no
  opening journal until an event says the funds were withdrawn (`funds_withdrawn`, or a status that is not a
  warning), and `warning_closed` closes it with no journal at all;
- Stripe's fee first told by a later event of an open dispute (the opening one listed no balance transactions)
  is recorded and booked then, once, in its own `dispute_fee` journal;
- `closed` decides an open dispute once (`won` or `lost`; a later `closed` of another outcome is ignored: the
  first decision stands); arriving first, it records the dispute from its own object and books the opening and
  the closing journals together;
- `updated` and `funds_reinstated` are not applied (recorded and ignored): `closed` carries the decision and
  what Stripe gave back;
- a dispute of a payment not settled here yet is refused unrecorded (`DisputePaymentPending`): Stripe sends it
  again until the payment's success has been applied.

Won: the amount returns to cash, and whatever part of the fee Stripe gave back (its reinstating balance
transaction's negative fee; usually none). Lost: the amount is a `dispute_losses` expense (the invoice stays
paid: its revenue is not reversed), except what a disputed credit purchase's wallet gives back (its credits
leave the lot as a refund's would, off the credit liability); the reseller's commission on the invoice is
clawed back in the disputed proportion (a `refund` commission event, as a credit note's, of at most what credit
notes and refunds left); and when `lost_suspends` (the platform's `DISPUTE_LOST_SUSPENDS`) what is still owed
is billed again (a one-off invoice) and the tenant suspended for non-payment until it is paid, through
`tenants.service` as dunning does. After each change `billing.hooks.dispute_changed` runs in the same
transaction (once, with the final status, when `closed` came first).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NoReturn

from billing import hooks
from billing.commissions import service as _commissions
from billing.disputes import repository
from billing.disputes import rules as disputes
from billing.disputes.rules import DisputeFacts
from billing.errors import DisputePaymentPending, InvalidDisputeEvent
from billing.invoices import repository as invoices_repository
from billing.invoices.rules import OneOffLine, one_off_lines
from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.payments import repository as payments_repository
from billing.periods import Period
from billing.wallets.application import CREDIT_PURCHASE, credit_disputed
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import audit
from tenants.service import suspend_for_non_payment

log = logging.getLogger("controlplane.billing")


@dataclass(frozen=True, slots=True)
class DisputeView:
    """A card dispute of one payment of an invoice: `open` until Stripe decides it, then `won` or `lost`."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    payment_id: uuid.UUID
    stripe_dispute_id: str
    charge_id: str | None
    amount_minor: int
    currency: str
    fee_minor: int
    fee_currency: str
    fee_returned_minor: int
    reason: str
    status: str
    opened_at: datetime
    closed_at: datetime | None
    created_at: datetime


def dispute_view(row: dict[str, Any]) -> DisputeView:
    return view_of(DisputeView, row, currency=row["currency"].strip(), fee_currency=row["fee_currency"].strip())


# -- Stripe's events, inside the webhook's transaction ------------------------------------------------------------


async def apply_stripe_event(event_type: str, obj: Any, *, lost_suspends: bool, now: datetime | None = None) -> bool:
    """Apply one `charge.dispute.*` event; False when it changed nothing (a repeat, a late `created`, an
    unknown payment, a malformed object: each logged with its reason)."""
    if event_type not in disputes.EVENTS:
        return False
    now = now or datetime.now(UTC)
    try:
        facts = disputes.dispute_facts(obj)
        payment = await payments_repository.attempt_by_intent(facts.payment_intent_id)
        if payment is None:
            if await repository.unanswered_attempt_for(facts.currency, facts.amount_minor):
                # Its collection's answer may be the one that was lost: wait for it rather than drop the dispute.
                _defer(facts, "a collection attempt whose answer was lost may be its payment")
            # Not a charge of ours: nothing of ours to book.
            log.warning("dispute %s ignored: no payment has its payment intent", facts.stripe_id)
            return False
        disputes.check_payment(facts, payment["currency"].strip(), payment["amount_minor"])
        if payment["status"] != "succeeded":
            # Only a charge that took money is disputed: Stripe's success for it is still to come.
            _defer(facts, f"its payment is recorded {payment['status']}")
    except InvalidDisputeEvent as invalid:
        log.warning("%s ignored (%s): %s", event_type, invalid.reason, invalid)
        return False
    if facts.notes:
        log.warning("dispute %s: its fee is left out (%s)", facts.stripe_id, ", ".join(facts.notes))
    withdraws = disputes.withdraws(event_type, facts.stripe_status)
    outcome = disputes.outcome_of(facts.stripe_status) if event_type == disputes.CLOSING_EVENT else None
    if event_type == disputes.CLOSING_EVENT and outcome is None:
        log.warning("dispute %s: closed with status %r, which decides nothing", facts.stripe_id, facts.stripe_status)
    # A decided status other than `warning_closed` (won, lost, ...) tells of money taken too: an inquiry whose
    # withdrawal was never told is opened before it is decided.
    dispute, opened = await _open(payment, facts, now, withdrawn=withdraws)
    # What a later event of an open dispute newly tells: Stripe's fee, the funds withdrawn from an inquiry.
    told = False
    if dispute["status"] == "open":
        fee = await _record_fee(dispute, facts)
        dispute = fee or dispute
        withdrawal = await _withdraw(dispute) if withdraws else None
        dispute = withdrawal or dispute
        told = not opened and (fee is not None or withdrawal is not None)
    closed: dict[str, Any] | None = None
    if outcome is not None and disputes.next_status(dispute["status"], outcome) is not None:
        closed = await _close(dispute, facts, outcome, now, lost_suspends=lost_suspends)
    if opened or closed is not None:
        final = closed or dispute
        await hooks.dispute_changed(final["tenant_id"], final["id"], final["status"])
    return opened or told or closed is not None


def _defer(facts: DisputeFacts, why: str) -> NoReturn:
    """Refuse the event unrecorded (the webhook's transaction rolls back), so Stripe sends it again."""
    log.warning("dispute %s deferred: %s; Stripe sends it again", facts.stripe_id, why)
    raise DisputePaymentPending(f"dispute {facts.stripe_id}: {why}")


async def _open(
    payment: dict[str, Any], facts: DisputeFacts, now: datetime, *, withdrawn: bool
) -> tuple[dict[str, Any], bool]:
    """The dispute's row (locked), and whether it was recorded now: with its opening journal (the amount and
    Stripe's fee) when the event says the funds are `withdrawn`; an inquiry is recorded with neither (its fee,
    if any, is booked on its own by `_record_fee`, its opening by `_withdraw`)."""
    tenant_id = payment["tenant_id"]
    row = await repository.insert_dispute(
        {
            "tenant_id": tenant_id,
            "invoice_id": payment["invoice_id"],
            "payment_id": payment["id"],
            "stripe_dispute_id": facts.stripe_id,
            "charge_id": facts.charge_id,
            "amount_minor": facts.amount_minor,
            "currency": facts.currency,
            "fee_minor": facts.fee_minor if withdrawn else 0,
            "fee_currency": facts.fee_currency,
            "reason": facts.reason,
            "opened_at": disputes.opened_at(facts, now),
            "funds_withdrawn": withdrawn,
        }
    )
    if row is None:
        known = await repository.dispute_by_stripe_id(facts.stripe_id)
        assert known is not None  # unique, never deleted
        return known, False
    if withdrawn:
        await _book_opening(row)
    await audit.record(
        None,
        tenant_id,
        "dispute.opened",
        "invoice",
        row["invoice_id"],
        after={"dispute_id": str(row["id"]), "amount_minor": row["amount_minor"], "reason": row["reason"]},
    )
    return row, True


async def _book_opening(dispute: dict[str, Any]) -> None:
    """The amount (and the fee recorded with it) out of cash into the tenant's disputes held."""
    tenant_id = dispute["tenant_id"]
    postings = ledger.dispute_opened(
        tenant_id,
        dispute["currency"].strip(),
        dispute["amount_minor"],
        dispute["fee_currency"].strip(),
        dispute["fee_minor"],
    )
    await ledger_repository.post(
        tenant_id, "dispute_opened", dispute["id"], f"Card dispute {dispute['stripe_dispute_id']} opened", postings
    )


async def _record_fee(dispute: dict[str, Any], facts: DisputeFacts) -> dict[str, Any] | None:
    """Stripe's fee told by this event and not recorded yet (the opening event listed none, or the dispute is an
    inquiry): recorded and booked once, in its own `dispute_fee` journal; the row after, or None."""
    if dispute["fee_minor"] or not facts.fee_minor:
        return None
    row = await repository.record_fee(dispute["id"], facts.fee_minor, facts.fee_currency)
    if row is None:
        return None
    postings = ledger.dispute_fee_charged(facts.fee_currency, facts.fee_minor)
    await ledger_repository.post(
        row["tenant_id"], "dispute_fee", row["id"], f"Card dispute {row['stripe_dispute_id']} fee", postings
    )
    return row


async def _withdraw(dispute: dict[str, Any]) -> dict[str, Any] | None:
    """An inquiry became a dispute (Stripe withdrew the funds): its opening is booked now, without the fee
    (`_record_fee` books that on its own); the row after, or None when its funds were withdrawn already."""
    if dispute["funds_withdrawn"]:
        return None
    row = await repository.record_withdrawal(dispute["id"])
    if row is None:
        return None
    await _book_opening({**row, "fee_minor": 0})
    return row


async def _close(
    dispute: dict[str, Any], facts: DisputeFacts, outcome: disputes.Outcome, now: datetime, *, lost_suspends: bool
) -> dict[str, Any]:
    tenant_id = dispute["tenant_id"]
    currency, fee_currency = dispute["currency"].strip(), dispute["fee_currency"].strip()
    # Only the fee booked can be given back, in the currency it was booked in.
    returned = min(facts.fee_returned_minor, dispute["fee_minor"]) if facts.fee_currency == fee_currency else 0
    returned = returned if outcome == "won" and dispute["funds_withdrawn"] else 0
    invoice = None
    taken = 0
    rebill: uuid.UUID | None = None
    if outcome == "lost":
        invoice = await invoices_repository.get_invoice(dispute["invoice_id"], lock="update")
        assert invoice is not None  # a payment's invoice is never deleted
        if invoice["kind"] == CREDIT_PURCHASE:
            # The money went back to the card, so what is left of the credits it bought goes back as a refund
            # of it would take it; what was spent stays spent (that part is the loss).
            taken = await credit_disputed(tenant_id, invoice, dispute)
        owed = dispute["amount_minor"] - taken
        if lost_suspends and owed > 0:
            rebill = await _rebill(dispute, invoice, owed, now)
    closed = await repository.close_dispute(dispute["id"], outcome, returned, taken, rebill, now)
    # The row is this transaction's (inserted, or read FOR UPDATE) and open: it closes here, once.
    assert closed is not None
    if not dispute["funds_withdrawn"]:
        # An inquiry closed (`warning_closed`): nothing was withdrawn, nothing comes back.
        postings = []
    elif outcome == "won":
        postings = ledger.dispute_won(tenant_id, currency, dispute["amount_minor"], fee_currency, returned)
    else:
        postings = ledger.dispute_lost(tenant_id, currency, dispute["amount_minor"], taken)
    if postings:
        await ledger_repository.post(
            tenant_id,
            "dispute_closed",
            dispute["id"],
            f"Card dispute {dispute['stripe_dispute_id']} {outcome}",
            postings,
        )
    await audit.record(
        None,
        tenant_id,
        f"dispute.{outcome}",
        "invoice",
        dispute["invoice_id"],
        before={"status": dispute["status"]},
        after={"dispute_id": str(dispute["id"]), "status": outcome, "credits_taken_minor": taken},
    )
    if invoice is not None:
        await _lost(closed, invoice, now, lost_suspends=lost_suspends)
    return closed


async def _rebill(dispute: dict[str, Any], invoice: dict[str, Any], amount_minor: int, now: datetime) -> uuid.UUID:
    """The lost amount billed again: a one-off invoice, finalized now (the wallet's credits apply, then it is
    collected and dunned like any one-off). Untaxed: the disputed charge's tax was booked and is not reversed."""
    # Imported here: billing.invoices.service imports this module (an invoice shows its disputes).
    from billing.invoices.service import write_invoice

    moment = Period(now, now)
    description = f"Disputed payment of invoice {invoice['number']}"
    invoice_id = await write_invoice(
        tenant_id=dispute["tenant_id"],
        subscription_id=None,
        kind="one_off",
        currency=dispute["currency"].strip(),
        period=moment,
        lines=one_off_lines([OneOffLine(description, 1, amount_minor)], moment),
        now=now,
        finalization="now",
        taxed=False,
    )
    assert invoice_id is not None  # only a subscription's boundary is written once
    return invoice_id


async def _lost(dispute: dict[str, Any], invoice: dict[str, Any], now: datetime, *, lost_suspends: bool) -> None:
    """The reseller gives back its commission on the disputed part (the credit-note clawback, keyed by the
    dispute); when the platform says so, the tenant is suspended as for non-payment until it pays the rebilled
    amount (`_reactivate_if_settled` waits for it), unless the wallet paid that already or nothing is owed."""
    # Never more than what no credit note or refund took back yet: the cardholder may dispute the whole charge
    # after a partial refund, and the reseller gives back its commission at most once.
    clawed = min(dispute["amount_minor"], invoice["total_minor"] - invoice["credited_minor"])
    if clawed > 0:
        await _commissions.invoice_credited(dispute["tenant_id"], invoice, dispute["id"], clawed, now)
    if not lost_suspends or dispute["rebill_invoice_id"] is None:
        return
    rebill = await invoices_repository.get_invoice(dispute["rebill_invoice_id"])
    if rebill is not None and rebill["status"] != "paid":
        # The tenants domain owns the status: billing asks for the suspension.
        await suspend_for_non_payment(dispute["tenant_id"], dispute["invoice_id"], now, reason="dispute_lost")


# -- reads ------------------------------------------------------------------------------------------------------


async def list_disputes(status: str | None, page: PageRequest) -> Page[DisputeView]:
    """Staff: every tenant's disputes (of one status), oldest first."""
    async with system_tx(SystemReason.STAFF_VIEW):
        return page_of_views(await repository.list_disputes(None, status, page), page, dispute_view)


async def list_tenant_disputes(tenant_id: uuid.UUID, status: str | None, page: PageRequest) -> Page[DisputeView]:
    async with tenant_tx(tenant_id):
        return page_of_views(await repository.list_disputes(tenant_id, status, page), page, dispute_view)


async def disputes_of_invoices(invoice_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[DisputeView, ...]]:
    """Inside the caller's transaction: each invoice's disputes, oldest first."""
    found = await repository.disputes_of_invoices(invoice_ids) if invoice_ids else {}
    return {invoice_id: tuple(dispute_view(row) for row in rows) for invoice_id, rows in found.items()}
