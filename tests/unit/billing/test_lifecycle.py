"""Worked examples, computed by hand, of a subscription's life: start, trial end, boundaries, changes,
cancellation. Every plan bills in USD unless the test says otherwise; January 2026 has 31 days."""

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from billing.catalogue.rules import Plan
from billing.errors import CurrencyMismatch, InvalidAmount, InvalidSubscriptionTransition
from billing.money import Money
from billing.periods import Period
from billing.subscriptions.lifecycle import (
    Subscription,
    cancel_now,
    change,
    cross_boundary,
    resume,
    schedule_cancel,
    start,
)
from billing.subscriptions.states import Status
from tests.unit.billing.builders import amounts, flat, make_plan, per_seat, per_unit, total_of, utc

NO_USAGE: dict[str, Decimal] = {}
BASIC = make_plan("basic", [flat(1000), per_unit("api_calls", 2)])
PRO = make_plan("pro", [flat(3000), per_unit("api_calls", 1)])
JANUARY = Period(utc(2026, 1, 1), utc(2026, 2, 1))
FEBRUARY = Period(utc(2026, 2, 1), utc(2026, 3, 1))


def active_in_january(plan: Plan = BASIC, seats: int = 1) -> Subscription:
    """A calendar subscription started on 1 January 2026 whose first boundary has been crossed."""
    sub = start(plan, seats, utc(2026, 1, 1, 9), "calendar")
    step = cross_boundary(sub, NO_USAGE)
    assert step.subscription.current_period == JANUARY
    return step.subscription


# -- start and the first period -------------------------------------------------------------------------


def test_start_without_trial_is_active_and_its_first_boundary_is_its_start() -> None:
    sub = start(BASIC, 1, utc(2026, 1, 15, 10), "calendar")
    assert sub.status is Status.ACTIVE
    assert sub.current_period == Period(utc(2026, 1, 15), utc(2026, 1, 15))
    assert sub.trial_end is None
    assert sub.anchor_date == date(2026, 1, 15)


def test_first_partial_calendar_period_bills_flat_and_seats_for_17_of_31_days() -> None:
    plan = make_plan("team", [flat(1000), per_seat(500), per_unit("api_calls", 2)])
    step = cross_boundary(start(plan, 3, utc(2026, 1, 15, 10), "calendar"), NO_USAGE)
    # Flat 1000 x 17/31 = 548.387… → 548; seats 500 x 3 x 17/31 = 822.580… → 823; no usage yet.
    assert amounts(step.lines) == [548, 823]
    assert step.invoice_period == Period(utc(2026, 1, 15), utc(2026, 2, 1))
    assert step.subscription.current_period == step.invoice_period
    assert step.subscription.status is Status.ACTIVE


def test_second_boundary_bills_usage_in_arrears_then_the_next_whole_period() -> None:
    plan = make_plan("team", [flat(1000), per_seat(500), per_unit("api_calls", 2)])
    first = cross_boundary(start(plan, 3, utc(2026, 1, 15), "calendar"), NO_USAGE)
    second = cross_boundary(first.subscription, {"api_calls": Decimal(100)})
    # Usage 15-31 Jan: 100 x 2 = 200; then February in full: 1000 and 500 x 3 = 1500.
    assert amounts(second.lines) == [200, 1000, 1500]
    assert second.lines[0].period == Period(utc(2026, 1, 15), utc(2026, 2, 1))
    assert second.invoice_period == FEBRUARY
    assert second.subscription.usage_from == utc(2026, 2, 1)


def test_zero_decimal_currency_first_partial_period_in_yen() -> None:
    plan = make_plan("jp", [flat(1000)], currency="JPY")
    step = cross_boundary(start(plan, 1, utc(2026, 1, 15), "calendar"), NO_USAGE)
    # 1000 JPY x 17/31 = 548.387… → 548 JPY.
    assert amounts(step.lines) == [548]


def test_seats_outside_the_allowed_range_are_refused() -> None:
    with pytest.raises(InvalidAmount):
        start(BASIC, 0, utc(2026, 1, 1), "calendar")
    with pytest.raises(InvalidAmount):
        start(BASIC, 1_000_001, utc(2026, 1, 1), "calendar")


# -- trial ----------------------------------------------------------------------------------------------


