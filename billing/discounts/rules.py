"""Coupons and discounts: what a coupon may say, whether it may be redeemed, what its discount takes off an
invoice and what is left of it afterwards. Pure.

The rules, in the order an invoice meets them:

- **Base.** A discount applies to the subscription's charges on the invoice: its positive `flat`, `per_seat`,
  `metered` and `proration` lines. Credits (negative lines) and cash `rounding` are no base.
- **Order.** Discounts apply in redemption order (`position`), each on the base the earlier ones left.
  Percent: `ROUND_HALF_UP(left x bps / 10000)`; amount: the coupon's amount (for a `once` amount, what is
  still unused), never more than what is left.
- **Never a credit.** Together they never take more than what the invoice's lines owe before discounts (the
  base less the credits on it, at least 0): a discount never creates a credit carried to the next invoice.
- **Plan and currency.** A discount whose coupon is restricted to plans that do not include the subscription's
  plan for this invoice (after a plan change), or whose amount is in another currency, takes nothing and ends
  (`plan_mismatch`, `currency_mismatch`) when the invoice is written: the restriction is checked against the
  plan at every invoice, so a cancellation, a pause or a change of plan keeps a matching discount.
- **Duration.** `once` percent: used by the first invoice it takes something off. `once` amount: what one
  invoice could not use carries to the next invoices until used (Lago's rule). `repeating`: lasts for
  `duration_periods` cycle invoices with subscription charges, counted as each is written; `change` and
  `final` invoices between them are discounted too but count no period (they fall inside a period already
  counted or about to be), and an invoice without charges (a trial's) counts none. `forever`: until removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Literal

from billing.errors import (
    CouponArchived,
    CouponCurrencyMismatch,
    CouponExhausted,
    CouponExpired,
    CouponPlanMismatch,
    InvalidCoupon,
)
from billing.limits import MAX_AMOUNT_MINOR
from billing.money import exponent, round_minor
from billing.periods import Period
from billing.rating import Line

Duration = Literal["once", "repeating", "forever"]
DURATIONS: tuple[Duration, ...] = ("once", "repeating", "forever")
MAX_PERCENT_BPS = 10_000
MAX_DURATION_PERIODS = 120  # ten years of months
MAX_PLAN_CODES = 50
MAX_REDEMPTIONS = 1_000_000_000
# The lines a discount applies to (when positive): the subscription's charges.
BASE_KINDS = frozenset({"flat", "per_seat", "metered", "proration"})
EndReason = Literal["used", "periods_over", "plan_mismatch", "currency_mismatch"]


@dataclass(frozen=True, slots=True)
class CouponTerms:
    """What a coupon takes off: exactly one of `percent_off_bps` and `amount_off_minor` (+ `currency`)."""

    code: str
    name: str
    duration: Duration
    percent_off_bps: int | None = None
    amount_off_minor: int | None = None
    currency: str | None = None
    duration_periods: int | None = None
    plan_codes: tuple[str, ...] | None = None


def check_terms(terms: CouponTerms) -> None:
    """Raise `InvalidCoupon` unless the terms make one coupon."""
    percent, amount = terms.percent_off_bps, terms.amount_off_minor
    if (percent is None) == (amount is None):
        raise InvalidCoupon("a coupon has exactly one of percent_off_bps and amount_off_minor")
    if percent is not None:
        if not 1 <= percent <= MAX_PERCENT_BPS:
            raise InvalidCoupon(f"percent_off_bps must be between 1 and {MAX_PERCENT_BPS}")
        if terms.currency is not None:
            raise InvalidCoupon("a percent coupon has no currency")
    if amount is not None:
        if not 1 <= amount <= MAX_AMOUNT_MINOR:
            raise InvalidCoupon(f"amount_off_minor must be between 1 and {MAX_AMOUNT_MINOR}")
        if terms.currency is None:
            raise InvalidCoupon("an amount coupon needs the currency of its amount")
        exponent(terms.currency)
    if terms.duration not in DURATIONS:
        raise InvalidCoupon(f"duration must be one of {', '.join(DURATIONS)}")
    if (terms.duration == "repeating") != (terms.duration_periods is not None):
        raise InvalidCoupon("duration_periods is given with a repeating duration, and only then")
    if terms.duration_periods is not None and not 1 <= terms.duration_periods <= MAX_DURATION_PERIODS:
        raise InvalidCoupon(f"duration_periods must be between 1 and {MAX_DURATION_PERIODS}")
    if terms.plan_codes is not None:
        if not 1 <= len(terms.plan_codes) <= MAX_PLAN_CODES:
            raise InvalidCoupon(f"plan_codes names between 1 and {MAX_PLAN_CODES} plans, or is left out")
        if len(set(terms.plan_codes)) != len(terms.plan_codes):
            raise InvalidCoupon("plan_codes names each plan once")


def for_plan(terms: CouponTerms, plan_code: str) -> bool:
    return terms.plan_codes is None or plan_code in terms.plan_codes


def for_currency(terms: CouponTerms, currency: str) -> bool:
    return terms.currency is None or terms.currency == currency


@dataclass(frozen=True, slots=True)
class CouponState:
    """A coupon as redemption sees it."""

    terms: CouponTerms
    archived: bool
    redeem_by: datetime | None
    max_redemptions: int | None
    times_redeemed: int


def check_redeemable(coupon: CouponState, plan_code: str, currency: str, now: datetime) -> None:
    """Raise the refusal that applies first: archived, expired, exhausted, wrong plan, wrong currency."""
    if coupon.archived:
        raise CouponArchived(f"the coupon {coupon.terms.code!r} is archived")
    if coupon.redeem_by is not None and now >= coupon.redeem_by:
        raise CouponExpired(f"the coupon {coupon.terms.code!r} could be redeemed until {coupon.redeem_by.isoformat()}")
    if coupon.max_redemptions is not None and coupon.times_redeemed >= coupon.max_redemptions:
        raise CouponExhausted(f"the coupon {coupon.terms.code!r} has been redeemed {coupon.max_redemptions} times")
    if not for_plan(coupon.terms, plan_code):
        raise CouponPlanMismatch(f"the coupon {coupon.terms.code!r} does not apply to the plan {plan_code!r}")
    if not for_currency(coupon.terms, currency):
        raise CouponCurrencyMismatch(
            f"the coupon's amount is in {coupon.terms.currency}, the subscription's plan bills in {currency}"
        )


@dataclass(frozen=True, slots=True)
class Discount:
    """A redeemed coupon on a subscription: its terms as redeemed, its order and what it has used."""

    position: int
    terms: CouponTerms
    periods_used: int = 0
    amount_remaining_minor: int | None = None  # a `once` amount coupon's unused amount

    @classmethod
    def redeemed(cls, position: int, terms: CouponTerms) -> Discount:
        once_amount = terms.duration == "once" and terms.amount_off_minor is not None
        return cls(position, terms, 0, terms.amount_off_minor if once_amount else None)


def discount_base(lines: Sequence[Line]) -> int:
    """The subscription's charges on the invoice: what discounts apply to."""
    return sum((line.amount_minor for line in lines if line.charge_kind in BASE_KINDS and line.amount_minor > 0), 0)


