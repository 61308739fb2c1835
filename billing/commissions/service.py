"""Reseller commissions: events captured where invoices are paid or credited, a month close that turns them
into lines, statements and ledger journals, and what resellers read of it.

Lines are computed at month close, not at payment, because a volume tier depends on the whole month's revenue
(see `billing.commissions`); the events they come from are recorded in the transaction of the payment or
credit note itself, so nothing paid is missed and nothing is counted twice (`unique (kind, source_id)`).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from billing.commissions import repository
from billing.commissions import rules as commissions
from billing.commissions.rules import Agreement, CommissionLine, Earned, LineKind, PaidInvoice, Refund, Tier
from billing.errors import (
    AgreementNotFound,
    CurrencyMismatch,
    EarlierMonthNotClosed,
    InvalidMonth,
    InvalidPaymentMethod,
    LaterMonthClosed,
    MonthNotOver,
    PaymentProviderUnavailable,
    PayoutPayeeUnknown,
    StatementNotFound,
)
from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.money import Money, allocate, exponent
from billing.notices import service as notices
from billing.payments.gateway import StripeGateway
from billing.payments.stripe_amounts import chargeable_step, payable_in_steps
from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, partner_tx, system_tx
from controlplane.core.views import view_of
from tenants import audit
from tenants.service import ensure_partner_access, tenant_terms

COMMISSION_EXPENSE = "commission_expense"
log = logging.getLogger("billing.commissions")


def reseller_payable(reseller_id: uuid.UUID) -> str:
    return f"reseller_payable:{reseller_id}"


# -- what the use cases take and give ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgreementTerms:
    """What staff set for a reseller: its base rate, volume tiers, duration (None: lifetime), pending period and
    minimum payout."""

    currency: str
    rate_bps: int
    tiers: tuple[Tier, ...] = ()
    duration_months: int | None = None
    pending_days: int = 30
    minimum_payout_minor: int = 0


@dataclass(frozen=True, slots=True)
class AgreementView:
    """A reseller's commission agreement as stored."""

    reseller_id: uuid.UUID
    currency: str
    rate_bps: int
    tiers: tuple[Tier, ...]
    duration_months: int | None
    pending_days: int
    minimum_payout_minor: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CommissionLineView:
    """One line of a statement: a commission on an owned tenant's paid invoice, or a clawback of one."""

    owned_tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    invoice_number: str
    kind: LineKind
    net_minor: int
    rate_bps: int
    commission_minor: int
    currency: str
    accrued_at: datetime
    payable_at: datetime


@dataclass(frozen=True, slots=True)
class SkippedEventView:
    """An owned tenant's invoice the month close left out, and why (e.g. `currency_mismatch`)."""

    invoice_id: uuid.UUID
    invoice_number: str
    currency: str
    net_minor: int
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class StatementView:
    """A reseller's statement of one month. `lines` and `skipped` are read with one statement (`get_statement`);
    a list of statements leaves them empty."""

    id: uuid.UUID
    reseller_id: uuid.UUID
    month: date
    currency: str
    carried_in_minor: int
    total_minor: int
    payable_minor: int
    carried_out_minor: int
    closed_at: datetime
    lines: tuple[CommissionLineView, ...] = ()
    skipped: tuple[SkippedEventView, ...] = ()


@dataclass(frozen=True, slots=True)
class PayoutView:
    """Money owed to a partner, sent (or held) as a Connect transfer: from a statement or escrow releases."""

    id: uuid.UUID
    partner_id: uuid.UUID
    source: str
    statement_id: uuid.UUID | None
    amount_minor: int
    currency: str
    destination: str | None
    status: str
    attempts: int
    stripe_transfer_id: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


def _agreement_view(row: dict[str, Any]) -> AgreementView:
    tiers = tuple(Tier(tier["from_minor"], tier["rate_bps"]) for tier in row["tiers"])
    return view_of(AgreementView, row, tiers=tiers)


def _line_view(row: dict[str, Any]) -> CommissionLineView:
    return view_of(CommissionLineView, row, kind=LineKind(row["kind"]))


# -- capture, inside the paying or crediting transaction ---------------------------------------------------


