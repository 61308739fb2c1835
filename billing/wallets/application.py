"""The wallet's seam with invoices and payments: credits applied to an invoice as it is finalized, given back
when it is voided, a credit purchase's lot funded when its payment succeeds, and reduced when it is refunded.

Every call runs inside the caller's tenant transaction (the invoice's or the payment's), so the credit moves
with the change that causes it, or not at all. This module must not import `billing.invoices.service` (which
imports it).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.money import exponent
from billing.payments.stripe_amounts import chargeable_step, minimum_charge
from billing.wallets import repository
from billing.wallets.rules import Draw, Lot, credits_to_apply, funded_expiry
from tenants import audit

CREDIT_PURCHASE = "credit_purchase"


def lot_of(row: dict[str, Any]) -> Lot:
    """A lot as the rules see it: what it can still pay (less a refund of it in flight)."""
    available = max(row.get("available_minor", row["remaining_minor"]), 0)
    return Lot(row["id"], row["source"], available, row["created_at"], row["expires_at"])


async def apply_credits(tenant_id: uuid.UUID, invoice: dict[str, Any], now: datetime | None = None) -> int:
    """Inside the caller's tenant transaction, the invoice just finalized: the credits applied to it (minor
    units, at most its amount due), journaled. A credit purchase is never paid with credit."""
    if invoice["kind"] == CREDIT_PURCHASE or invoice["amount_due_minor"] <= 0:
        return 0
    now = now or datetime.now(UTC)
    currency = invoice["currency"]
    # Locked in one order: a concurrent finalization of the same tenant waits here, then sees what is left.
    rows = await repository.usable_lots(tenant_id, currency, now, lock=True)
    if not rows:
        return 0
    draws = _draws(rows, invoice["amount_due_minor"], currency, now)
    for item in draws:
        await repository.move_lot(item.lot_id, -item.amount_minor)
        await repository.insert_transaction(
            {
                "tenant_id": tenant_id,
                "currency": currency,
                "lot_id": item.lot_id,
                "kind": "applied",
                "amount_minor": -item.amount_minor,
                "invoice_id": invoice["id"],
            }
        )
    purchased = sum((item.amount_minor for item in draws if item.source == "purchased"), 0)
    granted = sum((item.amount_minor for item in draws if item.source == "granted"), 0)
    if purchased + granted:
        # Booked under the invoice (billing.ledger.repository.invoice_postings), so a void reverses it too.
        await ledger_repository.post(
            tenant_id,
            "credits_applied",
            invoice["id"],
            f"Credits applied to invoice {invoice['number']}",
            ledger.credits_applied(tenant_id, currency, purchased, granted),
        )
        await audit.record(
            None,
            tenant_id,
            "wallet.credits_applied",
            "invoice",
            invoice["id"],
            after={"purchased_minor": purchased, "granted_minor": granted, "currency": currency},
        )
    return purchased + granted


def _draws(rows: list[dict[str, Any]], due_minor: int, currency: str, now: datetime) -> list[Draw]:
    step, minimum = chargeable_step(currency, exponent(currency)), minimum_charge(currency, exponent(currency))
    return credits_to_apply([lot_of(row) for row in rows], due_minor, step, now, minimum)


async def credits_for(tenant_id: uuid.UUID, currency: str, due_minor: int, at: datetime) -> int:
    """Inside the caller's tenant transaction: the credits `apply_credits` would take from the wallet as it is
    now for an invoice with `due_minor` due, finalized at `at` (lots expired by then pay nothing). A preview:
    nothing is locked or moved."""
    if due_minor <= 0:
        return 0
    rows = await repository.usable_lots(tenant_id, currency, at, lock=False)
    return sum((item.amount_minor for item in _draws(rows, due_minor, currency, at)), 0)


async def restore_credits(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> int:
    """Inside the caller's tenant transaction, the invoice being voided (locked): what its credits still
    have applied (less what a cancellation gave back already) goes back to the same lots (a `restored`
    transaction each). The ledger side is the void's reversal of the invoice's journals, which include
    `credits_applied` and any `credits_restored`. A lot past its expiry gets its credit back and the next
    expiry run expires it (journaled then)."""
    restored = 0
    for row in await _locked_applied(invoice_id):
        await _restore(tenant_id, invoice_id, row, -row["amount_minor"])
        restored -= row["amount_minor"]
    return restored


async def give_back_credits(tenant_id: uuid.UUID, invoice: dict[str, Any], amount_minor: int) -> dict[str, int]:
    """Inside the caller's tenant transaction, the finalized or paid invoice locked: `amount_minor` of what
    the wallet paid on it goes back to the wallet (a cancellation's unused time), at most what is still
    applied. Last applied, first back: the lots get it in the reverse of the order the finalization drew them
    (purchased credit, drawn after granted, comes back first). Journaled as `credits_restored` under the
    invoice (the reverse of `credits_applied` for the part given back, so a later void reverses only the
    rest). Returns {"purchased": ..., "granted": ...} given back; the caller lowers the invoice's
    `credits_applied_minor` by their sum."""
    rows = await _locked_applied(invoice["id"])
    left = min(amount_minor, -sum(row["amount_minor"] for row in rows))
    given = {"purchased": 0, "granted": 0}
    restored_ids: list[uuid.UUID] = []
    for row in sorted(rows, key=lambda row: row["applied_at"], reverse=True):
        amount = min(left, -row["amount_minor"])
        if amount <= 0:
            break
        restored_ids.append(await _restore(tenant_id, invoice["id"], row, amount))
        given[row["source"]] += amount
        left -= amount
    if restored_ids:
        # One journal per give-back, keyed by its first `restored` movement (billing.ledger.repository
        # .invoice_postings finds it through the invoice's movements).
        await ledger_repository.post(
            tenant_id,
            "credits_restored",
            restored_ids[0],
            f"Credits given back from invoice {invoice['number']}",
            ledger.credits_restored(tenant_id, invoice["currency"], given["purchased"], given["granted"]),
        )
        await audit.record(
            None,
            tenant_id,
            "wallet.credits_restored",
            "invoice",
            invoice["id"],
            after={
                "purchased_minor": given["purchased"],
                "granted_minor": given["granted"],
                "currency": invoice["currency"],
            },
        )
    return given


async def _locked_applied(invoice_id: uuid.UUID) -> list[dict[str, Any]]:
    """What each lot still has applied to the invoice, read again once the lots are locked (in their lock
    order), so a restore never gives back more than is net applied."""
    for row in await repository.applied_to(invoice_id):
        await repository.get_lot(row["lot_id"], lock=True)
    return await repository.applied_to(invoice_id)


async def _restore(tenant_id: uuid.UUID, invoice_id: uuid.UUID, row: dict[str, Any], amount: int) -> uuid.UUID:
    await repository.move_lot(row["lot_id"], amount)
    written = await repository.insert_transaction(
        {
            "tenant_id": tenant_id,
            "currency": row["currency"],
            "lot_id": row["lot_id"],
            "kind": "restored",
            "amount_minor": amount,
            "invoice_id": invoice_id,
        }
    )
    return uuid.UUID(str(written["id"]))


async def fund_purchase(
    tenant_id: uuid.UUID, invoice: dict[str, Any], payment: dict[str, Any], now: datetime | None = None
) -> None:
    """Inside the payment's transaction: a `credit_purchase` invoice became paid, so its credit is available
    now. Its lot was written empty with the top-up (keeping the expiry asked for); it is filled once.

    Validity restarts at a late funding: a payment whose answer came after the lot's expiry (Stripe did not
    answer, the purchase was resumed later) would fund credit already expired, sent straight to breakage by
    the next expiry run. Such a lot gets the validity the tenant asked for (its expiry less its creation)
    from the funding instead; a lot funded before its expiry keeps it."""
    lot = await repository.lot_of_invoice(invoice["id"], lock=True)
    if lot is None or lot["payment_id"] is not None:
        return
    now = now or datetime.now(UTC)
    expires_at = lot["expires_at"] and funded_expiry(lot["created_at"], lot["expires_at"], now)
    if expires_at != lot["expires_at"]:
        await audit.record(
            None,
            tenant_id,
            "wallet.credit_expiry_moved",
            "credit_lot",
            lot["id"],
            before={"expires_at": lot["expires_at"].isoformat()},
            after={"expires_at": expires_at.isoformat(), "reason": "funded after its expiry"},
        )
    await repository.fund_lot(lot["id"], payment["id"], expires_at)
    await repository.insert_transaction(
        {
            "tenant_id": tenant_id,
            "currency": lot["currency"],
            "lot_id": lot["id"],
            "kind": "top_up",
            "amount_minor": lot["amount_minor"],
            "invoice_id": invoice["id"],
            "payment_id": payment["id"],
        }
    )


async def refundable_of_purchase(invoice_id: uuid.UUID) -> int | None:
    """Inside the caller's transaction, the invoice locked: how much of a credit purchase is still unapplied
    (its lot locked till commit); None for an invoice that funded no lot."""
    lot = await repository.lot_of_invoice(invoice_id, lock=True)
    return None if lot is None else lot["remaining_minor"]


async def credit_refunded(tenant_id: uuid.UUID, invoice: dict[str, Any], refund: dict[str, Any]) -> None:
    """Inside the refund's transaction: a refund of a credit purchase takes its amount out of the lot (at most
    what is left of it; the ledger check reports a refund made at Stripe beyond the unapplied credit)."""
    await _take_back(tenant_id, invoice, refund["amount_minor"], kind="refunded", refund_id=refund["id"])


async def credit_disputed(tenant_id: uuid.UUID, invoice: dict[str, Any], dispute: dict[str, Any]) -> int:
    """Inside the dispute's transaction, the purchase invoice locked: a lost dispute of a credit purchase takes
    its amount out of the lot as a refund of it would (at most what is left: what was spent stays spent).
    Returns what it took (the caller books it off the credit liability)."""
    return await _take_back(tenant_id, invoice, dispute["amount_minor"], kind="disputed", dispute_id=dispute["id"])


async def _take_back(
    tenant_id: uuid.UUID,
    invoice: dict[str, Any],
    amount_minor: int,
    *,
    kind: str,
    refund_id: uuid.UUID | None = None,
    dispute_id: uuid.UUID | None = None,
) -> int:
    """A purchase's money went back to the card: at most that much of what is left of its lot leaves it."""
    lot = await repository.lot_of_invoice(invoice["id"], lock=True)
    if lot is None:
        return 0
    amount = min(amount_minor, lot["remaining_minor"])
    if amount <= 0:
        return 0
    await repository.move_lot(lot["id"], -amount)
    await repository.insert_transaction(
        {
            "tenant_id": tenant_id,
            "currency": lot["currency"],
            "lot_id": lot["id"],
            "kind": kind,
            "amount_minor": -amount,
            "invoice_id": invoice["id"],
            "refund_id": refund_id,
            "dispute_id": dispute_id,
        }
    )
    return amount