def owed(lines: Sequence[Line]) -> int:
    """What the lines owe before discounts, at least 0: the most discounts may take off together."""
    return max(sum((line.amount_minor for line in lines), 0), 0)


@dataclass(frozen=True, slots=True)
class Applied:
    discount: Discount
    amount_minor: int  # what it takes off, >= 0


def _offered(discount: Discount, left: int) -> int:
    terms = discount.terms
    if terms.percent_off_bps is not None:
        return round_minor(Decimal(left) * terms.percent_off_bps / MAX_PERCENT_BPS)
    if discount.amount_remaining_minor is not None:
        return discount.amount_remaining_minor
    assert terms.amount_off_minor is not None
    return terms.amount_off_minor


def apply(discounts: Sequence[Discount], lines: Sequence[Line], plan_code: str, currency: str) -> list[Applied]:
    """What each discount that applies takes off `lines`, in redemption order (see the module's rules)."""
    base = discount_base(lines)
    room = min(base, owed(lines))
    taken = 0
    applied = []
    for discount in sorted(discounts, key=lambda d: d.position):
        if not (for_plan(discount.terms, plan_code) and for_currency(discount.terms, currency)):
            continue
        amount = max(min(_offered(discount, base - taken), room - taken), 0)
        applied.append(Applied(discount, amount))
        taken += amount
    return applied


def _percent_text(bps: int) -> str:
    text = format((Decimal(bps) / 100).normalize(), "f")
    return f"{text}% off"


def discount_line(applied: Applied, period: Period) -> Line:
    """The invoice line of a discount: negative, named after its coupon; `charge_index` is its position."""
    terms = applied.discount.terms
    what = _percent_text(terms.percent_off_bps) if terms.percent_off_bps is not None else "amount off"
    amount = Decimal(-applied.amount_minor)
    return Line(
        description=f"Discount {terms.name} ({terms.code}): {what}",
        charge_kind="discount",
        quantity=Decimal(1),
        unit_amount=amount,
        precise_amount=amount,
        period=period,
        charge_index=applied.discount.position,
    )


def discount_lines(
    discounts: Sequence[Discount], lines: Sequence[Line], plan_code: str, currency: str, period: Period
) -> list[Line]:
    """The discount lines of an invoice with `lines` (one per discount that takes something off)."""
    return [
        discount_line(item, period) for item in apply(discounts, lines, plan_code, currency) if item.amount_minor > 0
    ]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A discount after an invoice was written: what it has used, and why it ended (None: still active)."""

    discount: Discount
    taken_minor: int
    ended: EndReason | None = None


def after_invoice(
    discount: Discount, taken_minor: int, base_minor: int, kind: str, plan_code: str, currency: str
) -> Outcome:
    """What an invoice of `kind` with `base_minor` of charges, from which the discount took `taken_minor`,
    leaves of it."""
    terms = discount.terms
    if not for_plan(terms, plan_code):
        return Outcome(discount, 0, "plan_mismatch")
    if not for_currency(terms, currency):
        return Outcome(discount, 0, "currency_mismatch")
    if terms.duration == "once" and discount.amount_remaining_minor is not None:
        remaining = discount.amount_remaining_minor - taken_minor
        return Outcome(
            replace(discount, amount_remaining_minor=remaining), taken_minor, "used" if remaining == 0 else None
        )
    if terms.duration == "once":
        return Outcome(discount, taken_minor, "used" if taken_minor > 0 else None)
    if terms.duration == "repeating" and kind == "cycle" and base_minor > 0:
        used = discount.periods_used + 1
        assert terms.duration_periods is not None
        ended: EndReason | None = "periods_over" if used >= terms.duration_periods else None
        return Outcome(replace(discount, periods_used=used), taken_minor, ended)
    return Outcome(discount, taken_minor)


def after_invoices(
    discounts: Sequence[Discount], lines: Sequence[Line], kind: str, plan_code: str, currency: str
) -> list[Outcome]:
    """Every active discount after an invoice with `lines` (before discounts) was written."""
    taken = {item.discount.position: item.amount_minor for item in apply(discounts, lines, plan_code, currency)}
    base = discount_base(lines)
    return [
        after_invoice(discount, taken.get(discount.position, 0), base, kind, plan_code, currency)
        for discount in sorted(discounts, key=lambda d: d.position)
    ]