async def invoice_paid(tenant_id: uuid.UUID, invoice: dict[str, Any], now: datetime) -> None:
    """An owned tenant's invoice was paid: record what its reseller earns on, if it may earn now."""
    tenant = await tenant_terms(tenant_id)
    if tenant is None or tenant.reseller_id is None:
        return
    if not await repository.reseller_may_earn(tenant.reseller_id):
        await audit.record(
            None,
            tenant_id,
            "commission.not_accrued",
            "invoice",
            invoice["id"],
            after={"reason": "reseller_unqualified"},
        )
        return
    credited_net = (
        allocate(invoice["credited_minor"], [invoice["subtotal_minor"], invoice["tax_minor"]])[0]
        if invoice["credited_minor"]
        else 0
    )
    net = invoice["subtotal_minor"] - credited_net
    if net <= 0:
        return
    await repository.insert_event(
        {
            "tenant_id": tenant_id,
            "reseller_id": tenant.reseller_id,
            "kind": "paid",
            "source_id": invoice["id"],
            "invoice_id": invoice["id"],
            "invoice_number": invoice["number"],
            "currency": invoice["currency"],
            "net_minor": net,
            "owned_since": tenant.reseller_since or tenant.created_at,
            "occurred_at": now,
        }
    )


async def invoice_credited(
    tenant_id: uuid.UUID, invoice: dict[str, Any], credit_note_id: uuid.UUID, amount_minor: int, now: datetime
) -> None:
    """A credit note (or a refund's) on a commissioned invoice: the reseller gives back the same proportion."""
    earned = await repository.paid_event(tenant_id, invoice["id"])
    if earned is None:
        return
    parts = [invoice["subtotal_minor"], invoice["tax_minor"]]
    before = allocate(invoice["credited_minor"], parts)[0] if invoice["credited_minor"] else 0
    net = allocate(invoice["credited_minor"] + amount_minor, parts)[0] - before
    if net <= 0:
        return
    await repository.insert_event(
        {
            "tenant_id": tenant_id,
            "reseller_id": earned["reseller_id"],
            "kind": "refund",
            "source_id": credit_note_id,
            "invoice_id": invoice["id"],
            "invoice_number": invoice["number"],
            "currency": invoice["currency"],
            "net_minor": net,
            "owned_since": earned["owned_since"],
            "occurred_at": now,
        }
    )


# -- agreements --------------------------------------------------------------------------------------------


def agreement_of(terms: AgreementTerms | AgreementView) -> Agreement:
    """The pure core's agreement (checked whole: InvalidAgreement, UnknownCurrency)."""
    return Agreement(
        currency=terms.currency,
        rate_bps=terms.rate_bps,
        tiers=terms.tiers,
        duration=terms.duration_months or commissions.LIFETIME,
        pending_days=terms.pending_days,
        minimum_payout_minor=terms.minimum_payout_minor,
    )


async def put_agreement(actor: Principal, reseller_id: uuid.UUID, terms: AgreementTerms) -> AgreementView:
    """Staff set a reseller's agreement; it is checked whole before anything is written."""
    agreement_of(terms)
    row = {
        "reseller_id": reseller_id,
        "currency": terms.currency,
        "rate_bps": terms.rate_bps,
        "tiers": [{"from_minor": tier.from_minor, "rate_bps": tier.rate_bps} for tier in terms.tiers],
        "duration_months": terms.duration_months,
        "pending_days": terms.pending_days,
        "minimum_payout_minor": terms.minimum_payout_minor,
    }
    async with partner_tx(reseller_id):
        await ensure_partner_access(actor, reseller_id, manage=True)
        return _agreement_view(await repository.put_agreement(row))


async def get_agreement(actor: Principal, reseller_id: uuid.UUID) -> AgreementView:
    async with partner_tx(reseller_id):
        await ensure_partner_access(actor, reseller_id)
        row = await repository.get_agreement(reseller_id)
    if row is None:
        raise AgreementNotFound()
    return _agreement_view(row)


# -- month close -------------------------------------------------------------------------------------------