def test_trial_end_activates_and_bills_advance_lines_but_no_usage() -> None:
    plan = make_plan("team", [flat(1000), per_seat(500), per_unit("api_calls", 2)], trial_days=14)
    sub = start(plan, 3, utc(2026, 1, 1, 12), "calendar")
    assert sub.status is Status.TRIALING
    assert sub.trial_end == utc(2026, 1, 15)
    assert sub.current_period == Period(utc(2026, 1, 1), utc(2026, 1, 15))

    step = cross_boundary(sub, {"api_calls": Decimal(500)})
    # Usage during the trial is free. Advance: 15 Jan - 1 Feb, 17/31 days: 548 and 1500 x 17/31 → 823.
    assert step.subscription.status is Status.ACTIVE
    assert [line.charge_kind for line in step.lines] == ["flat", "per_seat"]
    assert not any(line.metric_code for line in step.lines)
    assert amounts(step.lines) == [548, 823]
    assert step.subscription.usage_from == utc(2026, 1, 15)


def test_anniversary_trial_anchors_periods_on_the_trial_end() -> None:
    plan = make_plan("team", [flat(1000)], trial_days=14)
    step = cross_boundary(start(plan, 1, utc(2026, 1, 1), "anniversary"), NO_USAGE)
    # Anchor 15 January: the first period is a whole month, 15 Jan - 15 Feb, billed in full.
    assert step.subscription.anchor_date == date(2026, 1, 15)
    assert step.invoice_period == Period(utc(2026, 1, 15), utc(2026, 2, 15))
    assert amounts(step.lines) == [1000]


# -- anniversary clamping -------------------------------------------------------------------------------


def test_anniversary_on_31_january_clamps_to_28_february_and_returns_to_31_march() -> None:
    first = cross_boundary(start(BASIC, 1, utc(2026, 1, 31), "anniversary"), NO_USAGE)
    assert first.invoice_period == Period(utc(2026, 1, 31), utc(2026, 2, 28))
    assert amounts(first.lines) == [1000]  # a whole (28-day) period: not prorated
    second = cross_boundary(first.subscription, {"api_calls": Decimal(10)})
    assert second.invoice_period == Period(utc(2026, 2, 28), utc(2026, 3, 31))
    assert amounts(second.lines) == [20, 1000]  # usage 10 x 2, then the next period
    third = cross_boundary(second.subscription, NO_USAGE)
    assert third.invoice_period == Period(utc(2026, 3, 31), utc(2026, 4, 30))


def test_anniversary_on_31_january_of_a_leap_year_ends_on_29_february() -> None:
    first = cross_boundary(start(BASIC, 1, utc(2028, 1, 31), "anniversary"), NO_USAGE)
    assert first.invoice_period == Period(utc(2028, 1, 31), utc(2028, 2, 29))
    second = cross_boundary(first.subscription, NO_USAGE)
    assert second.invoice_period == Period(utc(2028, 2, 29), utc(2028, 3, 31))


# -- yearly plans ---------------------------------------------------------------------------------------


def test_yearly_calendar_plan_started_1_july_is_prorated_over_the_year() -> None:
    plan = make_plan("annual", [flat(120_000)], interval="year")
    step = cross_boundary(start(plan, 1, utc(2026, 7, 1), "calendar"), NO_USAGE)
    # 1 Jul 2026 - 1 Jan 2027 = 184 of 365 days: 120000 x 184/365 = 60493.150… → 60493.
    assert step.invoice_period == Period(utc(2026, 7, 1), utc(2027, 1, 1))
    assert amounts(step.lines) == [60_493]
    nxt = cross_boundary(step.subscription, NO_USAGE)
    assert nxt.invoice_period == Period(utc(2027, 1, 1), utc(2028, 1, 1))
    assert amounts(nxt.lines) == [120_000]


def test_yearly_anniversary_plan_bills_a_whole_year_from_its_start() -> None:
    plan = make_plan("annual", [flat(120_000)], interval="year")
    step = cross_boundary(start(plan, 1, utc(2026, 3, 10), "anniversary"), NO_USAGE)
    assert step.invoice_period == Period(utc(2026, 3, 10), utc(2027, 3, 10))
    assert amounts(step.lines) == [120_000]


# -- upgrades -------------------------------------------------------------------------------------------


