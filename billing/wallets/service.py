"""Wallets: reading a tenant's credit, topping it up (bought by card, or granted by staff), and expiring it.

A paid top-up is a `credit_purchase` invoice (one untaxed "Prepaid credit" line), finalized and collected at
once with the default card; its lot is written empty with the invoice and filled when the payment succeeds
(`billing.payments.service.record_outcome`). A declined card voids the purchase invoice (nothing is owed:
no credit was delivered; unless another attempt to pay it is open, whose answer then settles it) and answers
402 `top_up_declined`. If Stripe does not answer, the attempt stays
pending and the purchase is resumed by the next top-up of the same amount (same invoice, same Stripe key),
so a retried top-up never charges twice. The collection run (dunning) never takes a credit purchase, so it
is never dunned into a suspension; nor does it earn a reseller commission (the credit earns when it pays).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from billing.errors import GrantStaffOnly, NoPaymentMethod, PaymentInFlight, TopUpDeclined
from billing.invoices import repository as invoices_repository
from billing.invoices import service as invoices_service
from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.money import exponent
from billing.payments import repository as payments_repository
from billing.payments import service as payments_service
from billing.payments.gateway import StripeGateway
from billing.payments.stripe_amounts import require_chargeable
from billing.periods import Period
from billing.rating import Line
from billing.wallets import repository
from billing.wallets.application import CREDIT_PURCHASE, lot_of
from billing.wallets.rules import balance, check_top_up
from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pagination import PageRequest, page_of
from controlplane.core.views import view_of
from tenants import audit
from tenants.service import tenant_terms

log = logging.getLogger("controlplane.billing")
EXPIRY_JOB = "expire_credits"


@dataclass(frozen=True, slots=True)
class CreditTransactionView:
    id: uuid.UUID
    lot_id: uuid.UUID
    kind: str
    amount_minor: int
    currency: str
    invoice_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    refund_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WalletView:
    """The unexpired credit of a tenant in one currency, and a page of its movements (oldest first)."""

    tenant_id: uuid.UUID
    currency: str
    balance_minor: int
    purchased_minor: int
    granted_minor: int
    transactions: list[CreditTransactionView]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class TopUpView:
    """A top-up: its lot (`id`), granted at once or purchased (then `invoice_id` is the paid purchase)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    source: str
    amount_minor: int
    currency: str
    expires_at: datetime | None
    invoice_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    created_at: datetime


async def get_wallet(tenant_id: uuid.UUID, currency: str | None, page: PageRequest) -> WalletView:
    now = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        if currency is None:
            terms = await tenant_terms(tenant_id)
            assert terms is not None  # the route's guard found the tenant
            currency = terms.currency
        exponent(currency)  # an unknown currency is refused (unknown_currency)
        lots = [lot_of(row) for row in await repository.usable_lots(tenant_id, currency, now, lock=False)]
        rows = await repository.list_transactions(tenant_id, currency, page)
    held = balance(lots, now)
    items, cursor = page_of(rows, page)
    return WalletView(
        tenant_id=tenant_id,
        currency=currency,
        balance_minor=held.balance_minor,
        purchased_minor=held.purchased_minor,
        granted_minor=held.granted_minor,
        transactions=[view_of(CreditTransactionView, row) for row in items],
        next_cursor=cursor,
    )


async def top_up(
    gateway: StripeGateway,
    actor: Principal,
    tenant_id: uuid.UUID,
    amount_minor: int,
    paid: bool,
    expires_at: datetime | None,
) -> TopUpView:
    now = datetime.now(UTC)
    check_top_up(amount_minor, expires_at, now)
    if not paid:
        if not actor.is_staff:
            raise GrantStaffOnly()
        return await _grant(actor, tenant_id, amount_minor, expires_at, now)
    invoice_id = await _purchase_invoice(actor, tenant_id, amount_minor, expires_at, now)
    payment = await payments_service.collect_invoice(gateway, tenant_id, invoice_id, actor)
    async with tenant_tx(tenant_id):
        if payment.status != "succeeded":
            await abandon_declined_purchase(actor, tenant_id, invoice_id)
        lot = await repository.lot_of_invoice(invoice_id)
    if payment.status != "succeeded":
        raise TopUpDeclined(decline_code=payment.decline_code, required_actions=["add_payment_method"])
    assert lot is not None
    return view_of(TopUpView, lot)


