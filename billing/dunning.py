"""When to try collecting an unpaid invoice again, and when to give up. Pure.

The first attempt follows finalization; after a failure, retries come at the schedule's offsets from the
first failure (default +1, +3, +5, +7 days). When the last retry fails, the invoice is uncollectible.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

DEFAULT_SCHEDULE_DAYS = (1, 3, 5, 7)


def next_attempt_at(first_failure: datetime | None, attempts: int, schedule: Sequence[int]) -> datetime | None:
    """When the next attempt is due, after `attempts` failed ones; None once the schedule is used up."""
    if attempts == 0 or first_failure is None:
        raise ValueError("the first attempt is not a retry")
    if attempts > len(schedule):
        return None
    return first_failure + timedelta(days=schedule[attempts - 1])


def exhausted(attempts: int, schedule: Sequence[int]) -> bool:
    """True once the first attempt and every retry have failed."""
    return attempts >= len(schedule) + 1
