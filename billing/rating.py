"""From charges, units and periods to invoice lines. Pure.

Each line keeps its precise amount and its amount rounded once (ROUND_HALF_UP to a whole minor unit);
invoice totals are sums of rounded lines. Lines explain themselves: quantity x unit amount, the tier,
the days of a prorated period.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Literal

from billing.catalogue.rules import Charge, Plan
from billing.errors import AmountOutOfRange
from billing.limits import MAX_LINE_MINOR
from billing.money import round_minor
from billing.periods import Period, prorate

LineKind = Literal["flat", "per_seat", "metered", "proration", "rounding", "discount", "one_off"]
ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Line:
    description: str
    charge_kind: LineKind
    quantity: Decimal
    unit_amount: Decimal
    precise_amount: Decimal
    period: Period
    metric_code: str | None = None
    charge_index: int | None = None

    def __post_init__(self) -> None:
        # Checked before rounding: a figure this large is never stored (see billing.limits).
        if abs(self.precise_amount) > MAX_LINE_MINOR:
            raise AmountOutOfRange(
                f"{self.description}: the line's amount is beyond {MAX_LINE_MINOR} minor units",
                limit_minor=MAX_LINE_MINOR,
            )

    @property
    def amount_minor(self) -> int:
        return round_minor(self.precise_amount)


def _day(at: datetime) -> str:
    return at.date().isoformat()


def _span(period: Period) -> str:
    return f"{_day(period.start)} to {_day(period.end)}"


def _fraction(period: Period, full: Period) -> str:
    return "" if period.days == full.days else f" ({period.days}/{full.days} days)"


# -- advance charges: flat and per seat ---------------------------------------------------------------


def advance_lines(plan: Plan, seats: int, period: Period, full: Period) -> list[Line]:
    """The advance-billed charges of `plan` for `period`, prorated when it is shorter than `full`."""
    lines = []
    for index, charge in enumerate(plan.charges):
        if not charge.in_advance:
            continue
        quantity = Decimal(1) if charge.kind == "flat" else Decimal(seats)
        unit = charge.amount if charge.kind == "flat" else charge.unit_amount
        precise = prorate(quantity * unit, period.days, full.days)
        if charge.min_amount is not None and precise < charge.min_amount:
            precise = charge.min_amount
        label = f"{plan.name}: {charge.name}" if charge.kind == "flat" else f"{plan.name}: {charge.name} x {seats}"
        lines.append(
            Line(
                description=f"{label}, {_day(period.start)} to {_day(period.end)}{_fraction(period, full)}",
                charge_kind=charge.kind,
                quantity=quantity,
                unit_amount=unit,
                precise_amount=precise,
                period=period,
                charge_index=index,
            )
        )
    return lines


def proration_lines(
    plan: Plan, seats: int, period: Period, full: Period, *, credit: bool, change_at: datetime
) -> list[Line]:
    """Credit (the unused rest of the old price) or charge (the rest of the new one) from `change_at`.

    `period` runs from the change day to the period's end; `full` is the whole period the price is for.
    """
    lines = []
    for index, charge in enumerate(plan.charges):
        if not charge.in_advance:
            continue
        quantity = Decimal(1) if charge.kind == "flat" else Decimal(seats)
        unit = charge.amount if charge.kind == "flat" else charge.unit_amount
        precise = prorate(quantity * unit, period.days, full.days)
        if precise == 0:
            continue
        what = "Unused time on" if credit else "Remaining time on"
        seats_text = "" if charge.kind == "flat" else f" x {seats}"
        lines.append(
            Line(
                description=(
                    f"{what} {plan.name}: {charge.name}{seats_text} from {_day(change_at)} "
                    f"to {_day(period.end)} ({period.days}/{full.days} days)"
                ),
                charge_kind="proration",
                quantity=quantity,
                unit_amount=unit,
                precise_amount=-precise if credit else precise,
                period=period,
                charge_index=index,
            )
        )
    return lines


# -- percentage charges: a fee per event ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PercentageUsage:
    """A percentage charge's usage over a window: the sum of the events' values, how many events there were, and
    the exact sum of each paying event's clamped fee (the first `free_events` pay nothing), not yet rounded.
    The shell computes `fees` in SQL (`billing.usage.repository.percentage_fees`); `percentage_usage` is the
    same rule over values in Python."""

    units: Decimal
    events: int
    fees: Decimal


Usage = Decimal | PercentageUsage  # what rates one metered charge: its metric's aggregate, or a percentage's fees


def event_fee(charge: Charge, value: Decimal) -> Decimal:
    """One paying event's fee: value x rate / 100 + the fixed fee, clamped to the per-event minimum and maximum."""
    fee = value * charge.rate.scaleb(-2) + charge.fixed_amount
    if charge.per_event_min is not None:
        fee = max(fee, charge.per_event_min)
    if charge.per_event_max is not None:
        fee = min(fee, charge.per_event_max)
    return fee


def percentage_usage(charge: Charge, values: Iterable[Decimal], earlier_events: int = 0) -> PercentageUsage:
    """`values` in occurrence order; the first `free_events` of the billing period pay nothing. `earlier_events`:
    the events of the same period before the window (billed before a mid-period plan change), which used up
    free events first: free events are counted per period, not granted again with each window."""
    units, events, fees = ZERO, 0, ZERO
    for value in values:
        events += 1
        units += value
        if earlier_events + events > charge.free_events:
            fees += event_fee(charge, value)
    return PercentageUsage(units=units, events=events, fees=fees)


