"""When to try collecting an unpaid invoice again, and when to give up. Pure.

The first attempt follows finalization (step 0); after a failure, retries come at the schedule's offsets from
the first failure (default +1, +3, +5, +7 days: steps 1 to 4). When the last retry fails, the invoice is
uncollectible.

The schedule runs on dates, not on counts: an attempt made by hand (`POST /v1/invoices/{id}/pay`) has no step,
so it neither uses up a retry nor pushes the schedule back, and an invoice still unpaid after its last step
is given up whatever was tried by hand. Missed runs do not pile up: one attempt stands for every step whose
date has come.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

DEFAULT_SCHEDULE_DAYS = (1, 3, 5, 7)


class Action(enum.StrEnum):
    WAIT = "wait"
    ATTEMPT = "attempt"
    RESEND = "resend"  # an attempt whose outcome is unknown: sent again with its own key
    GIVE_UP = "give_up"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    step: int | None = None  # the dunning step of a new attempt


def due_step(first_failure: datetime, as_of: datetime, schedule: Sequence[int]) -> int:
    """The latest retry step whose date has come (1 to len(schedule)); 0 before the first retry's date."""
    return sum(1 for days in schedule if first_failure + timedelta(days=days) <= as_of)


def decide(
    *,
    first_failure: datetime | None,
    last_step: int | None,
    has_pending: bool,
    as_of: datetime,
    schedule: Sequence[int],
) -> Decision:
    """What the collection run does with an unpaid invoice: `first_failure` is its earliest failed attempt
    (by hand or not), `last_step` the highest step the run itself has attempted (None: none yet)."""
    if has_pending:
        return Decision(Action.RESEND)
    if first_failure is None:
        return Decision(Action.ATTEMPT, 0) if last_step is None else Decision(Action.WAIT)
    done = last_step or 0  # a first failure by hand stands for step 0
    if done >= len(schedule):
        return Decision(Action.GIVE_UP)
    due = due_step(first_failure, as_of, schedule)
    return Decision(Action.ATTEMPT, due) if due > done else Decision(Action.WAIT)


def past_last_date(start: datetime, as_of: datetime, schedule: Sequence[int]) -> bool:
    """True once the schedule's last date, counted from `start`, has come. An invoice that could never be
    tried (no card) counts from its issue, so it cannot escape dunning either."""
    return as_of >= start + timedelta(days=schedule[-1] if schedule else 0)


def exhausted(step: int | None, schedule: Sequence[int]) -> bool:
    """True once the attempt of the schedule's last step has failed."""
    return step is not None and step >= len(schedule)


def next_retry_at(
    first_failure: datetime | None, last_step: int | None, now: datetime, schedule: Sequence[int]
) -> datetime | None:
    """From when the collection run tries again an invoice whose attempt has just failed (what a failed
    payment's notice tells): the date of the step after the last one the run attempted, counted from the first
    failure, or `now` when that date has passed already (the next run tries). None when no retry is left: the
    schedule is used up, and the next run gives the invoice up."""
    if first_failure is None:
        return None
    done = last_step or 0
    if done >= len(schedule):
        return None
    return max(first_failure + timedelta(days=schedule[done]), now)
