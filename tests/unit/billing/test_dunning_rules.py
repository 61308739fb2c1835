"""The dunning rule: dates, not counts, decide retries; attempts by hand have no step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.payments.dunning import Action, Decision, decide, due_step, exhausted, past_last_date

SCHEDULE = (1, 3, 5, 7)
FAILED = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _decide(as_of: datetime, last_step: int | None, *, first_failure: datetime | None = FAILED) -> Decision:
    return decide(first_failure=first_failure, last_step=last_step, has_pending=False, as_of=as_of, schedule=SCHEDULE)


def test_an_invoice_never_tried_is_attempted_at_step_0() -> None:
    assert _decide(FAILED, None, first_failure=None) == Decision(Action.ATTEMPT, 0)


def test_a_retry_comes_on_its_date_and_not_before() -> None:
    assert _decide(FAILED + timedelta(hours=23), 0) == Decision(Action.WAIT)
    assert _decide(FAILED + timedelta(days=1), 0) == Decision(Action.ATTEMPT, 1)
    assert _decide(FAILED + timedelta(days=2), 1) == Decision(Action.WAIT)


def test_a_first_failure_by_hand_stands_for_step_0() -> None:
    assert _decide(FAILED, None) == Decision(Action.WAIT)
    assert _decide(FAILED + timedelta(days=1), None) == Decision(Action.ATTEMPT, 1)


def test_missed_runs_make_one_attempt_for_the_latest_step_due() -> None:
    assert due_step(FAILED, FAILED + timedelta(days=6), SCHEDULE) == 3
    assert _decide(FAILED + timedelta(days=30), 0) == Decision(Action.ATTEMPT, 4)


def test_after_the_last_step_failed_the_invoice_is_given_up() -> None:
    assert _decide(FAILED + timedelta(days=7), 4) == Decision(Action.GIVE_UP)
    assert exhausted(4, SCHEDULE) and not exhausted(3, SCHEDULE) and not exhausted(None, SCHEDULE)


def test_an_attempt_whose_answer_was_lost_is_sent_again_first() -> None:
    pending = decide(first_failure=FAILED, last_step=4, has_pending=True, as_of=FAILED, schedule=SCHEDULE)
    assert pending == Decision(Action.RESEND)


def test_the_last_date_counts_from_the_start_given() -> None:
    assert not past_last_date(FAILED, FAILED + timedelta(days=6, hours=23), SCHEDULE)
    assert past_last_date(FAILED, FAILED + timedelta(days=7), SCHEDULE)