def test_immediate_upgrade_bills_old_usage_a_credit_and_a_charge() -> None:
    sub = active_in_january(BASIC)
    result = change(sub, PRO, 1, utc(2026, 1, 11, 14), {"api_calls": Decimal(100)})
    # Usage 1-11 Jan on basic: 100 x 2 = 200.
    # Remaining 11 Jan - 1 Feb = 21 of 31 days.
    # Credit: -(1000 x 21/31) = -677.419… → -677.  Charge: 3000 x 21/31 = 2032.258… → 2032.
    assert (result.direction, result.timing) == ("upgrade", "immediate")
    assert amounts(result.lines) == [200, -677, 2032]
    assert [line.charge_kind for line in result.lines] == ["metered", "proration", "proration"]
    # Usage is billed to the moment of the change; prices prorate by whole days.
    assert result.lines[0].period == Period(utc(2026, 1, 1), utc(2026, 1, 11, 14))
    assert total_of(result.lines) == 1555
    after = result.subscription
    assert after.plan is PRO
    assert after.usage_from == utc(2026, 1, 11, 14)
    assert after.current_period == JANUARY
    assert after.status is Status.ACTIVE


def test_usage_after_an_upgrade_is_billed_on_the_new_plan_at_the_boundary() -> None:
    upgraded = change(active_in_january(BASIC), PRO, 1, utc(2026, 1, 11), NO_USAGE).subscription
    step = cross_boundary(upgraded, {"api_calls": Decimal(50)})
    # 11 Jan - 1 Feb on pro: 50 x 1 = 50; then pro's February: 3000.
    assert amounts(step.lines) == [50, 3000]
    assert step.lines[0].period == Period(utc(2026, 1, 11), utc(2026, 2, 1))


def test_more_seats_is_an_immediate_upgrade_without_billing_usage() -> None:
    plan = make_plan("team", [per_seat(500), per_unit("api_calls", 2)])
    sub = active_in_january(plan, seats=2)
    result = change(sub, plan, 5, utc(2026, 1, 11), {"api_calls": Decimal(100)})
    # Credit: -(500 x 2 x 21/31) = -677.419… → -677.  Charge: 500 x 5 x 21/31 = 1693.548… → 1694.
    assert result.direction == "upgrade"
    assert amounts(result.lines) == [-677, 1694]
    assert result.subscription.seats == 5
    assert result.subscription.usage_from == utc(2026, 1, 1)  # same plan: usage keeps accruing


def test_upgrade_to_a_yearly_plan_charges_the_rest_of_the_year() -> None:
    annual = make_plan("annual", [flat(15_000)], interval="year")  # 1250 a month > 1000
    result = change(active_in_january(make_plan("monthly", [flat(1000)])), annual, 1, utc(2026, 1, 11), NO_USAGE)
    # Credit: -(1000 x 21/31) → -677.  Charge: 11 Jan 2026 - 1 Jan 2027 = 355 of 365 days:
    # 15000 x 355/365 = 14589.041… → 14589.
    assert result.direction == "upgrade"
    assert amounts(result.lines) == [-677, 14_589]
    assert result.subscription.current_period == Period(utc(2026, 1, 11), utc(2027, 1, 1))


def test_three_decimal_currency_upgrade_prorates_in_fils() -> None:
    small = make_plan("small", [flat(10_000)], currency="KWD")
    large = make_plan("large", [flat(25_000)], currency="KWD")
    result = change(active_in_january(small), large, 1, utc(2026, 1, 11), NO_USAGE)
    # Credit: -(10000 x 21/31) = -6774.193… → -6774.  Charge: 25000 x 21/31 = 16935.483… → 16935.
    assert amounts(result.lines) == [-6774, 16_935]
    assert Money(total_of(result.lines), "KWD").format() == "10.161 KWD"


def test_upgrade_policy_next_period_defers_the_upgrade() -> None:
    basic = make_plan("basic", [flat(1000)], upgrade="next_period")
    result = change(active_in_january(basic), PRO, 1, utc(2026, 1, 11), NO_USAGE)
    assert (result.direction, result.timing) == ("upgrade", "next_period")
    assert result.lines == []
    assert result.subscription.pending_plan is PRO


# -- downgrades -----------------------------------------------------------------------------------------