def month_bounds(month: date) -> tuple[datetime, datetime]:
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def _earned(row: dict[str, Any]) -> Earned:
    return Earned(
        tenant_id=row["tenant_id"],
        invoice_id=row["invoice_id"],
        number=row["invoice_number"],
        net_minor=row["net_minor"],
        rate_bps=row["rate_bps"],
        commission_minor=row["commission_minor"],
        paid_at=row["accrued_at"],
        payable_at=row["payable_at"],
        refunded_minor=int(row["refunded_minor"]),
        clawed_back_minor=int(row["clawed_back_minor"]),
    )


def _line(row: dict[str, Any]) -> CommissionLine:
    return CommissionLine(
        kind=LineKind(row["kind"]),
        tenant_id=row["owned_tenant_id"],
        invoice_id=row["invoice_id"],
        number=row["invoice_number"],
        currency=row["currency"],
        net_minor=row["net_minor"],
        rate_bps=row["rate_bps"],
        commission_minor=row["commission_minor"],
        accrued_at=row["accrued_at"],
        payable_at=row["payable_at"],
    )


async def _skip_foreign_currency(
    reseller_id: uuid.UUID, month: date, agreement: Agreement, events: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], int]:
    """Inside the close's transaction: events of invoices in another currency than the agreement cannot be
    commissioned (there is no rate between them): each is recorded with its reason, counted, and left out, so
    one such invoice never stops the reseller's (or anyone's) close. The events kept, and how many were not."""
    kept, skipped = [], 0
    for event in events:
        if event["currency"] == agreement.currency:
            kept.append(event)
            continue
        detail = (
            f"invoice {event['invoice_number']} is in {event['currency']}, the agreement in {agreement.currency}: "
            f"its {event['kind']} event is not commissioned"
        )
        await repository.insert_skipped_event(
            {
                "reseller_id": reseller_id,
                "month": month,
                "event_id": event["id"],
                "invoice_id": event["invoice_id"],
                "invoice_number": event["invoice_number"],
                "currency": event["currency"],
                "net_minor": event["net_minor"],
                "reason": CurrencyMismatch.code,
                "detail": detail,
            }
        )
        log.warning("month close %s, reseller %s: %s", month, reseller_id, detail)
        skipped += 1
    return kept, skipped


