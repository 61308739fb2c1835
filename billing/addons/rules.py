"""Add-ons: extra charges on a subscription (a paid plugin's price), billed at the subscription's boundaries. Pure.

An add-on is one charge in the catalogue's JSON form (flat, per seat or metered), a quantity (the seats of
a per-seat charge) and the moment it becomes billable (`billable_from`: a plugin trial's end, or the
install time). Each is rated as a one-charge `Plan` named after the add-on, so the existing rating code
prices it and every line names the add-on.

At the boundary that ends period P = [P.start, B) and starts C:

- in advance, for C: the flat and per-seat charges of every add-on live at B (billable from B or earlier,
  and not ended by B), for C as the plan's own advance charges are (prorated the same way);
- in arrears, for P: an add-on that became billable inside P (after P.start: it was not live when P was
  billed in advance) pays for the whole days from its `billable_from` day up to B, or up to the day it
  ended; the span is split along the whole periods it crosses (a long subscription trial) and each part is
  prorated over its whole period;
- metered charges for the units used in [max(P.start, billable_from), min(B, ended_at)).

So each day is billed once: in advance when the add-on was live at the day's period start, in arrears
when it became billable later. An add-on ended mid-period is not credited for the rest of a period it
was billed in advance for (a plugin is paid for by the period, like the plan's own charges once the
period is invoiced); it is simply not billed again. A lower quantity applies from the next boundary on (no
credit); a higher one while the add-on is billable is billed at once (`raise_quantity`): the seats beyond
those the current period has paid for, prorated by whole days from the day of the increase to the period's
end, as a subscription upgrade is. The period's arrears then bill the seats it had before the increases.

Prices are per billing period of the subscription (per month on a monthly plan, per year on a yearly one).
While the subscription itself is trialing, its add-ons are billed at its boundaries all the same: a
plugin's trial is the plugin's own (its `billable_from`), independent of the subscription's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from billing.catalogue.rules import Charge, Plan, parse_charge
from billing.errors import InvalidAddon
from billing.money import exponent
from billing.periods import Interval, Period, full_period_containing, midnight
from billing.rating import Line, advance_lines, metered_lines, proration_lines
from billing.subscriptions.lifecycle import MAX_SEATS, Subscription
from billing.subscriptions.states import Status

MAX_NAME = 200
# The smallest step of a PostgreSQL timestamp: "just after" an instant.
TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Addon:
    id: Any
    name: str
    charge: Charge
    quantity: int
    billable_from: datetime
    ended_at: datetime | None = None
    # Set by a quantity change in the period ending at `period_end`: the seats its arrears bill (`base`)
    # and the seats paid for up to its end (`paid`). Outside that period both are simply `quantity`.
    period_end: datetime | None = None
    period_base_quantity: int | None = None
    period_paid_quantity: int | None = None

    def in_period(self, period_end: datetime) -> tuple[int, int]:
        """(seats the period's arrears bill, seats paid for up to its end) for the period ending at `period_end`."""
        if self.period_end == period_end and self.period_base_quantity and self.period_paid_quantity:
            return self.period_base_quantity, self.period_paid_quantity
        return self.quantity, self.quantity

    def live_at(self, at: datetime) -> bool:
        """Billable at `at` and not ended by then: billed in advance for the period starting at `at`."""
        return self.billable_from <= at and (self.ended_at is None or self.ended_at > at)

    def plan(self, currency: str, interval: Interval) -> Plan:
        """The add-on as a one-charge plan, so the plan's rating prices it; lines are named after it."""
        return Plan(
            id=self.id,
            code="addon",
            version=1,
            name=self.name,
            currency=currency,
            interval=interval,
            trial_days=0,
            charges=(self.charge,),
            metric_codes=frozenset({self.charge.metric_code} if self.charge.metric_code else ()),
        )


@dataclass(frozen=True, slots=True)
class Boundary:
    """What an add-on needs to know of one boundary of its subscription."""

    ending: Period  # the period that ends at the boundary
    ending_fulls: tuple[Period, ...]  # the whole periods `ending` lies in (one, or more for a long trial)
    coming: Period | None  # the period that starts at the boundary; None when the subscription ends there
    coming_full: Period | None  # the whole period `coming` is part of
    currency: str
    interval: Interval

    @property
    def at(self) -> datetime:
        return self.ending.end


# -- checking input -------------------------------------------------------------------------------------


def check_charge(raw: Any, currency: str) -> Charge:
    """An add-on's charge, parsed by the catalogue's own parser (`InvalidCharge`), in a known currency."""
    exponent(currency)
    charge = parse_charge(raw, 0)
    if charge.model == "percentage":
        # Rated per event from the plan's charges only (billing.subscriptions.state.with_percentage_fees).
        raise InvalidAddon("an add-on's charge may not be a percentage charge")
    return charge


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or any(ord(c) < 32 for c in name):
        raise InvalidAddon(f"an add-on's name is 1 to {MAX_NAME} printable characters")
    return name


def check_quantity(quantity: Any) -> int:
    if isinstance(quantity, bool) or not isinstance(quantity, int) or not 1 <= quantity <= MAX_SEATS:
        raise InvalidAddon(f"an add-on's quantity is a whole number from 1 to {MAX_SEATS}")
    return quantity


def check_moment(at: Any, what: str) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise InvalidAddon(f"{what} must be a datetime with a timezone")
    return at


def first_billable(billable_from: datetime, period_start: datetime) -> datetime:
    """When an add-on attached now starts to be billed: its `billable_from`, but never at or before the start
    of the subscription's current period, whose advance invoice is already written without it.

    A `billable_from` that early moves to just after that start, so the current period is billed in arrears
    from its first day (an invoice already written is never reopened, and no day is lost).
    """
    return max(billable_from, period_start + TICK)


def addon_from_row(row: Mapping[str, Any]) -> Addon:
    return Addon(
        id=row["id"],
        name=row["name"],
        charge=parse_charge(row["charge"], 0),
        quantity=row["quantity"],
        billable_from=row["billable_from"],
        ended_at=row["ended_at"],
        period_end=row.get("period_end"),
        period_base_quantity=row.get("period_base_quantity"),
        period_paid_quantity=row.get("period_paid_quantity"),
    )


# -- the boundary ---------------------------------------------------------------------------------------


def _fulls(period: Period, sub: Subscription) -> tuple[Period, ...]:
    full = full_period_containing(period.start, sub.plan.interval, sub.anchor, sub.anchor_date)
    fulls = [full]
    while full.end < period.end:
        full = full_period_containing(full.end, sub.plan.interval, sub.anchor, sub.anchor_date)
        fulls.append(full)
    return tuple(fulls)


def boundary_of(before: Subscription, after: Subscription) -> Boundary:
    """The boundary that `lifecycle.cross_boundary` took `before` over, to `after`."""
    ended = after.status == Status.CANCELED
    return Boundary(
        ending=before.current_period,
        ending_fulls=_fulls(before.current_period, before),
        coming=None if ended else after.current_period,
        coming_full=None if ended else after.full_period(),
        currency=after.plan.currency,
        interval=after.plan.interval,
    )


def metered_window(addon: Addon, boundary: Boundary) -> Period | None:
    """Where an add-on's metered usage is counted at this boundary; None when it was not billable in it."""
    start = max(boundary.ending.start, addon.billable_from)
    end = boundary.at if addon.ended_at is None else min(boundary.at, addon.ended_at)
    return Period(start, end) if start < end else None


# -- the lines ------------------------------------------------------------------------------------------


def _unindexed(lines: list[Line]) -> list[Line]:
    # An add-on's lines are not the plan's charges: they carry no charge index.
    return [replace(line, charge_index=None) for line in lines]


def _arrears(addon: Addon, plan: Plan, boundary: Boundary) -> list[Line]:
    if not addon.charge.in_advance or not boundary.ending.start < addon.billable_from < boundary.at:
        return []
    base, _ = addon.in_period(boundary.at)
    first = midnight(addon.billable_from)
    last = boundary.at if addon.ended_at is None or addon.ended_at >= boundary.at else midnight(addon.ended_at)
    lines: list[Line] = []
    for full in boundary.ending_fulls:
        part = Period(max(first, full.start), min(last, full.end))
        if part.days > 0:
            lines += proration_lines(plan, base, part, full, credit=False, change_at=part.start)
    return lines


def lines_at(addons: Sequence[Addon], boundary: Boundary, usage: Mapping[Any, Decimal]) -> list[Line]:
    """The add-ons' lines of the invoice written at `boundary`: for each add-on, its arrears for the ending
    period, its metered usage in it, then its advance charges for the coming period.

    `usage` maps an add-on's id to the units of its metric in its `metered_window`.
    """
    lines: list[Line] = []
    for addon in addons:
        plan = addon.plan(boundary.currency, boundary.interval)
        own = _arrears(addon, plan, boundary)
        window = metered_window(addon, boundary)
        if addon.charge.metric_code is not None and window is not None:
            units = usage.get(addon.id, Decimal(0))
            own += [
                replace(line, description=f"{addon.name}: {line.description}")
                for line in metered_lines(addon.charge, 0, units, window)
            ]
        if boundary.coming is not None and boundary.coming_full is not None and addon.live_at(boundary.at):
            own += advance_lines(plan, addon.quantity, boundary.coming, boundary.coming_full)
        lines += _unindexed(own)
    return lines


# -- a change of quantity -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QuantityChange:
    addon: Addon  # with the new quantity and what the period has paid for
    lines: list[Line]  # the increase billed at once; empty when nothing is billed now


def fulls_of(period: Period, sub: Subscription) -> tuple[Period, ...]:
    """The whole periods `period` of `sub` lies in (one, or more for a long trial)."""
    return _fulls(period, sub)


def change_quantity(
    addon: Addon,
    quantity: int,
    at: datetime,
    period: Period,
    fulls: Sequence[Period],
    currency: str,
    interval: Interval,
) -> QuantityChange:
    """`addon` with `quantity` seats from `at`, in the subscription's current `period` (lying in `fulls`).

    While the add-on is billable in the period (and the period has not ended), seats beyond those the period
    has paid for are billed now for the whole days from `at`'s day to the period's end, each whole period
    prorated on its own; fewer seats are not credited and apply from the next boundary. Before it is billable
    (a plugin's trial), or once the period has ended (its boundary not billed yet), nothing is billed now:
    the quantity applies to everything billed from then on."""
    check_quantity(quantity)
    if addon.charge.kind != "per_seat" or not addon.live_at(at) or not period.start <= at < period.end:
        return QuantityChange(
            replace(addon, quantity=quantity, period_end=None, period_base_quantity=None, period_paid_quantity=None),
            [],
        )
    base, paid = addon.in_period(period.end)
    lines: list[Line] = []
    if quantity > paid:
        plan = addon.plan(currency, interval)
        day = midnight(at)
        for full in fulls:
            part = Period(max(day, full.start), min(period.end, full.end))
            if part.days > 0:
                lines += proration_lines(plan, quantity - paid, part, full, credit=False, change_at=part.start)
        paid = quantity
    after = replace(
        addon, quantity=quantity, period_end=period.end, period_base_quantity=base, period_paid_quantity=paid
    )
    return QuantityChange(after, _unindexed(lines))