def test_downgrade_waits_for_the_next_period_then_applies() -> None:
    sub = active_in_january(PRO)
    result = change(sub, BASIC, 1, utc(2026, 1, 11), {"api_calls": Decimal(100)})
    assert (result.direction, result.timing) == ("downgrade", "next_period")
    assert result.lines == []
    assert result.subscription.plan is PRO
    assert result.subscription.pending_plan is BASIC
    assert result.subscription.pending_seats == 1

    step = cross_boundary(result.subscription, {"api_calls": Decimal(40)})
    # January's usage on pro: 40 x 1 = 40; February on basic: 1000.
    assert amounts(step.lines) == [40, 1000]
    assert step.subscription.plan is BASIC
    assert step.subscription.pending_plan is None
    assert step.invoice_period == FEBRUARY


def test_fewer_seats_is_a_downgrade_applied_at_the_next_period() -> None:
    plan = make_plan("team", [per_seat(500)])
    result = change(active_in_january(plan, seats=5), plan, 2, utc(2026, 1, 11), NO_USAGE)
    assert result.direction == "downgrade"
    assert result.lines == []
    step = cross_boundary(result.subscription, NO_USAGE)
    assert step.subscription.seats == 2
    assert amounts(step.lines) == [1000]  # 500 x 2


def test_yearly_price_is_normalised_to_a_month_to_tell_a_downgrade() -> None:
    annual = make_plan("annual", [flat(11_000)], interval="year")  # 916.67 a month < 1000
    result = change(active_in_january(make_plan("monthly", [flat(1000)])), annual, 1, utc(2026, 1, 11), NO_USAGE)
    assert (result.direction, result.timing) == ("downgrade", "next_period")
    step = cross_boundary(result.subscription, NO_USAGE)
    # From 1 Feb the calendar year's rest: 334 of 365 days: 11000 x 334/365 = 10065.753… → 10066.
    assert step.invoice_period == Period(utc(2026, 2, 1), utc(2027, 1, 1))
    assert amounts(step.lines) == [10_066]


def test_downgrade_policy_immediate_credits_the_old_price_and_charges_the_new() -> None:
    pro = make_plan("pro", [flat(3000)], downgrade="immediate")
    result = change(active_in_january(pro), BASIC, 1, utc(2026, 1, 11), NO_USAGE)
    # Credit: -(3000 x 21/31) → -2032.  Charge: 1000 x 21/31 → 677.
    assert (result.direction, result.timing) == ("downgrade", "immediate")
    assert amounts(result.lines) == [-2032, 677]


def test_changing_back_to_the_current_plan_drops_a_scheduled_change() -> None:
    pending = change(active_in_january(PRO), BASIC, 1, utc(2026, 1, 11), NO_USAGE).subscription
    result = change(pending, PRO, 1, utc(2026, 1, 12), NO_USAGE)
    assert result.direction == "none"
    assert result.lines == []
    assert result.subscription.pending_plan is None


def test_a_change_of_seats_or_plan_version_during_a_trial_keeps_the_trial_without_lines() -> None:
    trial_basic = make_plan("basic", [flat(1000)], trial_days=14)
    newer = make_plan("basic", [flat(2000)], trial_days=14, plan_id="plan-basic-2", version=2)
    sub = start(trial_basic, 1, utc(2026, 1, 1), "calendar")
    result = change(sub, newer, 3, utc(2026, 1, 5), NO_USAGE)
    assert result.lines == []
    assert result.subscription.plan is newer
    assert result.subscription.seats == 3
    assert result.subscription.status is Status.TRIALING


def test_a_trial_is_not_moved_to_another_plan_code_it_ends_and_the_new_plan_is_billed_from_today() -> None:
    trial_basic = make_plan("basic", [flat(1000)], trial_days=14)
    sub = start(trial_basic, 1, utc(2026, 1, 1), "calendar")
    result = change(sub, PRO, 3, utc(2026, 1, 5, 10), {"api_calls": Decimal(99)})
    after = result.subscription
    assert (after.status, after.plan, after.seats) == (Status.ACTIVE, PRO, 3)
    assert after.current_period == Period(utc(2026, 1, 5), utc(2026, 2, 1))
    assert after.usage_from == utc(2026, 1, 5, 10)  # usage during the trial is not billed
    assert after.trial_end == utc(2026, 1, 5, 10)
    assert result.direction == "trial_ended"
    assert [line.charge_kind for line in result.lines] == ["flat"]
    assert amounts(result.lines) == [2613]  # 3000 x 27/31 days, half up