async def close_reseller_month(
    reseller_id: uuid.UUID, month: date, report: _CloseTally | None = None
) -> dict[str, Any] | None:
    """Inside the caller's system transaction: the reseller's statement for `month`, written once. None when
    the reseller has no agreement. Closing a closed month answers with its statement and changes nothing."""
    existing = await repository.get_statement(reseller_id, month)
    if existing is not None:
        return existing
    row = await repository.get_agreement(reseller_id)
    if row is None:
        return None
    # Months close in order, so each carries the balance of the one before it, once.
    earlier = await repository.unclosed_months_before(reseller_id, month)
    if earlier:
        raise EarlierMonthNotClosed(f"{earlier[0]:%Y-%m} is not closed yet")
    later = await repository.closed_after(reseller_id, month)
    if later is not None:
        raise LaterMonthClosed(f"{later:%Y-%m} is closed already")
    agreement = agreement_of(_agreement_view(row))
    start, end = month_bounds(month)
    previous = await repository.latest_statement(reseller_id, month)
    carried_in = Money(previous["carried_out_minor"] if previous else 0, agreement.currency)
    earned = {item["invoice_id"]: _earned(item) for item in await repository.commissioned_invoices(reseller_id)}
    events, skipped = await _skip_foreign_currency(
        reseller_id, month, agreement, await repository.month_events(reseller_id, start, end)
    )
    if report is not None:
        report.skipped += skipped
    paid_events = [e for e in events if e["kind"] == "paid"]
    paid_ids = {e["invoice_id"] for e in paid_events}
    # Refunds of invoices that never earned a line (paid before the agreement) have nothing to take back.
    refund_events = [
        e for e in events if e["kind"] == "refund" and (e["invoice_id"] in earned or e["invoice_id"] in paid_ids)
    ]
    computed = commissions.month_lines(
        agreement,
        [
            PaidInvoice(
                e["tenant_id"],
                e["invoice_id"],
                e["invoice_number"],
                e["currency"],
                e["net_minor"],
                e["occurred_at"],
                e["owned_since"],
            )
            for e in paid_events
        ],
        [Refund(e["invoice_id"], e["net_minor"], e["occurred_at"]) for e in refund_events],
        earned,
    )
    # month_lines answers paid invoices in order, then refunds in time order (the order they were read in).
    new = list(zip(computed.lines, paid_events + refund_events, strict=True))
    waiting = await repository.pending_lines(reseller_id)
    waiting_lines = [(_line(item), item) for item in waiting]
    statement = commissions.close_month(
        agreement, [line for line, _ in new] + [line for line, _ in waiting_lines], carried_in, closes_at=end
    )
    # Stripe sends some currencies only in steps (whole forints, fils in tens): the payout is what the payable
    # holds in steps, and the rest is carried to the next statement (still owed in the ledger), so a payout
    # never fails for ever for its amount.
    step = chargeable_step(agreement.currency, exponent(agreement.currency))
    payable = payable_in_steps(statement.payable.minor, step)
    statement_id = uuid.uuid4()
    stored = await repository.insert_statement(
        {
            "id": statement_id,
            "reseller_id": reseller_id,
            "month": month,
            "currency": agreement.currency,
            "carried_in_minor": statement.carried_in.minor,
            "total_minor": statement.total.minor,
            "payable_minor": payable,
            "carried_out_minor": statement.total.minor - payable,
        }
    )
    if stored is None:  # closed concurrently
        return await repository.get_statement(reseller_id, month)
    due = {id(line) for line in statement.lines}
    for line, event in new:
        line_id = uuid.uuid4()
        await repository.insert_line(
            {
                "id": line_id,
                "reseller_id": reseller_id,
                "event_id": event["id"],
                "closed_in": statement_id,
                "statement_id": statement_id if id(line) in due else None,
                "kind": line.kind.value,
                "owned_tenant_id": line.tenant_id,
                "invoice_id": line.invoice_id,
                "invoice_number": line.number,
                "currency": line.currency,
                "net_minor": line.net_minor,
                "rate_bps": line.rate_bps,
                "commission_minor": line.commission_minor,
                "accrued_at": line.accrued_at,
                "payable_at": line.payable_at,
            }
        )
        if line.commission_minor:
            postings = ledger.balanced(
                [
                    ledger.Posting(COMMISSION_EXPENSE, line.commission_minor, line.currency),
                    ledger.Posting(reseller_payable(reseller_id), -line.commission_minor, line.currency),
                ]
            )
            what = "Commission" if line.kind is LineKind.COMMISSION else "Commission clawback"
            await ledger_repository.post(line.tenant_id, "commission", line_id, f"{what} on {line.number}", postings)
    await repository.mark_due([item["id"] for line, item in waiting_lines if id(line) in due], statement_id)
    if payable > 0:
        destination = await repository.payout_account(reseller_id)
        await repository.insert_payout(
            {
                "partner_id": reseller_id,
                "source": "statement",
                "statement_id": statement_id,
                "payable_account": reseller_payable(reseller_id),
                "amount_minor": payable,
                "currency": agreement.currency,
                "destination": destination,
                # A referral reseller has no payout account: it earns credits, which are held, not sent.
                "status": "pending" if destination else "held",
                "last_error": None if destination else "no payout account: held as credit",
            }
        )
    await notices.statement_ready(stored)
    return stored


async def count_resellers_to_close() -> int:
    async with system_tx(SystemReason.PLATFORM_JOB):
        return len(await repository.resellers_with_agreements())


@dataclass(frozen=True, slots=True)
class CloseReport:
    """What a month close did, reseller by reseller."""

    month: str
    closed: int = 0
    already_closed: int = 0
    skipped: int = 0  # events left out (an invoice in another currency), each recorded with its reason
    failed: list[tuple[str, str]] = field(default_factory=list)  # (reseller id, reason): retried by the next run
    payable_minor: dict[str, int] = field(default_factory=dict)


