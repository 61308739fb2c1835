"""Reseller commissions: accrual lines at month close, clawbacks, and monthly statements. Pure.

An `Agreement` pays `rate_bps` (basis points, 0-10,000) of the net (tax-excluded) amount of every paid
invoice of a tenant the reseller owns. The rules, exactly:

* **Month close, not accrual at payment.** `month_lines` takes every invoice paid in one UTC calendar
  month and the refunds/credit notes recorded with it, and writes one line per event. Lines are final
  when written: no later true-up.
* **Tiers.** With volume tiers, the month's total net (of the invoices that earn, before any refund)
  picks the tier whose `from_minor` is the highest one <= that total, and its rate applies to ALL of the
  month's earning invoices (not graduated). Tiers start at 0, strictly increase, and the first tier's rate
  is the agreement's `rate_bps` (the base rate), so the two never disagree.
* **Duration.** `"lifetime"`, or N months: an invoice paid at or after `owned_since` + N calendar months
  (same time of day, day clamped to the month's end: Jan 31 + 1 = Feb 28/29) earns nothing; it still
  gets a line (rate 0, commission 0) so every event is recorded once.
* **Commission** = round_half_up(net x rate / 10,000), once per invoice.
* **Clawback.** A refund or credit note of `r` net on an invoice clawed back cumulatively: after refunds
  totalling R of the invoice's net N, the invoice has given back round_half_up(C x R / N) of its
  commission C; each clawback line is the step from the previous cumulative figure. So the clawbacks of
  an invoice never exceed C, a full refund gives back exactly C, and each line is within one minor unit of
  -C x r / N. A refund over what remains of the invoice's net is refused.
* **Pending period.** A commission line is payable at `accrued_at + pending_days` days (exact elapsed
  time). A clawback is payable at the later of its refund time and the payable time of the commission it
  reverses, so it never nets before the commission it takes back (a refund inside the pending period
  cancels the commission in the same statement that would have paid it).
* **Statement.** `close_month` takes the month's new lines plus the previous statement's `deferred`
  lines. Those payable at or before `closes_at` are due; the rest are deferred to the next statement.
  total = carried_in + due lines; payable = total when total > 0 and total >= minimum_payout_minor,
  else 0; carried_out = total - payable. A negative total is carried forward, never charged.

Amounts are integer minor units of the agreement's currency; any other currency raises `CurrencyMismatch`.
"""

from __future__ import annotations

import calendar
import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal, TypeGuard

from billing.errors import CurrencyMismatch, InvalidAgreement, InvalidCommissionEvent
from billing.money import Money, exponent, round_minor

MAX_BPS = 10_000
LIFETIME: Literal["lifetime"] = "lifetime"
Duration = int | Literal["lifetime"]


class LineKind(enum.StrEnum):
    COMMISSION = "commission"
    CLAWBACK = "clawback"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bps(rate_bps: object, what: str) -> None:
    if not _is_int(rate_bps) or not 0 <= rate_bps <= MAX_BPS:
        raise InvalidAgreement(f"{what} must be a whole number of basis points from 0 to {MAX_BPS}, not {rate_bps!r}")


def _aware(at: datetime, what: str) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise InvalidCommissionEvent(f"{what} must be a datetime with a timezone")
    return at


@dataclass(frozen=True, slots=True)
class Tier:
    """From a monthly net total of `from_minor` (inclusive) up to the next tier's start: `rate_bps`."""

    from_minor: int
    rate_bps: int


@dataclass(frozen=True, slots=True)
class Agreement:
    currency: str
    rate_bps: int
    tiers: tuple[Tier, ...] = ()
    duration: Duration = LIFETIME
    pending_days: int = 30
    minimum_payout_minor: int = 0

    def __post_init__(self) -> None:
        exponent(self.currency)
        _check_bps(self.rate_bps, "rate_bps")
        # Tiers may be given as `(from_minor, rate_bps)` pairs, in any sequence; they are kept as a tuple.
        tiers = tuple(_tier(tier) for tier in self.tiers)
        object.__setattr__(self, "tiers", tiers)
        _check_tiers(self.tiers, self.rate_bps)
        if self.duration != LIFETIME and (not _is_int(self.duration) or self.duration < 1):
            raise InvalidAgreement(
                f"duration must be {LIFETIME!r} or a whole number of months >= 1, not {self.duration!r}"
            )
        if not _is_int(self.pending_days) or self.pending_days < 0:
            raise InvalidAgreement(f"pending_days must be a whole number >= 0, not {self.pending_days!r}")
        if not _is_int(self.minimum_payout_minor) or self.minimum_payout_minor < 0:
            raise InvalidAgreement(
                f"minimum_payout_minor must be a whole number >= 0, not {self.minimum_payout_minor!r}"
            )


def _tier(tier: object) -> Tier:
    if isinstance(tier, Tier):
        return tier
    if isinstance(tier, tuple | list) and len(tier) == 2:
        return Tier(tier[0], tier[1])
    raise InvalidAgreement(f"a tier is a Tier or a (from_minor, rate_bps) pair, not {tier!r}")