async def abandon_declined_purchase(actor: Principal | None, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> None:
    """Inside the caller's tenant transaction, after a charge of the credit purchase `invoice_id` was declined (at
    the top-up, or when the collection run resent an attempt whose answer was lost): the purchase is voided, so
    it is never owed. Under the invoice's lock: another request (a top-up resuming this purchase, a manual pay)
    may have opened an attempt meanwhile; voiding now would let it charge the card for a void invoice that funds
    nothing, so the purchase is then left to that attempt's answer."""
    row = await invoices_repository.get_invoice(invoice_id, lock="update")
    assert row is not None
    if (
        row["kind"] == CREDIT_PURCHASE
        and row["status"] == "finalized"
        and await payments_repository.open_attempt(invoice_id) is None
    ):
        await invoices_service.void_locked(actor, tenant_id, row)


async def _grant(
    actor: Principal, tenant_id: uuid.UUID, amount_minor: int, expires_at: datetime | None, now: datetime
) -> TopUpView:
    async with tenant_tx(tenant_id):
        terms = await tenant_terms(tenant_id)
        assert terms is not None
        lot = await repository.insert_lot(
            {
                "tenant_id": tenant_id,
                "currency": terms.currency,
                "source": "granted",
                "amount_minor": amount_minor,
                "remaining_minor": amount_minor,
                "expires_at": expires_at,
                "created_at": now,
            }
        )
        # Granted credit books nothing now: it becomes a promotion expense only as it pays an invoice.
        await repository.insert_transaction(
            {
                "tenant_id": tenant_id,
                "currency": terms.currency,
                "lot_id": lot["id"],
                "kind": "grant",
                "amount_minor": amount_minor,
            }
        )
        await audit.record(
            actor,
            tenant_id,
            "wallet.credit_granted",
            "credit_lot",
            lot["id"],
            after={"amount_minor": amount_minor, "currency": terms.currency, "expires_at": _iso(expires_at)},
        )
    return view_of(TopUpView, lot)


async def _purchase_invoice(
    actor: Principal, tenant_id: uuid.UUID, amount_minor: int, expires_at: datetime | None, now: datetime
) -> uuid.UUID:
    """The purchase invoice to collect: a new one, finalized, with its empty lot; or the purchase of the same
    amount whose payment is still waiting for Stripe's answer (resumed with its own key)."""
    async with tenant_tx(tenant_id):
        await repository.lock_purchases(tenant_id)
        terms = await tenant_terms(tenant_id)
        assert terms is not None
        currency = terms.currency
        waiting = await repository.purchase_in_flight(tenant_id)
        if waiting is not None:
            if waiting["total_minor"] != amount_minor:
                raise PaymentInFlight("a credit purchase of another amount is waiting for Stripe's answer")
            return waiting["id"]
        if await payments_repository.default_payment_method(tenant_id) is None:
            raise NoPaymentMethod(required_actions=["add_payment_method"])
        require_chargeable(amount_minor, currency, exponent(currency))
        amount = Decimal(amount_minor)
        invoice_id = await invoices_service.write_invoice(
            tenant_id=tenant_id,
            subscription_id=None,
            kind="credit_purchase",
            currency=currency,
            period=Period(now, now),
            lines=[Line("Prepaid credit", "one_off", Decimal(1), amount, amount, Period(now, now))],
            now=now,
            with_pending=False,
            taxed=False,
        )
        assert invoice_id is not None  # no cycle boundary: never "already billed"
        row = await invoices_repository.get_invoice(invoice_id, lock="update")
        assert row is not None
        if row["status"] == "draft":  # a tenant with a grace period still pays a purchase at once
            await invoices_service.finalize(tenant_id, invoice_id, now)
        await repository.insert_lot(
            {
                "tenant_id": tenant_id,
                "currency": currency,
                "source": "purchased",
                "amount_minor": amount_minor,
                "remaining_minor": 0,
                "expires_at": expires_at,
                "invoice_id": invoice_id,
                "created_at": now,
            }
        )
        await audit.record(
            actor,
            tenant_id,
            "wallet.credit_purchase_started",
            "invoice",
            invoice_id,
            after={"amount_minor": amount_minor, "currency": currency, "expires_at": _iso(expires_at)},
        )
    return invoice_id


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    expired: int
    failed: int


async def expire_credits(as_of: datetime | None = None, limit: int = 10_000) -> ExpiryReport:
    """Lots past their expiry lose what remains of them (less a refund of them in flight), one lot per
    transaction; a lot that fails is counted and left for the next run (an outage stops the run), the others
    go on. Idempotent: an expired lot has nothing left (but what a pending refund takes), so a rerun finds
    nothing to expire."""
    as_of = as_of or datetime.now(UTC)
    async with system_tx(SystemReason.PLATFORM_JOB):
        due = await repository.expiring_lots(as_of, limit)
    expired = failed = 0
    for row in due:
        try:
            async with tenant_tx(row["tenant_id"]):
                expired += await _expire_lot(row["tenant_id"], row["id"], as_of)
        except Exception as error:
            metrics.stop_batch_on_outage(EXPIRY_JOB, error)
            metrics.batch_item_failed(EXPIRY_JOB, error)
            log.exception("expiring credit lot %s failed", row["id"])
            failed += 1
    return ExpiryReport(expired, failed)


async def _expire_lot(tenant_id: uuid.UUID, lot_id: uuid.UUID, as_of: datetime) -> bool:
    lot = await repository.get_lot(lot_id, lock=True)
    if lot is None or lot["remaining_minor"] <= 0 or lot["expires_at"] is None or lot["expires_at"] > as_of:
        return False
    # A refund of the lot's purchase waiting for Stripe keeps what it takes back: its answer books it (a
    # success takes it from the lot; a failure leaves it here for the next run to expire).
    amount = lot["remaining_minor"] - await repository.pending_refunds_minor(lot["invoice_id"])
    if amount <= 0:
        return False
    await repository.move_lot(lot_id, -amount, expired_at=as_of)
    movement = await repository.insert_transaction(
        {
            "tenant_id": tenant_id,
            "currency": lot["currency"],
            "lot_id": lot_id,
            "kind": "expired",
            "amount_minor": -amount,
            "invoice_id": lot["invoice_id"],
        }
    )
    postings = ledger.credit_expired(tenant_id, lot["currency"], lot["source"], amount)
    await ledger_repository.post(tenant_id, "credit_expiry", movement["id"], "Credit expired", postings)
    await audit.record(None, tenant_id, "wallet.credit_expired", "credit_lot", lot_id, after={"amount_minor": amount})
    return True
