"""Coupons and discounts: what a coupon may say, whether it may be redeemed, what its discount takes off an
invoice and what is left of it afterwards; and what share of a period's charges was billed. Pure.

The rules, in the order an invoice meets them:

- **Base.** A discount applies to the subscription's charges on the invoice: its positive `flat`, `per_seat`,
  `metered` and `proration` lines. Credits (negative lines, a carried credit included) and cash `rounding` are
  no base.
- **Order.** Discounts apply in redemption order (`position`), each on the base the earlier ones left.
  Percent: `ROUND_HALF_UP(left x bps / 10000)`; amount: the coupon's amount (for a `once` amount, what is
  still unused), never more than what is left.
- **Capped by the charges.** Together they never take more than the base. Credits on the invoice are the
  tenant's own money and do not shrink what a discount takes: 1500 of charges, a carried credit of -1000 and
  50 % off give 750 off, and the -250 left is carried to the next invoice (`credit_to_carry`).
- **One amount per period.** A `repeating` or `forever` AMOUNT discount applies to `cycle` invoices only,
  once per billing period: `change` and `final` invoices (seat increases, upgrades, the usage billed at a
  cancellation) get none of it, so toggling seats cannot take the amount again and again. Percent discounts
  apply to every invoice with charges (a change's charge is discounted in proportion), and a `once` amount's
  unused rest carries across invoices of any kind.
- **Plan and currency.** A discount whose coupon is restricted to plans that do not include the subscription's
  plan for this invoice (after a plan change), or whose amount is in another currency, takes nothing and ends
  (`plan_mismatch`, `currency_mismatch`) when the invoice is written: the restriction is checked against the
  plan at every invoice, so a cancellation, a pause or a change of plan keeps a matching discount.
- **Duration.** `once` percent: used by the first invoice it takes something off. `once` amount: what one
  invoice could not use carries to the next invoices until used (Lago's rule). `repeating`: lasts for
  `duration_periods` cycle invoices it takes something off, counted as each is written; `change` and `final`
  invoices between them are discounted too but count no period (they fall inside a period already counted or
  about to be), and an invoice it takes nothing off (a trial's, without charges) counts none. `forever`: until
  removed. A voided invoice gives back what it used (`given_back`).
- **Billed share.** Unused time is credited at what was billed for it, not at the plan's price: the credit
  lines of a cancellation or a plan change (the old plan's unused rest) are scaled, before their one rounding,
  by the period's billed share = (charges - discounts) / charges over the invoices that billed the period
  (1 when no discount applied). 1500 billed at 50 % off and cancelled half-way credits 375, not 750.
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


def per_period_amount(terms: CouponTerms) -> bool:
    """A `repeating` or `forever` amount: given once per billing period, on its cycle invoice."""
    return terms.amount_off_minor is not None and terms.duration != "once"


def apply(
    discounts: Sequence[Discount], lines: Sequence[Line], plan_code: str, currency: str, kind: str = "cycle"
) -> list[Applied]:
    """What each discount that applies takes off `lines` on an invoice of `kind`, in redemption order (see the
    module's rules)."""
    base = discount_base(lines)
    taken = 0
    applied = []
    for discount in sorted(discounts, key=lambda d: d.position):
        if not (for_plan(discount.terms, plan_code) and for_currency(discount.terms, currency)):
            continue
        if per_period_amount(discount.terms) and kind != "cycle":
            applied.append(Applied(discount, 0))
            continue
        amount = max(min(_offered(discount, base - taken), base - taken), 0)
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
    discounts: Sequence[Discount],
    lines: Sequence[Line],
    plan_code: str,
    currency: str,
    period: Period,
    kind: str = "cycle",
) -> list[Line]:
    """The discount lines of an invoice of `kind` with `lines` (one per discount that takes something off)."""
    applied = apply(discounts, lines, plan_code, currency, kind)
    return [discount_line(item, period) for item in applied if item.amount_minor > 0]


@dataclass(frozen=True, slots=True)
class Outcome:
    """A discount after an invoice was written: what it has used, and why it ended (None: still active)."""

    discount: Discount
    taken_minor: int
    ended: EndReason | None = None


def after_invoice(discount: Discount, taken_minor: int, kind: str, plan_code: str, currency: str) -> Outcome:
    """What an invoice of `kind`, from which the discount took `taken_minor`, leaves of it."""
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
    if terms.duration == "repeating" and kind == "cycle" and taken_minor > 0:
        used = discount.periods_used + 1
        assert terms.duration_periods is not None
        ended: EndReason | None = "periods_over" if used >= terms.duration_periods else None
        return Outcome(replace(discount, periods_used=used), taken_minor, ended)
    return Outcome(discount, taken_minor)


def after_invoices(
    discounts: Sequence[Discount], lines: Sequence[Line], kind: str, plan_code: str, currency: str
) -> list[Outcome]:
    """Every active discount after an invoice with `lines` (before discounts) was written."""
    applied = apply(discounts, lines, plan_code, currency, kind)
    taken = {item.discount.position: item.amount_minor for item in applied}
    return [
        after_invoice(discount, taken.get(discount.position, 0), kind, plan_code, currency)
        for discount in sorted(discounts, key=lambda d: d.position)
    ]


def given_back(discount: Discount, amount_minor: int, kind: str, ended: str | None) -> tuple[Discount, bool]:
    """A discount once the voided invoice of `kind` that took `amount_minor` of it gives that back, and
    whether it is active again: a `once` amount gets the amount back, a `repeating` discount the period a
    cycle invoice counted; one that ended by being used or by its periods runs again (one ended otherwise, by
    staff or a plan change, stays ended)."""
    terms = discount.terms
    if terms.duration == "once" and discount.amount_remaining_minor is not None:
        discount = replace(discount, amount_remaining_minor=discount.amount_remaining_minor + amount_minor)
    elif terms.duration == "repeating" and kind == "cycle" and amount_minor > 0:
        discount = replace(discount, periods_used=max(discount.periods_used - 1, 0))
    return discount, ended in ("used", "periods_over")


@dataclass(frozen=True, slots=True)
class BilledShare:
    """What share of a period's charges was billed after discounts: `billed_minor` of `charged_minor`."""

    billed_minor: int
    charged_minor: int

    def of(self, precise: Decimal) -> Decimal:
        """`precise` at this share (unrounded: the line rounds once)."""
        if self.billed_minor == self.charged_minor:
            return precise
        return precise * self.billed_minor / self.charged_minor


FULL_SHARE = BilledShare(1, 1)


def billed_share(lines: Sequence[tuple[str, int]]) -> BilledShare:
    """The billed share of the (charge kind, amount) lines of the invoices that billed a period: their charges
    (the discount base) less their discounts, of their charges; the full share without a discount."""
    charged = sum((amount for kind, amount in lines if kind in BASE_KINDS and amount > 0), 0)
    discounted = -sum((amount for kind, amount in lines if kind == "discount"), 0)
    if charged <= 0 or discounted <= 0:
        return FULL_SHARE
    return BilledShare(max(charged - discounted, 0), charged)


def at_billed_share(lines: Sequence[Line], share: BilledShare) -> list[Line]:
    """`lines` with their credits (negative `proration` lines: unused time) at the billed share, rounded once."""
    if share == FULL_SHARE:
        return list(lines)
    scaled = []
    for line in lines:
        if line.charge_kind == "proration" and line.precise_amount < 0:
            line = replace(
                line,
                description=f"{line.description}, as billed after discounts",
                precise_amount=share.of(line.precise_amount),
            )
        scaled.append(line)
    return scaled
