"""Add-ons (a paid plugin's charge on a subscription), worked by hand to the minor unit, and a property: over
any run of boundaries no day is billed twice and none is missed. January 2026 has 31 days, February 28."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.addons.rules import (
    TICK,
    Addon,
    boundary_of,
    change_quantity,
    check_charge,
    check_moment,
    check_name,
    check_quantity,
    first_billable,
    fulls_of,
    lines_at,
    metered_window,
)
from billing.catalogue.rules import Plan, parse_charge
from billing.errors import InvalidAddon, InvalidCharge, UnknownCurrency
from billing.periods import Period, midnight
from billing.rating import Line
from billing.subscriptions.lifecycle import Subscription, cross_boundary, schedule_cancel, start
from tests.unit.billing.builders import amounts, flat, make_plan, per_seat, per_unit, utc

BASE = make_plan("base", [flat(2000)], currency="EUR")
JANUARY = Period(utc(2026, 1, 1), utc(2026, 2, 1))
FEBRUARY = Period(utc(2026, 2, 1), utc(2026, 3, 1))
MARCH = Period(utc(2026, 3, 1), utc(2026, 4, 1))


def addon(
    charge: dict[str, Any],
    billable_from: datetime,
    *,
    quantity: int = 1,
    ended_at: datetime | None = None,
    name: str = "SEO Booster",
    addon_id: str = "a1",
) -> Addon:
    return Addon(addon_id, name, parse_charge(charge, 0), quantity, billable_from, ended_at)


def subscribed(start_at: datetime = utc(2026, 1, 1), plan: Plan = BASE, anchor: str = "calendar") -> Subscription:
    """A subscription as `catch_up` leaves it after its first boundary (or at its trial's start)."""
    sub = start(plan, 1, start_at, anchor)  # type: ignore[arg-type]
    return sub if sub.trial_end else cross_boundary(sub, {}).subscription


def invoices(
    sub: Subscription, addons: list[Addon], boundaries: int, usage: dict[Any, Decimal] | None = None
) -> list[list[Line]]:
    """The add-on lines of each of the next `boundaries` invoices, as `catch_up` writes them."""
    found = []
    for _ in range(boundaries):
        step = cross_boundary(sub, {})
        found.append(lines_at(addons, boundary_of(sub, step.subscription), usage or {}))
        sub = step.subscription
    return found


# -- flat ------------------------------------------------------------------------------------------------


def test_flat_addon_installed_mid_period_is_prorated_in_arrears_then_billed_in_advance() -> None:
    seo = addon(flat(1000, name="Licence"), utc(2026, 1, 20, 10))
    feb, mar = invoices(subscribed(), [seo], 2)
    # 1 Feb: 20-31 January in arrears, 1000 x 12/31 = 387.09… → 387; then February in advance, 1000.
    assert amounts(feb) == [387, 1000]
    assert feb[0].period == Period(utc(2026, 1, 20), utc(2026, 2, 1))
    assert feb[0].charge_kind == "proration"
    assert feb[0].description == "Remaining time on SEO Booster: Licence from 2026-01-20 to 2026-02-01 (12/31 days)"
    assert feb[1].period == FEBRUARY
    assert feb[1].description == "SEO Booster: Licence, 2026-02-01 to 2026-03-01"
    assert all(line.charge_index is None for line in feb)
    # 1 Mar: March in advance only; nothing of January or February again.
    assert amounts(mar) == [1000]
    assert mar[0].period == MARCH


def test_addon_billable_at_the_boundary_itself_is_billed_in_advance_only() -> None:
    feb, mar = invoices(subscribed(), [addon(flat(1000), utc(2026, 2, 1))], 2)
    assert amounts(feb) == [1000]
    assert amounts(mar) == [1000]


def test_plugin_trial_ending_mid_period_bills_from_its_end() -> None:
    # Installed in January with a trial to 15 February: nothing on 1 February.
    feb, mar, apr = invoices(subscribed(), [addon(flat(1000), utc(2026, 2, 15))], 3)
    assert feb == []
    # 1 Mar: 15-28 February in arrears, 1000 x 14/28 = 500; March in advance, 1000.
    assert amounts(mar) == [500, 1000]
    assert mar[0].period == Period(utc(2026, 2, 15), utc(2026, 3, 1))
    assert amounts(apr) == [1000]


def test_first_day_counts_whole_whatever_the_hour() -> None:
    # Billable from 23:59 on 31 January: that day is billed, 1000 x 1/31 = 32.25… → 32.
    [feb] = invoices(subscribed(), [addon(flat(1000), utc(2026, 1, 31, 23) + timedelta(minutes=59))], 1)
    assert amounts(feb) == [32, 1000]


# -- per seat and quantity ------------------------------------------------------------------------------


def test_per_seat_addon_bills_quantity_times_the_unit_and_quantity_changes_apply_at_the_next_boundary() -> None:
    seats = addon(per_seat(250, name="Editor"), utc(2026, 1, 10), quantity=2)
    sub = subscribed()
    # 1 Feb: 2 x 250 x 22/31 = 354.83… → 355 for 10-31 January; February 2 x 250 = 500.
    [feb] = invoices(sub, [seats], 1)
    assert amounts(feb) == [355, 500]
    assert feb[1].description == "SEO Booster: Editor x 2, 2026-02-01 to 2026-03-01"
    assert (feb[1].quantity, feb[1].unit_amount) == (Decimal(2), Decimal(250))
    # The quantity goes to 5 during February: February stays billed as it was, March bills 5 x 250.
    february = cross_boundary(sub, {}).subscription
    [mar] = invoices(february, [replace(seats, quantity=5)], 1)
    assert amounts(mar) == [1250]


def test_a_seat_increase_is_billed_at_once_to_the_period_end_beyond_the_seats_paid_for() -> None:
    seats = addon(per_seat(250, name="Editor"), utc(2026, 1, 10), quantity=2)
    february = cross_boundary(subscribed(), {}).subscription
    assert february.current_period == FEBRUARY
    fulls = fulls_of(FEBRUARY, february)
    # 15 February: 3 more seats for 15-28 February, 3 x 250 x 14/28 = 375, billed now.
    raised = change_quantity(seats, 5, utc(2026, 2, 15, 9), FEBRUARY, fulls, "EUR", "month")
    assert amounts(raised.lines) == [375]
    assert "Editor x 3 from 2026-02-15 to 2026-03-01 (14/28 days)" in raised.lines[0].description
    assert all(line.charge_index is None for line in raised.lines)
    # Down to 2 (no credit) and up to 6: only the sixth seat is new to February, 250 x 14/28 = 125.
    lowered = change_quantity(raised.addon, 2, utc(2026, 2, 15, 10), FEBRUARY, fulls, "EUR", "month")
    assert lowered.lines == [] and lowered.addon.quantity == 2
    again = change_quantity(lowered.addon, 6, utc(2026, 2, 15, 11), FEBRUARY, fulls, "EUR", "month")
    assert amounts(again.lines) == [125]
    # March is billed in advance for the 6 seats; February was billed in advance before, no arrears.
    [mar] = invoices(february, [again.addon], 1)
    assert amounts(mar) == [1500]


def test_a_seat_increase_in_the_period_an_addon_became_billable_leaves_its_arrears_at_the_seats_it_had() -> None:
    seats = addon(per_seat(310, name="Editor"), utc(2026, 1, 20, 8), quantity=1)
    sub = subscribed()
    # 25 January: 2 more seats for 25-31 January, 2 x 310 x 7/31 = 140, billed now.
    raised = change_quantity(seats, 3, utc(2026, 1, 25), JANUARY, fulls_of(JANUARY, sub), "EUR", "month")
    assert amounts(raised.lines) == [140]
    # 1 February: the seat it had, 20-31 January in arrears (310 x 12/31 = 120), then 3 x 310 in advance.
    [feb] = invoices(sub, [raised.addon], 1)
    assert amounts(feb) == [120, 930]


def test_a_seat_change_before_the_addon_is_billable_bills_nothing_now() -> None:
    trial = addon(per_seat(250, name="Editor"), utc(2026, 1, 20), quantity=1)
    sub = subscribed()
    changed = change_quantity(trial, 4, utc(2026, 1, 12), JANUARY, fulls_of(JANUARY, sub), "EUR", "month")
    assert changed.lines == [] and changed.addon.quantity == 4
    # Its first invoice bills the 4 seats from its billable day: 4 x 250 x 12/31 = 387.09… → 387, then 1000.
    [feb] = invoices(sub, [changed.addon], 1)
    assert amounts(feb) == [387, 1000]


# -- metered --------------------------------------------------------------------------------------------


def test_metered_addon_bills_the_units_of_its_window_and_names_the_addon() -> None:
    calls = addon(per_unit("seo_scans", "0.5", name="Scans"), utc(2026, 1, 20, 10))
    sub = subscribed()
    boundary = boundary_of(sub, cross_boundary(sub, {}).subscription)
    window = metered_window(calls, boundary)
    # Usage counts from the moment it became billable to the boundary.
    assert window == Period(utc(2026, 1, 20, 10), utc(2026, 2, 1))
    [line] = lines_at([calls], boundary, {"a1": Decimal(7)})
    # 7 x 0.5 = 3.5 → 4 (half up). No advance or arrears charge for a metered add-on.
    assert line.amount_minor == 4
    assert line.description == "SEO Booster: Scans: 7 unit(s), 2026-01-20 to 2026-02-01"
    assert (line.charge_kind, line.metric_code, line.period) == ("metered", "seo_scans", window)


def test_metered_addon_not_yet_billable_has_no_window_and_no_line() -> None:
    later = addon(per_unit("seo_scans", "0.5"), utc(2026, 2, 10))
    sub = subscribed()
    boundary = boundary_of(sub, cross_boundary(sub, {}).subscription)
    assert metered_window(later, boundary) is None
    assert lines_at([later], boundary, {"a1": Decimal(100)}) == []


def test_metered_addon_with_no_usage_still_shows_a_zero_line() -> None:
    [feb] = invoices(subscribed(), [addon(per_unit("seo_scans", 3), utc(2026, 1, 1))], 1)
    assert amounts(feb) == [0]


# -- ended add-ons --------------------------------------------------------------------------------------


def test_ended_addon_is_not_credited_for_a_period_billed_in_advance_and_not_billed_again() -> None:
    ended = addon(flat(1000), utc(2026, 1, 1), ended_at=utc(2026, 2, 10, 12))
    feb, mar = invoices(subscribed(), [ended], 2)
    assert amounts(feb) == [1000]  # live on 1 February: February in advance
    assert mar == []  # ended on 10 February: no credit, no March
    # Ended at a boundary exactly: not live there, so nothing for the period that starts there.
    assert invoices(subscribed(), [replace(ended, ended_at=utc(2026, 2, 1))], 2) == [[], []]


def test_addon_installed_and_ended_in_one_period_bills_only_its_days() -> None:
    brief = addon(flat(1000), utc(2026, 1, 10, 8), ended_at=utc(2026, 1, 20, 18))
    [feb] = invoices(subscribed(), [brief], 1)
    # 10-19 January (the end's day is not billed, as a cancellation's day is credited): 1000 x 10/31 → 323.
    assert amounts(feb) == [323]
    assert feb[0].period == Period(utc(2026, 1, 10), utc(2026, 1, 20))


def test_metered_addon_ended_mid_period_counts_usage_up_to_its_end() -> None:
    ended = addon(per_unit("seo_scans", 1), utc(2026, 1, 1), ended_at=utc(2026, 1, 20, 18))
    sub = subscribed()
    boundary = boundary_of(sub, cross_boundary(sub, {}).subscription)
    assert metered_window(ended, boundary) == Period(utc(2026, 1, 1), utc(2026, 1, 20, 18))


def test_addon_ended_before_it_became_billable_is_never_billed() -> None:
    # A plugin uninstalled during its trial.
    canceled_in_trial = addon(flat(1000), utc(2026, 2, 15), ended_at=utc(2026, 2, 3))
    assert invoices(subscribed(), [canceled_in_trial], 3) == [[], [], []]


def test_subscription_ending_at_its_boundary_bills_arrears_but_no_advance() -> None:
    sub = schedule_cancel(subscribed())
    [last] = invoices(sub, [addon(flat(1000), utc(2026, 1, 20)), addon(flat(500), utc(2026, 1, 1))], 1)
    # Only 20-31 January of the first, 1000 x 12/31 → 387; the second was billed for January in advance.
    assert amounts(last) == [387]


# -- the subscription's own trial -----------------------------------------------------------------------


def test_addon_during_the_subscriptions_trial_is_billed_at_the_trial_end_split_by_month() -> None:
    trial = make_plan("trial", [flat(2000)], currency="EUR", trial_days=14)
    sub = subscribed(utc(2026, 1, 20), trial)  # trialing 20 January to 3 February
    assert sub.current_period == Period(utc(2026, 1, 20), utc(2026, 2, 3))
    [first] = invoices(sub, [addon(flat(1000), utc(2026, 1, 25))], 1)
    # 25-31 January: 1000 x 7/31 = 225.80… → 226; 1-2 February: 1000 x 2/28 = 71.42… → 71;
    # then 3-28 February in advance, as the plan itself: 1000 x 26/28 = 928.57… → 929.
    assert amounts(first) == [226, 71, 929]
    assert [line.period for line in first] == [
        Period(utc(2026, 1, 25), utc(2026, 2, 1)),
        Period(utc(2026, 2, 1), utc(2026, 2, 3)),
        Period(utc(2026, 2, 3), utc(2026, 3, 1)),
    ]


# -- attaching ------------------------------------------------------------------------------------------


def test_a_billable_from_already_invoiced_moves_just_past_the_period_start_and_bills_it_all_in_arrears() -> None:
    sub = subscribed()  # January invoiced in advance, without the add-on
    late = addon(flat(1000), first_billable(utc(2025, 12, 1), sub.current_period.start))
    assert late.billable_from == utc(2026, 1, 1) + TICK
    feb, _ = invoices(sub, [late], 2)
    assert amounts(feb) == [1000, 1000]  # all of January in arrears, February in advance
    assert first_billable(utc(2026, 1, 20), utc(2026, 1, 1)) == utc(2026, 1, 20)


def test_input_checks() -> None:
    assert check_charge(flat(1000), "EUR").amount == Decimal(1000)
    with pytest.raises(InvalidCharge):
        check_charge({"type": "flat"}, "EUR")
    with pytest.raises(InvalidCharge):
        check_charge({"type": "flat", "amount_minor": "1", "bogus": 1}, "EUR")
    with pytest.raises(UnknownCurrency):
        check_charge(flat(1000), "XXX")
    for bad_quantity in (0, -1, 1_000_001, True, 1.5):
        with pytest.raises(InvalidAddon):
            check_quantity(bad_quantity)
    for bad_name in ("", "x" * 201, "tab\there", None):
        with pytest.raises(InvalidAddon):
            check_name(bad_name)
    with pytest.raises(InvalidAddon):
        check_moment(datetime(2026, 1, 1), "billable_from")  # naive on purpose


# -- property: each day billed once ---------------------------------------------------------------------


def _days(period: Period) -> set[date]:
    return {period.start.date() + timedelta(days=n) for n in range(period.days)}


# Hours after a midnight, often whole days (so that boundaries themselves are hit).
HOURS = st.one_of(st.integers(min_value=0, max_value=200 * 24), st.integers(0, 200).map(lambda days: days * 24))


@settings(max_examples=300, deadline=None)
@given(
    start_day=st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)),
    anchor=st.sampled_from(["calendar", "anniversary"]),
    trial_days=st.sampled_from([0, 0, 14, 45]),
    billable_after=HOURS,
    ends_after=st.one_of(st.none(), HOURS),
)
def test_over_many_boundaries_each_billable_day_is_billed_exactly_once(
    start_day: date, anchor: str, trial_days: int, billable_after: int, ends_after: int | None
) -> None:
    plan = make_plan("p", [flat(3000)], currency="EUR", trial_days=trial_days)
    sub = subscribed(utc(start_day.year, start_day.month, start_day.day), plan, anchor)
    # Attached while the current period runs, as `attach_addon` does.
    billable_from = first_billable(sub.current_period.start + timedelta(hours=billable_after), sub.current_period.start)
    ended_at = None if ends_after is None else billable_from + timedelta(hours=ends_after)
    flat_addon = addon(flat(1000), billable_from, ended_at=ended_at)
    billed: list[date] = []
    last_boundary = sub.current_period.start
    for lines in invoices(sub, [flat_addon], 9):
        for line in lines:
            billed += sorted(_days(line.period))
            assert ended_at is None or line.period.start < ended_at, "billed from or after the add-on's end"
    for _ in range(9):
        step = cross_boundary(sub, {})
        last_boundary, sub = sub.current_period.end, step.subscription
    assert len(billed) == len(set(billed)), "a day was billed twice"
    first = midnight(billable_from).date()
    assert all(day >= first for day in billed), "a day before the add-on was billable was billed"
    end = last_boundary if ended_at is None else min(last_boundary, midnight(ended_at))
    wanted = {first + timedelta(days=n) for n in range((end.date() - first).days)}
    assert wanted <= set(billed), "a billable day was not billed"
