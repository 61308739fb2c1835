"""What billing's notices say, decided without a database: which changes of a subscription are told, which
trials and cards a scan looks for. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

# `subscription.trial_will_end` is told this long before the trial ends.
TRIAL_NOTICE = timedelta(days=3)

# The changes `subscription.updated` names, in the order `change` picks the first of.
TRIAL_CONVERTED = "trial_converted"
PLAN = "plan"
SEATS = "seats"
CHANGE_SCHEDULED = "change_scheduled"
CHANGE_UNSCHEDULED = "change_unscheduled"
CANCEL_SCHEDULED = "cancel_scheduled"
RESUMED = "resumed"
PAST_DUE = "past_due"
ACTIVE_AGAIN = "active_again"
CHANGES = (
    TRIAL_CONVERTED,
    PLAN,
    SEATS,
    CHANGE_SCHEDULED,
    CHANGE_UNSCHEDULED,
    CANCEL_SCHEDULED,
    RESUMED,
    PAST_DUE,
    ACTIVE_AGAIN,
)


def subscription_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[str, ...]:
    """What `subscription.updated` tells of a subscription row written from `before` to `after` (rows with
    status, plan_id, seats, pending_plan_id, pending_seats, cancel_at_period_end); empty when nothing a tenant
    cares about changed (a period renewed as it was) or when the subscription ended (that is
    `subscription.canceled`)."""
    if after["status"] == "canceled":
        return ()
    changes: list[str] = []
    if before["status"] == "trialing" and after["status"] != "trialing":
        changes.append(TRIAL_CONVERTED)
    if after["plan_id"] != before["plan_id"]:
        changes.append(PLAN)
    if after["seats"] != before["seats"]:
        changes.append(SEATS)
    pending_before = (before["pending_plan_id"], before["pending_seats"])
    pending_after = (after["pending_plan_id"], after["pending_seats"])
    if pending_after != pending_before:
        if pending_after != (None, None):
            changes.append(CHANGE_SCHEDULED)
        elif PLAN not in changes and SEATS not in changes:  # dropped, not applied at the boundary
            changes.append(CHANGE_UNSCHEDULED)
    if after["cancel_at_period_end"] and not before["cancel_at_period_end"]:
        changes.append(CANCEL_SCHEDULED)
    elif before["cancel_at_period_end"] and not after["cancel_at_period_end"]:
        changes.append(RESUMED)
    if after["status"] == "past_due" and before["status"] != "past_due":
        changes.append(PAST_DUE)
    elif before["status"] == "past_due" and after["status"] == "active":
        changes.append(ACTIVE_AGAIN)
    return tuple(changes)


def ended(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """The write ended the subscription: `subscription.canceled`."""
    return after["status"] == "canceled" and before["status"] != "canceled"


def trial_notice_window(now: datetime) -> tuple[datetime, datetime]:
    """The trial ends a scan at `now` tells of: after now, at most `TRIAL_NOTICE` ahead (both as an
    exclusive-inclusive pair `(now, now + 3 days]`)."""
    return now, now + TRIAL_NOTICE


def expiring_month(now: datetime) -> tuple[int, int]:
    """(year, month) of the cards a scan at `now` tells of: those whose last valid month is the calendar month
    after `now`'s (a card valid through January is told of during December)."""
    return (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
