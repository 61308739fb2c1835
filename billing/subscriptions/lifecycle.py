"""What happens to a subscription, and which lines it bills, at each step of its life. Pure.

The shell loads a `Subscription`, the usage per metric for the window it asks about, calls one of these,
and writes what comes back. Usage is billed in arrears over `[usage_from, boundary)`; advance charges
cover the period that starts at the boundary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

from billing.catalogue.rules import Plan
from billing.errors import CurrencyMismatch, InvalidAmount
from billing.periods import Anchor, Period, add_days, full_period_containing, midnight, period_from
from billing.rating import Line, Usage, advance_lines, metered_lines, proration_lines
from billing.subscriptions.states import Event, Status, next_status

MAX_SEATS = 1_000_000


@dataclass(frozen=True, slots=True)
class Subscription:
    status: Status
    plan: Plan
    seats: int
    anchor: Anchor
    anchor_date: date
    current_period: Period
    usage_from: datetime
    trial_end: datetime | None = None
    cancel_at_period_end: bool = False
    pending_plan: Plan | None = None
    pending_seats: int | None = None

    def full_period(self) -> Period:
        """The whole period the current one is part of (a first calendar period may be shorter)."""
        return full_period_containing(self.current_period.start, self.plan.interval, self.anchor, self.anchor_date)


@dataclass(frozen=True, slots=True)
class Step:
    subscription: Subscription
    lines: list[Line]
    invoice_period: Period


def check_seats(seats: int) -> None:
    if not 1 <= seats <= MAX_SEATS:
        raise InvalidAmount(f"seats must be between 1 and {MAX_SEATS}")


def usage_lines(plan: Plan, usage: Mapping[str, Usage], window: Period) -> list[Line]:
    """The metered charges of `plan` for the units used in `window` (a line even for zero units)."""
    lines: list[Line] = []
    for index, charge in enumerate(plan.charges):
        if charge.metric_code is not None:
            lines.extend(metered_lines(charge, index, usage.get(charge.metric_code, Decimal(0)), window))
    return lines


def start(plan: Plan, seats: int, start_at: datetime, anchor: Anchor, *, trial: bool = True) -> Subscription:
    """A new subscription. With a trial (the plan has one and `trial` allows it: a tenant gets a plan's trial
    once) it waits for the trial's end; without one, its first boundary is its start, which the caller
    crosses at once to bill the first (possibly partial) period."""
    check_seats(seats)
    begin = midnight(start_at)
    if plan.trial_days > 0 and trial:
        trial_end = add_days(begin, plan.trial_days)
        return Subscription(
            status=Status.TRIALING,
            plan=plan,
            seats=seats,
            anchor=anchor,
            anchor_date=trial_end.date(),
            current_period=Period(begin, trial_end),
            usage_from=begin,
            trial_end=trial_end,
        )
    return Subscription(
        status=Status.ACTIVE,
        plan=plan,
        seats=seats,
        anchor=anchor,
        anchor_date=begin.date(),
        current_period=Period(begin, begin),
        usage_from=begin,
    )


def usage_window(sub: Subscription) -> Period:
    return Period(sub.usage_from, sub.current_period.end)


def cross_boundary(sub: Subscription, usage: Mapping[str, Usage]) -> Step:
    """Bill the boundary at the end of the current period: usage of the window just ended (none for a
    trial), then the next period's advance charges, unless the subscription ends here."""
    boundary = sub.current_period.end
    window = usage_window(sub)
    billed_usage = sub.status != Status.TRIALING and window.start < window.end
    lines = usage_lines(sub.plan, usage, window) if billed_usage else []
    if sub.cancel_at_period_end:
        ended = replace(sub, status=next_status(sub.status, Event.CANCEL), usage_from=boundary)
        return Step(ended, lines, window)
    event = Event.TRIAL_END if sub.status == Status.TRIALING else Event.PERIOD_END
    plan = sub.pending_plan or sub.plan
    seats = sub.pending_seats or sub.seats
    period = period_from(boundary, plan.interval, sub.anchor, sub.anchor_date)
    full = full_period_containing(boundary, plan.interval, sub.anchor, sub.anchor_date)
    lines += advance_lines(plan, seats, period, full)
    after = replace(
        sub,
        status=next_status(sub.status, event),
        plan=plan,
        seats=seats,
        current_period=period,
        usage_from=boundary,
        pending_plan=None,
        pending_seats=None,
    )
    return Step(after, lines, period)


@dataclass(frozen=True, slots=True)
class Change:
    subscription: Subscription
    lines: list[Line]  # empty for a scheduled change or a change during a trial
    direction: str  # "upgrade" | "downgrade" | "none" | "trial_ended" (billed at once, like an upgrade)
    timing: str  # "immediate" | "next_period"


