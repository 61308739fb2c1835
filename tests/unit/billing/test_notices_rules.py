"""What billing's notices tell, decided without a database: a failed payment's next retry (the dunning
schedule's, agreeing with `decide`), which changes of a subscription are an update, and the scans' windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from billing.notices.rules import ended, expiring_month, subscription_changes, trial_notice_window
from billing.payments.dunning import Action, decide, next_retry_at

SCHEDULE = (1, 3, 5, 7)
FIRST = datetime(2031, 3, 10, 12, tzinfo=UTC)


def test_the_next_retry_is_the_date_decide_attempts_it() -> None:
    for last_step in (None, 1, 2, 3):
        retry = next_retry_at(FIRST, last_step, FIRST, SCHEDULE)
        assert retry is not None
        before = decide(
            first_failure=FIRST,
            last_step=last_step,
            has_pending=False,
            as_of=retry - timedelta(seconds=1),
            schedule=SCHEDULE,
        )
        at = decide(first_failure=FIRST, last_step=last_step, has_pending=False, as_of=retry, schedule=SCHEDULE)
        assert (before.action, at.action) == (Action.WAIT, Action.ATTEMPT), last_step


def test_no_retry_is_left_after_the_last_step_and_a_passed_date_means_the_next_run() -> None:
    assert next_retry_at(FIRST, 4, FIRST, SCHEDULE) is None
    assert next_retry_at(None, None, FIRST, SCHEDULE) is None
    late = FIRST + timedelta(days=2)  # a failure by hand after the first retry's date
    assert next_retry_at(FIRST, None, late, SCHEDULE) == late
    assert next_retry_at(FIRST, 1, late, SCHEDULE) == FIRST + timedelta(days=3)


def _row(**changes: Any) -> dict[str, Any]:
    base = {
        "status": "active",
        "plan_id": "p1",
        "seats": 2,
        "pending_plan_id": None,
        "pending_seats": None,
        "cancel_at_period_end": False,
    }
    return {**base, **changes}


def test_what_a_subscription_write_tells() -> None:
    assert subscription_changes(_row(), _row()) == ()  # a period renewed as it was
    assert subscription_changes(_row(status="trialing"), _row()) == ("trial_converted",)
    assert subscription_changes(_row(), _row(plan_id="p2", seats=5)) == ("plan", "seats")
    scheduled = _row(pending_plan_id="p3", pending_seats=1)
    assert subscription_changes(_row(), scheduled) == ("change_scheduled",)
    assert subscription_changes(scheduled, _row()) == ("change_unscheduled",)
    # Applied at the boundary: the plan changed, nothing was dropped.
    assert subscription_changes(scheduled, _row(plan_id="p3", seats=1)) == ("plan", "seats")
    assert subscription_changes(_row(), _row(cancel_at_period_end=True)) == ("cancel_scheduled",)
    assert subscription_changes(_row(cancel_at_period_end=True), _row()) == ("resumed",)
    assert subscription_changes(_row(), _row(status="past_due")) == ("past_due",)
    assert subscription_changes(_row(status="past_due"), _row()) == ("active_again",)
    # An end is no update, but a cancellation.
    assert subscription_changes(_row(), _row(status="canceled")) == ()
    assert ended(_row(), _row(status="canceled")) and not ended(_row(status="canceled"), _row(status="canceled"))


def test_the_scans_windows() -> None:
    now = datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert trial_notice_window(now) == (now, now + timedelta(days=3))
    assert expiring_month(now) == (2032, 1)
    assert expiring_month(datetime(2032, 1, 1, tzinfo=UTC)) == (2032, 2)
    assert expiring_month(datetime(2031, 11, 30, tzinfo=UTC)) == (2031, 12)