def _check_tiers(tiers: tuple[Tier, ...], rate_bps: int) -> None:
    if not tiers:
        return
    for index, tier in enumerate(tiers):
        if not _is_int(tier.from_minor) or tier.from_minor < 0:
            raise InvalidAgreement(f"tier {index}'s from_minor must be a whole number >= 0, not {tier.from_minor!r}")
        _check_bps(tier.rate_bps, f"tier {index}'s rate_bps")
    if tiers[0].from_minor != 0:
        raise InvalidAgreement(f"the first tier must start at 0, not {tiers[0].from_minor}")
    for index in range(1, len(tiers)):
        if tiers[index].from_minor <= tiers[index - 1].from_minor:
            raise InvalidAgreement(
                f"tiers must start at strictly increasing amounts: tier {index} starts at "
                f"{tiers[index].from_minor}, not above tier {index - 1}'s {tiers[index - 1].from_minor}"
            )
    if tiers[0].rate_bps != rate_bps:
        raise InvalidAgreement(f"the first tier's rate ({tiers[0].rate_bps} bps) must be rate_bps ({rate_bps} bps)")


@dataclass(frozen=True, slots=True)
class PaidInvoice:
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    currency: str
    net_minor: int  # the invoice's subtotal, excluding tax
    paid_at: datetime
    owned_since: datetime  # when the tenant came to the reseller


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund or credit note of `net_minor` (excluding tax, > 0) on a paid invoice."""

    invoice_id: uuid.UUID
    net_minor: int
    at: datetime


@dataclass(frozen=True, slots=True)
class CommissionLine:
    """One event's effect on the reseller's balance. A clawback's `net_minor` and `commission_minor` are
    negative (the refunded net, the commission given back); `rate_bps` is the rate the invoice earned."""

    kind: LineKind
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    currency: str
    net_minor: int
    rate_bps: int
    commission_minor: int
    accrued_at: datetime
    payable_at: datetime


@dataclass(frozen=True, slots=True)
class Earned:
    """What one invoice earned and has given back so far: the state clawbacks need across months."""

    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    net_minor: int
    rate_bps: int
    commission_minor: int
    paid_at: datetime
    payable_at: datetime
    refunded_minor: int = 0
    clawed_back_minor: int = 0


@dataclass(frozen=True, slots=True)
class MonthLines:
    lines: tuple[CommissionLine, ...]
    earned: Mapping[uuid.UUID, Earned] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Statement:
    closes_at: datetime
    lines: tuple[CommissionLine, ...]  # due in this statement
    deferred: tuple[CommissionLine, ...]  # still pending at closes_at: pass them to the next close_month
    carried_in: Money
    total: Money
    payable: Money
    carried_out: Money


def commission_of(net_minor: int, rate_bps: int) -> int:
    """round_half_up(net x rate / 10,000): the one rounding of a commission line."""
    return round_minor(Decimal(net_minor) * Decimal(rate_bps) / Decimal(MAX_BPS))


def tier_rate(agreement: Agreement, month_net_minor: int) -> int:
    """The rate for a month whose earning net totals `month_net_minor`."""
    rate = agreement.rate_bps
    for tier in agreement.tiers:
        if tier.from_minor <= month_net_minor:
            rate = tier.rate_bps
    return rate


def add_months(at: datetime, months: int) -> datetime:
    """`at` plus whole calendar months in UTC, the day clamped to the month's last day."""
    at = at.astimezone(UTC)
    index = at.year * 12 + at.month - 1 + months
    year, month = divmod(index, 12)
    day = min(at.day, calendar.monthrange(year, month + 1)[1])
    return at.replace(year=year, month=month + 1, day=day)


def earns(agreement: Agreement, invoice: PaidInvoice) -> bool:
    """Whether an invoice's payment falls inside the agreement's duration for its tenant."""
    if agreement.duration == LIFETIME:
        return True
    return invoice.paid_at < add_months(invoice.owned_since, int(agreement.duration))


