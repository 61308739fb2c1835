"""Escrow: an agreement's milestones and where their money is. Pure.

Milestones go `pending` → `submitted` (payee) → `released` (payer accepts, or nobody answers within the
inspection window); or `submitted` → `disputed` (payer rejects with a reason) → resolved by platform staff:
`released`, `refunded`, or `split` (part released, the rest refunded). Cancelling refunds every milestone
not yet released, and only while none is under review: once a milestone is submitted, only acceptance, the
inspection window or a staff resolution decides its money. At every step held = funded - released - refunded >= 0.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from billing.errors import EscrowError, EscrowUnderReview, InvalidMilestoneTransition

MAX_MILESTONES = 50
# The hourly auto-accept of milestones past their inspection window: a milestone whose release fails is
# recorded and retried after these hours (fresh ones first), at most MAX_AUTO_ACCEPT_ATTEMPTS times in all.
MAX_AUTO_ACCEPT_ATTEMPTS = 5
AUTO_ACCEPT_RETRY_HOURS = (1, 4, 12, 24)


# Payees that are partners, checked when an agreement is created; vendors have no accounts yet.
PARTNER_PAYEES = frozenset({"reseller", "publisher"})


class Status(enum.StrEnum):
    PENDING = "pending"
    SUBMITTED = "submitted"
    DISPUTED = "disputed"
    RELEASED = "released"
    REFUNDED = "refunded"
    SPLIT = "split"


class Action(enum.StrEnum):
    SUBMIT = "submit"
    ACCEPT = "accept"
    REJECT = "reject"
    RESOLVE = "resolve"
    CANCEL = "cancel"


S, A = Status, Action
TRANSITIONS: dict[tuple[Status, Action], frozenset[Status]] = {
    (S.PENDING, A.SUBMIT): frozenset({S.SUBMITTED}),
    (S.SUBMITTED, A.ACCEPT): frozenset({S.RELEASED}),
    (S.SUBMITTED, A.REJECT): frozenset({S.DISPUTED}),
    (S.DISPUTED, A.RESOLVE): frozenset({S.RELEASED, S.REFUNDED, S.SPLIT}),
    (S.PENDING, A.CANCEL): frozenset({S.REFUNDED}),
}
SETTLED = frozenset({S.RELEASED, S.REFUNDED, S.SPLIT})
UNDER_REVIEW = frozenset({S.SUBMITTED, S.DISPUTED})


@dataclass(frozen=True, slots=True)
class Settlement:
    """What a step does with a milestone's money."""

    status: Status
    release_minor: int = 0
    refund_minor: int = 0


def check_milestones(total_minor: int, amounts: Sequence[int]) -> None:
    if not 1 <= len(amounts) <= MAX_MILESTONES:
        raise EscrowError(f"an agreement has 1 to {MAX_MILESTONES} milestones")
    if any(amount <= 0 for amount in amounts):
        raise EscrowError("every milestone's amount_minor must be positive")
    if sum(amounts) != total_minor:
        raise EscrowError(f"the milestones sum to {sum(amounts)}, not the agreement's {total_minor}")


def check_cancellable(statuses: Sequence[Status | str]) -> None:
    """An agreement may be canceled only while none of its milestones is under review (submitted or disputed):
    delivered work is not the payer's to take back. EscrowUnderReview names the milestones' positions (1-based)."""
    reviewed = [position for position, status in enumerate(statuses, 1) if Status(status) in UNDER_REVIEW]
    if reviewed:
        raise EscrowUnderReview(
            f"milestones {reviewed} are under review; they must be accepted, auto-accepted or resolved by staff "
            "before the agreement can be canceled",
            milestones=reviewed,
        )


def step(
    status: Status | str, action: Action, amount_minor: int, *, outcome: str | None = None, release_minor: int = 0
) -> Settlement:
    """The milestone's next status and the money it moves, or InvalidMilestoneTransition."""
    current = Status(status)
    allowed = TRANSITIONS.get((current, action))
    if allowed is None:
        raise InvalidMilestoneTransition(
            f"a {current.value} milestone cannot {action.value}", current_status=current.value
        )
    if action is A.SUBMIT:
        return Settlement(S.SUBMITTED)
    if action is A.REJECT:
        return Settlement(S.DISPUTED)
    if action is A.ACCEPT:
        return Settlement(S.RELEASED, release_minor=amount_minor)
    if action is A.CANCEL:
        return Settlement(S.REFUNDED, refund_minor=amount_minor)
    if outcome == "release":
        return Settlement(S.RELEASED, release_minor=amount_minor)
    if outcome == "refund":
        return Settlement(S.REFUNDED, refund_minor=amount_minor)
    if outcome == "split":
        if not 0 < release_minor < amount_minor:
            raise EscrowError(f"a split releases between 1 and {amount_minor - 1} minor units of {amount_minor}")
        return Settlement(S.SPLIT, release_minor=release_minor, refund_minor=amount_minor - release_minor)
    raise EscrowError("a resolution is release, refund or split")


def held(funded_minor: int, released_minor: int, refunded_minor: int) -> int:
    remaining = funded_minor - released_minor - refunded_minor
    if remaining < 0:
        raise EscrowError("more left the escrow than was put in")
    return remaining
