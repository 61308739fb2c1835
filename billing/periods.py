"""Billing periods and proration by whole UTC days. Pure.

Period boundaries are midnight UTC. A `calendar` subscription's periods start on the 1st of the month
(or 1 January); an `anniversary` one's end on its anchor day of the month, clamped to the month's last
day (anchor 31: Jan 31 → Feb 28/29 → Mar 31).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Literal

Interval = Literal["month", "year"]
Anchor = Literal["calendar", "anniversary"]


@dataclass(frozen=True, slots=True)
class Period:
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.end.date() - self.start.date()).days


def midnight(at: datetime) -> datetime:
    """The start of `at`'s UTC day."""
    if at.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return datetime.combine(at.astimezone(UTC).date(), time(), tzinfo=UTC)


def _clamped(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _at(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def full_period_containing(at: datetime, interval: Interval, anchor: Anchor, anchor_date: date) -> Period:
    """The whole period (not cut at the subscription's start) that contains `at`.

    `anchor_date` matters only for anniversary billing: its day of month (and month, for yearly plans).
    """
    day = at.astimezone(UTC).date()
    months = 1 if interval == "month" else 12
    if anchor == "calendar":
        first = date(day.year, day.month if interval == "month" else 1, 1)
        y, m = _add_months(first.year, first.month, months)
        return Period(_at(first), _at(date(y, m, 1)))
    # Anniversary: boundaries are the anchor day in every month (or the anchor month, yearly).
    if interval == "month":
        candidate = _clamped(day.year, day.month, anchor_date.day)
        if candidate > day:
            y, m = _add_months(day.year, day.month, -1)
            candidate = _clamped(y, m, anchor_date.day)
    else:
        candidate = _clamped(day.year, anchor_date.month, anchor_date.day)
        if candidate > day:
            candidate = _clamped(day.year - 1, anchor_date.month, anchor_date.day)
    y, m = _add_months(candidate.year, candidate.month, months)
    return Period(_at(candidate), _at(_clamped(y, m, anchor_date.day)))


def period_from(start: datetime, interval: Interval, anchor: Anchor, anchor_date: date) -> Period:
    """The billing period that begins at `start`: the rest of the full period containing it.

    From a boundary this is a whole period; from any other day (a calendar subscription starting on the
    15th) it is the prorated first part.
    """
    start = midnight(start)
    full = full_period_containing(start, interval, anchor, anchor_date)
    return Period(start, full.end)


def remaining_fraction(change_at: datetime, period: Period, full: Period) -> tuple[int, int]:
    """(remaining_days, days_in_period): from the change's day (inclusive) to the period's end (exclusive),
    over the length of the whole period the price is quoted for.
    """
    remaining = max((period.end.date() - midnight(change_at).date()).days, 0)
    return remaining, full.days


def prorate(amount: Decimal, remaining_days: int, days_in_period: int) -> Decimal:
    """`amount x remaining_days / days_in_period`, unrounded (each line is rounded once, later)."""
    if days_in_period <= 0:
        raise ValueError("a period has at least one day")
    if remaining_days == days_in_period:
        return amount
    return amount * remaining_days / days_in_period


def add_days(at: datetime, days: int) -> datetime:
    return midnight(at) + timedelta(days=days)