@dataclass
class _CloseTally:
    """The close's counts while it runs (each reseller's close adds to them); `report()` is what it answers."""

    month: str
    closed: int = 0
    already_closed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    payable_minor: dict[str, int] = field(default_factory=dict)

    def report(self) -> CloseReport:
        return CloseReport(
            self.month, self.closed, self.already_closed, self.skipped, list(self.failed), dict(self.payable_minor)
        )


async def close_month(month: date, *, now: datetime | None = None, progress: Any = None) -> CloseReport:
    """Every reseller with an agreement: its statement for `month` (a past month), each in its own transaction.
    A reseller whose close fails is rolled back alone, recorded (`commission_close_issues`, attempts counted),
    counted in `controlplane_batch_item_failures_total{batch_job="close_month"}` and retried by the next run (the
    beat runs on the 1st to the 3rd; closing twice changes nothing); the others close. Months close in order: each
    run first closes a reseller's earlier months left open (a close that failed on every day of its run), and a
    month is refused (`earlier_month_not_closed`, recorded) while one is still open, so no balance is carried
    twice and no month's events are left out."""
    now = now or datetime.now(UTC)
    if month_bounds(month)[1] > now:
        raise MonthNotOver(f"{month:%Y-%m} has not ended yet")
    report = _CloseTally(f"{month:%Y-%m}")
    async with system_tx(SystemReason.PLATFORM_JOB):
        resellers = await repository.resellers_with_agreements()
    for reseller_id in resellers:
        # Earlier months that must close first (a close that failed on every day of its run, a run that never
        # happened), in order; a month still failing leaves the later ones refused, each recorded with its reason.
        try:
            async with system_tx(SystemReason.PLATFORM_JOB):
                earlier = await repository.unclosed_months_before(reseller_id, month)
        except Exception as error:  # one reseller never stops the others; its month's close checks again
            metrics.stop_batch_on_outage("close_month", error)
            report.failed.append((str(reseller_id), metrics.batch_item_failed("close_month", error)))
            earlier = []
        for closing in [*earlier, month]:
            await _close_reseller(reseller_id, closing, report)
        if progress:
            progress(1)
    return report.report()


async def _close_reseller(reseller_id: uuid.UUID, month: date, report: _CloseTally) -> None:
    """One reseller's close of one month, in its own transaction; a failure is recorded on it."""
    skipped_before = report.skipped
    statement = before = None
    try:
        async with system_tx(SystemReason.PLATFORM_JOB):
            before = await repository.get_statement(reseller_id, month)
            statement = await close_reseller_month(reseller_id, month, report)
            if statement is not None and before is None:
                await repository.resolve_close_failure(reseller_id, month)
    except Exception as error:  # one reseller never stops the others
        metrics.stop_batch_on_outage("close_month", error)
        report.skipped = skipped_before  # rolled back with the rest of this reseller's close
        statement = None
        reason = metrics.batch_item_failed("close_month", error)
        report.failed.append((str(reseller_id), reason))
        try:
            async with system_tx(SystemReason.PLATFORM_JOB):
                await repository.record_close_failure(reseller_id, month, reason, str(error))
        except Exception:  # the database itself failed; the next run retries this reseller anyway
            log.exception("reseller %s: its failed close could not be recorded", reseller_id)
    if report.skipped > skipped_before:  # counted once committed
        metrics.BATCH_ITEM_FAILURES_TOTAL.labels(batch_job="close_month", reason=CurrencyMismatch.code).inc(
            report.skipped - skipped_before
        )
    if statement is not None:
        if before is None:
            report.closed += 1
        else:
            report.already_closed += 1
        currency = statement["currency"]
        report.payable_minor[currency] = report.payable_minor.get(currency, 0) + statement["payable_minor"]


# -- payouts -----------------------------------------------------------------------------------------------

MAX_PAYOUT_ATTEMPTS = 5
# After a failed attempt n, the next waits PAYOUT_RETRY_HOURS[n - 1]: bounded (five attempts over ~41 hours),
# and a payout never retried before fresh ones (due payouts are taken by attempts, then age).
PAYOUT_RETRY_HOURS = (1, 4, 12, 24)