def test_change_to_a_plan_in_another_currency_raises_currency_mismatch() -> None:
    euro = make_plan("euro", [flat(5000)], currency="EUR")
    with pytest.raises(CurrencyMismatch):
        change(active_in_january(BASIC), euro, 1, utc(2026, 1, 11), NO_USAGE)


def test_change_of_a_paused_subscription_raises_with_its_status() -> None:
    paused = replace(active_in_january(BASIC), status=Status.PAUSED)
    with pytest.raises(InvalidSubscriptionTransition) as caught:
        change(paused, PRO, 1, utc(2026, 1, 11), NO_USAGE)
    assert caught.value.extra["current_status"] == "paused"


# -- cancellation ---------------------------------------------------------------------------------------


def test_cancel_now_bills_accrued_usage_and_credits_the_unused_advance_charges() -> None:
    plan = make_plan("team", [flat(1000), per_seat(500), per_unit("api_calls", 2)])
    sub = active_in_january(plan, seats=3)
    result = cancel_now(sub, utc(2026, 1, 21, 16), {"api_calls": Decimal(150)})
    # Usage 1-21 Jan: 150 x 2 = 300.  Unused 21 Jan - 1 Feb = 11 of 31 days:
    # flat -(1000 x 11/31) = -354.838… → -355; seats -(1500 x 11/31) = -532.258… → -532.
    assert amounts(result.usage_lines) == [300]
    assert amounts(result.credit_lines) == [-355, -532]
    assert all(line.charge_kind == "proration" for line in result.credit_lines)
    assert result.usage_period == Period(utc(2026, 1, 1), utc(2026, 1, 21, 16))
    assert result.subscription.status is Status.CANCELED
    assert result.subscription.usage_from == utc(2026, 1, 21, 16)


def test_cancel_now_during_a_trial_bills_nothing() -> None:
    plan = make_plan("team", [flat(1000), per_unit("api_calls", 2)], trial_days=14)
    result = cancel_now(start(plan, 1, utc(2026, 1, 1), "calendar"), utc(2026, 1, 5), {"api_calls": Decimal(9)})
    assert (result.usage_lines, result.credit_lines) == ([], [])
    assert result.subscription.status is Status.CANCELED


def test_cancel_now_of_a_canceled_subscription_raises_with_its_status() -> None:
    canceled = cancel_now(active_in_january(BASIC), utc(2026, 1, 21), NO_USAGE).subscription
    with pytest.raises(InvalidSubscriptionTransition) as caught:
        cancel_now(canceled, utc(2026, 1, 22), NO_USAGE)
    assert caught.value.extra == {"current_status": "canceled"}


def test_scheduled_cancel_ends_at_the_boundary_with_only_usage_lines() -> None:
    sub = schedule_cancel(active_in_january(BASIC))
    assert sub.cancel_at_period_end
    assert sub.status is Status.ACTIVE
    step = cross_boundary(sub, {"api_calls": Decimal(40)})
    # January's usage 40 x 2 = 80; no February charge.
    assert amounts(step.lines) == [80]
    assert all(line.charge_kind == "metered" for line in step.lines)
    assert step.subscription.status is Status.CANCELED
    assert step.invoice_period == JANUARY


def test_scheduled_cancel_during_a_trial_ends_at_the_trial_end_without_lines() -> None:
    plan = make_plan("team", [flat(1000), per_unit("api_calls", 2)], trial_days=14)
    step = cross_boundary(schedule_cancel(start(plan, 1, utc(2026, 1, 1), "calendar")), {"api_calls": Decimal(9)})
    assert step.lines == []
    assert step.subscription.status is Status.CANCELED


def test_resume_undoes_a_scheduled_cancel() -> None:
    sub = resume(schedule_cancel(active_in_january(BASIC)))
    assert not sub.cancel_at_period_end
    step = cross_boundary(sub, {"api_calls": Decimal(40)})
    assert step.subscription.status is Status.ACTIVE
    assert amounts(step.lines) == [80, 1000]


def test_resume_of_a_canceled_subscription_raises() -> None:
    canceled = cancel_now(active_in_january(BASIC), utc(2026, 1, 21), NO_USAGE).subscription
    with pytest.raises(InvalidSubscriptionTransition) as caught:
        resume(canceled)
    assert caught.value.extra["current_status"] == "canceled"
