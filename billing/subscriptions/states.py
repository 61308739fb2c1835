"""The subscription state machine as a table. Pure.

`trialing` → `active` (trial ends) → `past_due` (a payment fails) → `canceled`, plus `paused`.
Anything not in the table is illegal and the caller answers 409 with the current state.
"""

from __future__ import annotations

import enum

from billing.errors import InvalidSubscriptionTransition


class Status(enum.StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    PAUSED = "paused"
    CANCELED = "canceled"


class Event(enum.StrEnum):
    TRIAL_END = "trial_end"
    PERIOD_END = "period_end"
    CHANGE = "change"
    SCHEDULE_CANCEL = "schedule_cancel"
    RESUME = "resume"
    CANCEL = "cancel"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAUSE = "pause"
    UNPAUSE = "unpause"


S, E = Status, Event
TRANSITIONS: dict[tuple[Status, Event], Status] = {
    (S.TRIALING, E.TRIAL_END): S.ACTIVE,
    (S.TRIALING, E.CHANGE): S.TRIALING,
    (S.TRIALING, E.SCHEDULE_CANCEL): S.TRIALING,
    (S.TRIALING, E.RESUME): S.TRIALING,
    (S.TRIALING, E.CANCEL): S.CANCELED,
    (S.ACTIVE, E.PERIOD_END): S.ACTIVE,
    (S.ACTIVE, E.CHANGE): S.ACTIVE,
    (S.ACTIVE, E.SCHEDULE_CANCEL): S.ACTIVE,
    (S.ACTIVE, E.RESUME): S.ACTIVE,
    (S.ACTIVE, E.CANCEL): S.CANCELED,
    (S.ACTIVE, E.PAYMENT_FAILED): S.PAST_DUE,
    (S.ACTIVE, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.ACTIVE, E.PAUSE): S.PAUSED,
    (S.PAST_DUE, E.PERIOD_END): S.PAST_DUE,
    (S.PAST_DUE, E.SCHEDULE_CANCEL): S.PAST_DUE,
    (S.PAST_DUE, E.RESUME): S.PAST_DUE,
    (S.PAST_DUE, E.CANCEL): S.CANCELED,
    (S.PAST_DUE, E.PAYMENT_FAILED): S.PAST_DUE,
    (S.PAST_DUE, E.PAYMENT_SUCCEEDED): S.ACTIVE,
    (S.PAUSED, E.UNPAUSE): S.ACTIVE,
    (S.PAUSED, E.CANCEL): S.CANCELED,
}

LIVE = frozenset({S.TRIALING, S.ACTIVE, S.PAST_DUE, S.PAUSED})


def next_status(current: Status | str, event: Event) -> Status:
    current = Status(current)
    try:
        return TRANSITIONS[(current, event)]
    except KeyError:
        raise InvalidSubscriptionTransition(
            f"a {current.value} subscription cannot {event.value.replace('_', ' ')}", current_status=current.value
        ) from None