@dataclass(frozen=True, slots=True)
class PayoutReport:
    """What a payouts run sent, and what failed (each retried on its back-off)."""

    paid: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (payout id or payee account, reason)


@dataclass
class _PayoutTally:
    """The run's counts while it runs; `report()` is what it answers."""

    paid: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)

    def report(self) -> PayoutReport:
        return PayoutReport(self.paid, list(self.failed))


async def _queue_payee_payout(row: dict[str, Any]) -> bool:
    """Inside the caller's system transaction: one payee balance becomes a payout of what it holds in the steps
    Stripe sends its currency in (the rest stays owed and joins the next payout); False when that is nothing."""
    _, payee_type, payee = row["account"].split(":", 2)
    try:
        partner_id = uuid.UUID(payee)
    except ValueError:
        raise PayoutPayeeUnknown(f"{row['account']} names no partner") from None
    if await repository.partner_kind(partner_id) != payee_type:
        raise PayoutPayeeUnknown(f"no {payee_type} {partner_id} to pay")
    amount = payable_in_steps(int(row["owed"]), chargeable_step(row["currency"], exponent(row["currency"])))
    if amount <= 0:
        return False
    destination = await repository.payout_account(partner_id)
    await repository.insert_payout(
        {
            "partner_id": partner_id,
            "source": "escrow",
            "payable_account": row["account"],
            "up_to_posting_id": row["up_to"],
            "amount_minor": amount,
            "currency": row["currency"],
            "destination": destination,
            "status": "pending" if destination else "held",
            "last_error": None if destination else "no payout account: held",
        }
    )
    return True


async def queue_payee_payouts(report: _PayoutTally | None = None) -> int:
    """What escrow releases owe partner payees (resellers, publishers) becomes a payout; vendors have no
    accounts yet. Safe to run twice: a payout is unique per payable account and newest posting. Each balance
    is queued in its own transaction: one that names no partner of its type (an agreement from before payees
    were checked) is counted, reported and left owed, and the others are queued."""
    queued = 0
    async with system_tx(SystemReason.PLATFORM_JOB):
        owed = [row for row in await repository.payee_balances() if row["owed"] > 0]
    for row in owed:
        try:
            async with system_tx(SystemReason.PLATFORM_JOB):
                queued += await _queue_payee_payout(row)
        except Exception as error:  # one balance never stops the others
            metrics.stop_batch_on_outage("send_payouts", error)
            reason = metrics.batch_item_failed("send_payouts", error)
            if report is not None:
                report.failed.append((row["account"], reason))
    return queued


async def send_payouts(gateway: StripeGateway, *, now: datetime | None = None) -> PayoutReport:
    """The payouts beat task: escrow payees' balances are queued, then each pending payout, and each failed
    one whose back-off has passed, is sent as a Connect transfer keyed by the payout, so a retry after a lost
    answer cannot pay twice; a paid one moves the money from its payable account to cash in the ledger.
    Each payout is its own unit: a failure is recorded on it (status, attempts, last error), counted, and
    retried on PAYOUT_RETRY_HOURS up to MAX_PAYOUT_ATTEMPTS; the run goes on for the others."""
    now = now or datetime.now(UTC)
    report = _PayoutTally()
    await queue_payee_payouts(report)
    async with system_tx(SystemReason.PLATFORM_JOB):
        due = await repository.due_payouts(MAX_PAYOUT_ATTEMPTS, list(PAYOUT_RETRY_HOURS), now, 1000)
    for item in due:
        try:
            await _send_payout(gateway, item["id"], report)
        except Exception as error:  # one payout never stops the others
            metrics.stop_batch_on_outage("send_payouts", error)
            reason = metrics.batch_item_failed("send_payouts", error)
            report.failed.append((str(item["id"]), reason))
            try:
                async with system_tx(SystemReason.PLATFORM_JOB):
                    await repository.settle_payout(item["id"], "failed", None, metrics.batch_item_detail(reason, error))
            except Exception:  # the database itself failed; the next run retries the payout
                log.exception("payout %s: its failure could not be recorded", item["id"])
    return report.report()