def _percentage_piece(charge: Charge, usage: PercentageUsage) -> tuple[str, Decimal, Decimal, Decimal]:
    terms = [f"{_units_text(charge.rate)}%"]
    if charge.fixed_amount:
        terms.append(f"+ {_units_text(charge.fixed_amount)} per event")
    if charge.per_event_min is not None:
        terms.append(f"at least {_units_text(charge.per_event_min)}")
    if charge.per_event_max is not None:
        terms.append(f"at most {_units_text(charge.per_event_max)}")
    free = f", the first {charge.free_events} free" if charge.free_events else ""
    what = f" over {usage.events} event(s){free} at {' '.join(terms)} per event"
    return what, Decimal(1), usage.fees, usage.fees


# -- metered charges ----------------------------------------------------------------------------------


def _units_text(units: Decimal) -> str:
    return format(units.normalize(), "f") if units else "0"


def metered_lines(charge: Charge, index: int, usage: Usage, period: Period) -> list[Line]:
    """The lines of one metered charge for the `usage` of `period` (one per tier touched, and a true-up line
    when the charge's minimum is not reached). A percentage charge is one line: the sum of its event fees."""
    assert charge.metric_code is not None and charge.model is not None
    if charge.model == "percentage" and not isinstance(usage, PercentageUsage):
        # Only "no usage at all" reaches here without the events (a window with nothing metered).
        assert usage == 0, "a percentage charge is rated from its events' fees"
        usage = PercentageUsage(units=ZERO, events=0, fees=ZERO)
    units = usage.units if isinstance(usage, PercentageUsage) else usage
    pieces: list[tuple[str, Decimal, Decimal, Decimal]] = []  # (what, quantity, unit, precise)
    if isinstance(usage, PercentageUsage):
        pieces.append(_percentage_piece(charge, usage))
    elif charge.model == "per_unit":
        pieces.append(("", units, charge.unit_amount, units * charge.unit_amount))
    elif charge.model == "graduated":
        pieces.extend(_graduated(charge, units))
    elif charge.model == "volume":
        pieces.extend(_volume(charge, units))
    else:
        billable = max(units - charge.free_units, ZERO)
        packages = (billable / charge.package_size).to_integral_value(rounding=ROUND_CEILING)
        what = f" in packages of {charge.package_size}" + (
            f" after {_units_text(charge.free_units)} free" if charge.free_units else ""
        )
        pieces.append(
            (what + f": {_units_text(packages)} package(s)", packages, charge.amount, packages * charge.amount)
        )
    lines = [
        Line(
            description=f"{charge.name}: {_units_text(units)} unit(s){what}, {_span(period)}",
            charge_kind="metered",
            quantity=quantity,
            unit_amount=unit,
            precise_amount=precise,
            period=period,
            metric_code=charge.metric_code,
            charge_index=index,
        )
        for what, quantity, unit, precise in pieces
    ]
    billed = sum((line.amount_minor for line in lines), 0)
    if charge.min_amount is not None and billed < charge.min_amount:
        shortfall = charge.min_amount - billed
        lines.append(
            Line(
                description=f"{charge.name}: minimum of {_units_text(charge.min_amount)} minor units for the period",
                charge_kind="metered",
                quantity=Decimal(1),
                unit_amount=shortfall,
                precise_amount=shortfall,
                period=period,
                metric_code=charge.metric_code,
                charge_index=index,
            )
        )
    return lines


def _tier_label(lower: Decimal, upper: Decimal | None) -> str:
    return f"{_units_text(lower + 1)} and up" if upper is None else f"{_units_text(lower + 1)}-{_units_text(upper)}"


def _graduated(charge: Charge, units: Decimal) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """Each unit priced in the tier it falls in; a tier's flat amount once any unit reaches it."""
    if units <= 0:
        return [("", ZERO, charge.tiers[0].unit_amount, ZERO)]
    pieces = []
    lower = ZERO
    for number, tier in enumerate(charge.tiers, start=1):
        if units <= lower:
            break
        in_tier = (units if tier.up_to is None else min(units, tier.up_to)) - lower
        label = f", tier {number} ({_tier_label(lower, tier.up_to)})"
        pieces.append((label, in_tier, tier.unit_amount, in_tier * tier.unit_amount))
        if tier.flat_amount:
            pieces.append((label + " flat fee", Decimal(1), tier.flat_amount, tier.flat_amount))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return pieces


def _volume(charge: Charge, units: Decimal) -> list[tuple[str, Decimal, Decimal, Decimal]]:
    """Every unit priced at the tier the total falls in, plus that tier's flat amount."""
    if units <= 0:
        return [("", ZERO, charge.tiers[0].unit_amount, ZERO)]
    lower = ZERO
    for number, tier in enumerate(charge.tiers, start=1):
        if tier.up_to is None or units <= tier.up_to:
            label = f", tier {number} ({_tier_label(lower, tier.up_to)})"
            pieces = [(label, units, tier.unit_amount, units * tier.unit_amount)]
            if tier.flat_amount:
                pieces.append((label + " flat fee", Decimal(1), tier.flat_amount, tier.flat_amount))
            return pieces
        lower = tier.up_to
    raise AssertionError("the last tier is unbounded")


def charge_total(lines: list[Line]) -> int:
    return sum((line.amount_minor for line in lines), 0)