def change(sub: Subscription, plan: Plan, seats: int, at: datetime, usage: Mapping[str, Usage]) -> Change:
    """Move to `plan` with `seats` at `at`. `usage` is the old plan's usage from `usage_from` to `at`:
    prices prorate by whole days, usage is billed to the moment.

    Upgrade or downgrade is decided on the monthly-normalised recurring price (more seats is more);
    the old plan's proration policy decides whether it applies now or at the next period.
    """
    check_seats(seats)
    if plan.currency != sub.plan.currency:
        raise CurrencyMismatch(f"the subscription bills in {sub.plan.currency}; plan {plan.code} is in {plan.currency}")
    after_status = next_status(sub.status, Event.CHANGE)
    if plan.id == sub.plan.id and seats == sub.seats:
        # Same as now: also drops a scheduled change, so repeating a request converges.
        return Change(replace(sub, pending_plan=None, pending_seats=None), [], "none", "immediate")
    if sub.status == Status.TRIALING:
        if plan.code != sub.plan.code:
            return _end_trial(sub, plan, seats, at)
        # Seats, or another version of the same plan: the trial goes on (a trial is one per plan code).
        return Change(
            replace(sub, plan=plan, seats=seats, pending_plan=None, pending_seats=None), [], "none", "immediate"
        )
    # At an equal price (a flat-only plan), more seats still counts as an upgrade and fewer as a downgrade.
    upgrade = (plan.monthly_amount(seats), seats) >= (sub.plan.monthly_amount(sub.seats), sub.seats)
    direction = "upgrade" if upgrade else "downgrade"
    timing = sub.plan.upgrade if upgrade else sub.plan.downgrade
    if timing == "next_period":
        return Change(replace(sub, pending_plan=plan, pending_seats=seats, status=after_status), [], direction, timing)
    day = midnight(at)
    old_full = sub.full_period()
    lines = proration_lines(
        sub.plan, sub.seats, Period(day, sub.current_period.end), old_full, credit=True, change_at=day
    )
    if plan.interval == sub.plan.interval:
        new_period, new_full = sub.current_period, old_full
    else:
        new_full = full_period_containing(day, plan.interval, sub.anchor, sub.anchor_date)
        new_period = Period(day, new_full.end)
    lines += proration_lines(plan, seats, Period(day, new_period.end), new_full, credit=False, change_at=day)
    usage_from = sub.usage_from
    if plan.id != sub.plan.id:
        # Usage until this moment is billed on the plan it was used under.
        lines = usage_lines(sub.plan, usage, Period(sub.usage_from, at)) + lines
        usage_from = at
    after = replace(
        sub,
        status=after_status,
        plan=plan,
        seats=seats,
        current_period=new_period,
        usage_from=usage_from,
        pending_plan=None,
        pending_seats=None,
    )
    return Change(after, lines, direction, timing)


def _end_trial(sub: Subscription, plan: Plan, seats: int, at: datetime) -> Change:
    """A trial is of its plan code: moving to another code ends it now, and the new plan is billed from today
    as a subscription started without a trial (its first, possibly partial, period in advance). Usage during
    the trial stays unbilled: the new window starts at `at`."""
    day = midnight(at)
    started = replace(
        sub,
        status=Status.TRIALING,
        plan=plan,
        seats=seats,
        anchor_date=day.date(),
        current_period=Period(day, day),
        usage_from=day,
        cancel_at_period_end=False,
        pending_plan=None,
        pending_seats=None,
    )
    step = cross_boundary(started, {})
    after = replace(
        step.subscription, usage_from=max(at, day), trial_end=at, cancel_at_period_end=sub.cancel_at_period_end
    )
    return Change(after, step.lines, "trial_ended", "immediate")


@dataclass(frozen=True, slots=True)
class Cancellation:
    subscription: Subscription
    usage_lines: list[Line]  # accrued usage, billed at once
    credit_lines: list[Line]  # the unused part of advance charges, as negative lines
    usage_period: Period


def cancel_now(sub: Subscription, at: datetime, usage: Mapping[str, Usage]) -> Cancellation:
    status = next_status(sub.status, Event.CANCEL)
    day = midnight(at)
    window = Period(sub.usage_from, max(at, sub.usage_from))
    if sub.status == Status.TRIALING:
        return Cancellation(replace(sub, status=status, usage_from=window.end), [], [], window)
    used = usage_lines(sub.plan, usage, window)
    unused = Period(day, sub.current_period.end)
    credits = proration_lines(sub.plan, sub.seats, unused, sub.full_period(), credit=True, change_at=day)
    ended = replace(sub, status=status, usage_from=window.end, cancel_at_period_end=False)
    return Cancellation(ended, used, credits, window)


def schedule_cancel(sub: Subscription) -> Subscription:
    return replace(sub, status=next_status(sub.status, Event.SCHEDULE_CANCEL), cancel_at_period_end=True)


def resume(sub: Subscription) -> Subscription:
    return replace(sub, status=next_status(sub.status, Event.RESUME), cancel_at_period_end=False)