def month_lines(
    agreement: Agreement,
    paid: Sequence[PaidInvoice],
    refunds: Sequence[Refund] = (),
    earned: Mapping[uuid.UUID, Earned] | None = None,
) -> MonthLines:
    """The lines of one month: a commission line per invoice paid in the month (all in one UTC calendar
    month), then a clawback line per refund in time order, against `earned` (the state returned by the
    previous months) and this month's invoices. Returns the lines and the new per-invoice state."""
    state: dict[uuid.UUID, Earned] = dict(earned or {})
    pending = timedelta(days=agreement.pending_days)
    months: set[tuple[int, int]] = set()
    seen: set[uuid.UUID] = set()
    for invoice in paid:
        _check_invoice(agreement, invoice, state)
        if invoice.invoice_id in seen:
            raise InvalidCommissionEvent(f"invoice {invoice.number} is listed twice")
        seen.add(invoice.invoice_id)
        paid_at = invoice.paid_at.astimezone(UTC)
        months.add((paid_at.year, paid_at.month))
    if len(months) > 1:
        raise InvalidCommissionEvent("month_lines takes the invoices paid in one calendar month (UTC)")
    month_total = sum(invoice.net_minor for invoice in paid if earns(agreement, invoice))
    month_rate = tier_rate(agreement, month_total)

    lines: list[CommissionLine] = []
    for invoice in paid:
        rate = month_rate if earns(agreement, invoice) else 0
        entry = Earned(
            tenant_id=invoice.tenant_id,
            invoice_id=invoice.invoice_id,
            number=invoice.number,
            net_minor=invoice.net_minor,
            rate_bps=rate,
            commission_minor=commission_of(invoice.net_minor, rate),
            paid_at=invoice.paid_at,
            payable_at=invoice.paid_at + pending,
        )
        state[invoice.invoice_id] = entry
        lines.append(
            CommissionLine(
                kind=LineKind.COMMISSION,
                tenant_id=entry.tenant_id,
                invoice_id=entry.invoice_id,
                number=entry.number,
                currency=agreement.currency,
                net_minor=entry.net_minor,
                rate_bps=entry.rate_bps,
                commission_minor=entry.commission_minor,
                accrued_at=entry.paid_at,
                payable_at=entry.payable_at,
            )
        )
    for refund in sorted(refunds, key=lambda r: r.at):
        line, state[refund.invoice_id] = clawback(agreement, state, refund)
        lines.append(line)
    return MonthLines(tuple(lines), state)


def _check_invoice(agreement: Agreement, invoice: PaidInvoice, state: Mapping[uuid.UUID, Earned]) -> None:
    if invoice.currency != agreement.currency:
        raise CurrencyMismatch(
            f"invoice {invoice.number} is in {invoice.currency}, the agreement in {agreement.currency}"
        )
    if not _is_int(invoice.net_minor) or invoice.net_minor < 0:
        raise InvalidCommissionEvent(f"invoice {invoice.number}'s net_minor must be a whole number >= 0")
    _aware(invoice.paid_at, "paid_at")
    _aware(invoice.owned_since, "owned_since")
    if invoice.paid_at < invoice.owned_since:
        raise InvalidCommissionEvent(f"invoice {invoice.number} was paid before the reseller owned its tenant")
    if invoice.invoice_id in state:
        raise InvalidCommissionEvent(f"invoice {invoice.number} has already been commissioned")


def clawback(agreement: Agreement, earned: Mapping[uuid.UUID, Earned], refund: Refund) -> tuple[CommissionLine, Earned]:
    """The clawback line of one refund and the invoice's new state (cumulative rounding; see the module)."""
    _aware(refund.at, "a refund's at")
    try:
        invoice = earned[refund.invoice_id]
    except KeyError:
        raise InvalidCommissionEvent(f"refund of invoice {refund.invoice_id}, which was never commissioned") from None
    if refund.at < invoice.paid_at:
        raise InvalidCommissionEvent(f"a refund of invoice {invoice.number} predates its payment")
    remaining = invoice.net_minor - invoice.refunded_minor
    if not _is_int(refund.net_minor) or not 0 < refund.net_minor <= remaining:
        raise InvalidCommissionEvent(
            f"a refund of invoice {invoice.number} must be from 1 to its remaining net {remaining}, "
            f"not {refund.net_minor!r}"
        )
    refunded = invoice.refunded_minor + refund.net_minor
    clawed = round_minor(Decimal(invoice.commission_minor) * Decimal(refunded) / Decimal(invoice.net_minor))
    line = CommissionLine(
        kind=LineKind.CLAWBACK,
        tenant_id=invoice.tenant_id,
        invoice_id=invoice.invoice_id,
        number=invoice.number,
        currency=agreement.currency,
        net_minor=-refund.net_minor,
        rate_bps=invoice.rate_bps,
        commission_minor=-(clawed - invoice.clawed_back_minor),
        accrued_at=refund.at,
        payable_at=max(refund.at, invoice.payable_at),
    )
    return line, replace(invoice, refunded_minor=refunded, clawed_back_minor=clawed)


def close_month(
    agreement: Agreement, lines: Iterable[CommissionLine], carried_in: Money, *, closes_at: datetime
) -> Statement:
    """The statement closing at `closes_at`, from this month's lines plus the last statement's `deferred`."""
    _aware(closes_at, "closes_at")
    if carried_in.currency != agreement.currency:
        raise CurrencyMismatch(
            f"the carried balance is in {carried_in.currency}, the agreement in {agreement.currency}"
        )
    due: list[CommissionLine] = []
    deferred: list[CommissionLine] = []
    for line in lines:
        if line.currency != agreement.currency:
            raise CurrencyMismatch(f"line of invoice {line.number} is in {line.currency}, not {agreement.currency}")
        (due if line.payable_at <= closes_at else deferred).append(line)
    total = carried_in.minor + sum(line.commission_minor for line in due)
    payable = total if total > 0 and total >= agreement.minimum_payout_minor else 0
    currency = agreement.currency
    return Statement(
        closes_at=closes_at,
        lines=tuple(due),
        deferred=tuple(deferred),
        carried_in=carried_in,
        total=Money(total, currency),
        payable=Money(payable, currency),
        carried_out=Money(total - payable, currency),
    )
