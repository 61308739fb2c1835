"""Billing periods (calendar and anniversary, monthly and yearly) and whole-day proration, UTC."""

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from billing.periods import Period, add_days, full_period_containing, midnight, period_from, prorate, remaining_fraction
from tests.unit.billing.builders import utc


def test_calendar_month_period_runs_from_the_first_to_the_first() -> None:
    full = full_period_containing(utc(2026, 1, 15, 13), "month", "calendar", date(2026, 1, 15))
    assert full == Period(utc(2026, 1, 1), utc(2026, 2, 1))
    assert full.days == 31


def test_calendar_first_period_from_the_15th_is_the_rest_of_the_month() -> None:
    period = period_from(utc(2026, 1, 15, 9), "month", "calendar", date(2026, 1, 15))
    # Jan 15 .. Jan 31 inclusive = 17 days, ending at Feb 1 (exclusive).
    assert period == Period(utc(2026, 1, 15), utc(2026, 2, 1))
    assert period.days == 17


def test_calendar_february_of_a_leap_year_has_29_days() -> None:
    assert full_period_containing(utc(2028, 2, 10), "month", "calendar", date(2028, 2, 10)).days == 29
    assert full_period_containing(utc(2026, 2, 10), "month", "calendar", date(2026, 2, 10)).days == 28


def test_calendar_december_rolls_into_the_next_year() -> None:
    assert full_period_containing(utc(2026, 12, 31), "month", "calendar", date(2026, 12, 1)) == Period(
        utc(2026, 12, 1), utc(2027, 1, 1)
    )


def test_calendar_year_runs_from_1_january() -> None:
    period = period_from(utc(2026, 7, 1), "year", "calendar", date(2026, 7, 1))
    assert period == Period(utc(2026, 7, 1), utc(2027, 1, 1))
    assert period.days == 184  # Jul 31 + Aug 31 + Sep 30 + Oct 31 + Nov 30 + Dec 31
    assert full_period_containing(utc(2026, 7, 1), "year", "calendar", date(2026, 7, 1)).days == 365
    assert full_period_containing(utc(2028, 7, 1), "year", "calendar", date(2028, 7, 1)).days == 366


def test_anniversary_anchor_31_clamps_to_the_end_of_february_and_back_to_31() -> None:
    anchor = date(2026, 1, 31)
    first = period_from(utc(2026, 1, 31), "month", "anniversary", anchor)
    assert first == Period(utc(2026, 1, 31), utc(2026, 2, 28))
    assert first.days == 28
    second = period_from(first.end, "month", "anniversary", anchor)
    assert second == Period(utc(2026, 2, 28), utc(2026, 3, 31))
    assert second.days == 31
    third = period_from(second.end, "month", "anniversary", anchor)
    assert third == Period(utc(2026, 3, 31), utc(2026, 4, 30))
    fourth = period_from(third.end, "month", "anniversary", anchor)
    assert fourth == Period(utc(2026, 4, 30), utc(2026, 5, 31))


def test_anniversary_anchor_31_in_a_leap_year_ends_on_29_february() -> None:
    anchor = date(2028, 1, 31)
    first = period_from(utc(2028, 1, 31), "month", "anniversary", anchor)
    assert first == Period(utc(2028, 1, 31), utc(2028, 2, 29))
    assert first.days == 29
    assert period_from(first.end, "month", "anniversary", anchor) == Period(utc(2028, 2, 29), utc(2028, 3, 31))


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (utc(2026, 2, 15), Period(utc(2026, 1, 31), utc(2026, 2, 28))),
        (utc(2026, 2, 28), Period(utc(2026, 2, 28), utc(2026, 3, 31))),
        (utc(2026, 3, 30), Period(utc(2026, 2, 28), utc(2026, 3, 31))),
        (utc(2026, 3, 31), Period(utc(2026, 3, 31), utc(2026, 4, 30))),
        (utc(2026, 1, 5), Period(utc(2025, 12, 31), utc(2026, 1, 31))),
    ],
)
def test_anniversary_period_containing_a_day_inside_it(at: datetime, expected: Period) -> None:
    assert full_period_containing(at, "month", "anniversary", date(2026, 1, 31)) == expected


def test_anniversary_yearly_from_29_february_clamps_in_common_years() -> None:
    anchor = date(2028, 2, 29)
    first = period_from(utc(2028, 2, 29), "year", "anniversary", anchor)
    assert first == Period(utc(2028, 2, 29), utc(2029, 2, 28))
    assert first.days == 365
    second = period_from(first.end, "year", "anniversary", anchor)
    assert second == Period(utc(2029, 2, 28), utc(2030, 2, 28))
    later = full_period_containing(utc(2031, 6, 1), "year", "anniversary", anchor)
    assert later == Period(utc(2031, 2, 28), utc(2032, 2, 29))


def test_midnight_is_the_start_of_the_utc_day() -> None:
    assert midnight(utc(2026, 1, 15, 23)) == utc(2026, 1, 15)
    plus_two = timezone(timedelta(hours=2))
    minus_five = timezone(timedelta(hours=-5))
    # 00:30 at +02:00 is still 14 January in UTC; 20:00 at -05:00 is already 16 January.
    assert midnight(datetime(2026, 1, 15, 0, 30, tzinfo=plus_two)) == utc(2026, 1, 14)
    assert midnight(datetime(2026, 1, 15, 20, 0, tzinfo=minus_five)) == utc(2026, 1, 16)
    assert midnight(utc(2026, 1, 15, 23)).tzinfo == UTC


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        midnight(datetime(2026, 1, 15))


def test_prorate_is_amount_times_remaining_over_period_days_unrounded() -> None:
    assert prorate(Decimal(1000), 17, 31) == Decimal(1000) * 17 / 31  # 548.387…
    assert prorate(Decimal(1000), 31, 31) == Decimal(1000)
    assert prorate(Decimal(1000), 0, 31) == 0
    with pytest.raises(ValueError):
        prorate(Decimal(1000), 0, 0)


def test_remaining_fraction_counts_from_the_change_day_inclusive_to_the_end_exclusive() -> None:
    period = Period(utc(2026, 1, 15), utc(2026, 2, 1))
    full = Period(utc(2026, 1, 1), utc(2026, 2, 1))
    # Jan 20 .. Jan 31 = 12 days, whatever the hour of the change.
    assert remaining_fraction(utc(2026, 1, 20, 18), period, full) == (12, 31)
    assert remaining_fraction(utc(2026, 1, 31, 23), period, full) == (1, 31)
    assert remaining_fraction(utc(2026, 2, 3), period, full) == (0, 31)


def test_add_days_counts_from_the_start_of_the_day() -> None:
    assert add_days(utc(2026, 1, 1, 15), 14) == utc(2026, 1, 15)
    assert add_days(utc(2028, 2, 20), 14) == utc(2028, 3, 5)
