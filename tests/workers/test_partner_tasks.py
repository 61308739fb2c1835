"""The partners' beat entries: the month close runs on the 1st and retries failed resellers on the 2nd and 3rd."""

from __future__ import annotations

from typing import Any

from workers.schedule import BEAT_SCHEDULE


def test_a_failed_month_close_is_retried_on_a_bounded_schedule() -> None:
    entry = BEAT_SCHEDULE["close-commission-month"]
    assert entry["task"] == "controlplane.partners.close_month"
    schedule: Any = entry["schedule"]
    # Three runs a month: the close, then two retries of whatever failed (closing twice changes nothing).
    assert schedule.day_of_month == {1, 2, 3}
    assert (len(schedule.hour), len(schedule.minute)) == (1, 1)
    for name in ("send-payouts", "accept-overdue-milestones", "expire-partner-checkpoints"):
        assert name in BEAT_SCHEDULE
