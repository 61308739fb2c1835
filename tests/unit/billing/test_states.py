"""The subscription state machine: legal paths, and illegal events answered with a 409 naming the state."""

import pytest

from billing.errors import InvalidSubscriptionTransition
from billing.subscriptions.states import LIVE, TRANSITIONS, Event, Status, next_status
from controlplane.core.errors import Conflict


@pytest.mark.parametrize(
    ("current", "event", "expected"),
    [
        (Status.TRIALING, Event.TRIAL_END, Status.ACTIVE),
        (Status.TRIALING, Event.CANCEL, Status.CANCELED),
        (Status.ACTIVE, Event.PERIOD_END, Status.ACTIVE),
        (Status.ACTIVE, Event.PAYMENT_FAILED, Status.PAST_DUE),
        (Status.PAST_DUE, Event.PAYMENT_SUCCEEDED, Status.ACTIVE),
        (Status.PAST_DUE, Event.CANCEL, Status.CANCELED),
        (Status.ACTIVE, Event.PAUSE, Status.PAUSED),
        (Status.PAUSED, Event.UNPAUSE, Status.ACTIVE),
        (Status.PAUSED, Event.CANCEL, Status.CANCELED),
        ("active", Event.CANCEL, Status.CANCELED),
    ],
)
def test_legal_transitions_follow_the_lifecycle(current: Status | str, event: Event, expected: Status) -> None:
    assert next_status(current, event) is expected


@pytest.mark.parametrize(
    ("current", "event"),
    [
        (Status.CANCELED, Event.CANCEL),
        (Status.CANCELED, Event.PERIOD_END),
        (Status.CANCELED, Event.RESUME),
        (Status.CANCELED, Event.UNPAUSE),
        (Status.TRIALING, Event.PERIOD_END),
        (Status.TRIALING, Event.PAUSE),
        (Status.ACTIVE, Event.TRIAL_END),
        (Status.ACTIVE, Event.UNPAUSE),
        (Status.PAST_DUE, Event.CHANGE),
        (Status.PAST_DUE, Event.PAUSE),
        (Status.PAUSED, Event.CHANGE),
        (Status.PAUSED, Event.PERIOD_END),
        (Status.PAUSED, Event.PAUSE),
    ],
)
def test_illegal_transitions_raise_with_the_current_status(current: Status, event: Event) -> None:
    with pytest.raises(InvalidSubscriptionTransition) as caught:
        next_status(current, event)
    assert caught.value.extra == {"current_status": current.value}
    assert current.value in caught.value.detail


def test_invalid_transition_is_a_conflict() -> None:
    assert issubclass(InvalidSubscriptionTransition, Conflict)
    assert InvalidSubscriptionTransition.code == "invalid_subscription_transition"


def test_canceled_is_terminal_and_the_only_status_that_is_not_live() -> None:
    assert not any(current is Status.CANCELED for current, _ in TRANSITIONS)
    assert set(Status) - LIVE == {Status.CANCELED}


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError):
        next_status("expired", Event.CANCEL)