async def _send_payout(gateway: StripeGateway, payout_id: uuid.UUID, report: _PayoutTally) -> None:
    async with system_tx(SystemReason.PLATFORM_JOB):
        payout = await repository.claim_payout(payout_id, MAX_PAYOUT_ATTEMPTS)
    if payout is None:
        return
    try:
        transfer_id = await asyncio.to_thread(
            gateway.transfer,
            f"payout:{payout['id']}",
            payout["amount_minor"],
            payout["currency"],
            payout["destination"],
        )
    except PaymentProviderUnavailable:
        # Stripe's outage is not the payout's fault: the attempt is given back, and the run stops (the same
        # key makes the next run's transfer the one Stripe may already have made).
        async with system_tx(SystemReason.PLATFORM_JOB):
            await repository.release_payout_claim(payout["id"])
        raise
    except InvalidPaymentMethod as error:
        reason = metrics.batch_item_failed("send_payouts", error)
        async with system_tx(SystemReason.PLATFORM_JOB):
            await repository.settle_payout(payout["id"], "failed", None, str(error.detail)[:500])
        report.failed.append((str(payout["id"]), reason))
        return
    async with system_tx(SystemReason.PLATFORM_JOB):
        await repository.settle_payout(payout["id"], "paid", transfer_id, None)
        postings = ledger.balanced(
            [
                ledger.Posting(payout["payable_account"], payout["amount_minor"], payout["currency"]),
                ledger.Posting(ledger.CASH, -payout["amount_minor"], payout["currency"]),
            ]
        )
        await ledger_repository.post(None, "payout", payout["id"], f"Payout {transfer_id}", postings)
    report.paid += 1


async def list_payouts(actor: Principal, reseller_id: uuid.UUID) -> list[PayoutView]:
    async with partner_tx(reseller_id):
        await ensure_partner_access(actor, reseller_id)
        rows = await repository.list_payouts(reseller_id)
    return [view_of(PayoutView, row) for row in rows]


# -- what resellers read -----------------------------------------------------------------------------------


def parse_month(text: str) -> date:
    """`YYYY-MM` as the month's first day."""
    try:
        year, number = text.split("-")
        if len(year) != 4 or len(number) != 2:
            raise ValueError(text)
        return date(int(year), int(number), 1)
    except ValueError:
        raise InvalidMonth(f"{text!r} is not a month (YYYY-MM)") from None


async def list_statements(actor: Principal, reseller_id: uuid.UUID) -> list[StatementView]:
    """The reseller's statements, newest month first (without their lines)."""
    async with partner_tx(reseller_id):
        await ensure_partner_access(actor, reseller_id)
        rows = await repository.list_statements(reseller_id)
    return [view_of(StatementView, row, lines=(), skipped=()) for row in rows]


async def get_statement(actor: Principal, reseller_id: uuid.UUID, month: date) -> StatementView:
    """One month's statement with its lines and the events its close left out."""
    async with partner_tx(reseller_id):
        await ensure_partner_access(actor, reseller_id)
        row = await repository.get_statement(reseller_id, month)
        if row is None:
            raise StatementNotFound()
        lines = tuple(_line_view(line) for line in await repository.statement_lines(row["id"]))
        skipped = tuple(
            view_of(SkippedEventView, event) for event in await repository.skipped_events(reseller_id, month)
        )
        return view_of(StatementView, row, lines=lines, skipped=skipped)


def statement_csv(statement: StatementView) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["tenant_id", "invoice_number", "kind", "net_minor", "rate_bps", "commission_minor", "currency"])
    for line in statement.lines:
        writer.writerow(
            [
                line.owned_tenant_id,
                line.invoice_number,
                line.kind,
                line.net_minor,
                line.rate_bps,
                line.commission_minor,
                line.currency,
            ]
        )
    totals = {
        "carried_in_minor": statement.carried_in_minor,
        "total_minor": statement.total_minor,
        "payable_minor": statement.payable_minor,
        "carried_out_minor": statement.carried_out_minor,
    }
    for name, amount in totals.items():
        writer.writerow([name, "", "", "", "", amount, statement.currency])
    return out.getvalue()
