"""Escrow's milestone rules (pure): the transition table and what each step settles, split bounds, the
checks of an agreement's milestones, and, over random agreements and random sequences of actions, that the
held money never goes negative and the journals the ledger rules write keep the held account equal to it."""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from billing.errors import EscrowError, EscrowUnderReview, InvalidMilestoneTransition
from billing.escrow.rules import (
    MAX_MILESTONES,
    SETTLED,
    TRANSITIONS,
    UNDER_REVIEW,
    Action,
    Settlement,
    Status,
    check_cancellable,
    check_milestones,
    held,
    step,
)
from billing.ledger import rules as ledger
from billing.ledger.rules import CASH, Posting
from controlplane.core.errors import Conflict, InvalidInput

PROPERTY = settings(max_examples=200, deadline=None)
ESCROW = uuid.UUID("00000000-0000-4000-8000-0000000000e5")
PAYEE = uuid.UUID("00000000-0000-4000-8000-0000000000fe")
AMOUNT = 1_000

# The table as the module's docstring tells it, written out independently of TRANSITIONS.
LEGAL: dict[tuple[Status, Action], set[Status]] = {
    (Status.PENDING, Action.SUBMIT): {Status.SUBMITTED},
    (Status.SUBMITTED, Action.ACCEPT): {Status.RELEASED},
    (Status.SUBMITTED, Action.REJECT): {Status.DISPUTED},
    (Status.DISPUTED, Action.RESOLVE): {Status.RELEASED, Status.REFUNDED, Status.SPLIT},
    (Status.PENDING, Action.CANCEL): {Status.REFUNDED},
}
ILLEGAL = [(status, action) for status in Status for action in Action if (status, action) not in LEGAL]


# --- the transition table -----------------------------------------------------------------------------


def test_the_table_is_the_documented_one() -> None:
    assert {key: set(value) for key, value in TRANSITIONS.items()} == LEGAL
    assert SETTLED == {Status.RELEASED, Status.REFUNDED, Status.SPLIT}
    # A settled milestone never moves again.
    assert not [key for key in TRANSITIONS if key[0] in SETTLED]
    assert len(ILLEGAL) == len(Status) * len(Action) - 5


@pytest.mark.parametrize(
    ("status", "action", "expected"),
    [
        (Status.PENDING, Action.SUBMIT, Settlement(Status.SUBMITTED)),
        (Status.SUBMITTED, Action.ACCEPT, Settlement(Status.RELEASED, release_minor=AMOUNT)),
        (Status.SUBMITTED, Action.REJECT, Settlement(Status.DISPUTED)),
        (Status.PENDING, Action.CANCEL, Settlement(Status.REFUNDED, refund_minor=AMOUNT)),
    ],
)
def test_every_legal_step_and_its_settlement(status: Status, action: Action, expected: Settlement) -> None:
    assert step(status, action, AMOUNT) == expected
    # The stored status arrives as text; it reads the same.
    assert step(status.value, action, AMOUNT) == expected
    assert expected.status in TRANSITIONS[(status, action)]


@pytest.mark.parametrize("status", [Status.SUBMITTED, Status.DISPUTED])
def test_a_payer_cannot_cancel_a_milestone_once_it_is_submitted(status: Status) -> None:
    # Delivered work is decided by acceptance, the inspection window or staff, never by the payer's cancel.
    with pytest.raises(InvalidMilestoneTransition):
        step(status, Action.CANCEL, AMOUNT)
    with pytest.raises(EscrowUnderReview) as raised:
        check_cancellable([Status.RELEASED, Status.PENDING, status.value, Status.REFUNDED])
    assert raised.value.code == "escrow_milestone_under_review"
    assert isinstance(raised.value, Conflict)  # a 409
    assert raised.value.extra["milestones"] == [3]  # positions, 1-based
    assert UNDER_REVIEW == {Status.SUBMITTED, Status.DISPUTED}


def test_an_agreement_whose_milestones_are_pending_or_settled_may_be_canceled() -> None:
    check_cancellable([])
    check_cancellable([Status.PENDING, Status.RELEASED, "refunded", Status.SPLIT])


@pytest.mark.parametrize(
    ("outcome", "release", "expected"),
    [
        ("release", 0, Settlement(Status.RELEASED, release_minor=AMOUNT)),
        ("release", 17, Settlement(Status.RELEASED, release_minor=AMOUNT)),  # release_minor only splits
        ("refund", 0, Settlement(Status.REFUNDED, refund_minor=AMOUNT)),
        ("split", 1, Settlement(Status.SPLIT, release_minor=1, refund_minor=AMOUNT - 1)),
        ("split", 400, Settlement(Status.SPLIT, release_minor=400, refund_minor=600)),
        ("split", AMOUNT - 1, Settlement(Status.SPLIT, release_minor=AMOUNT - 1, refund_minor=1)),
    ],
)
def test_resolving_a_dispute(outcome: str, release: int, expected: Settlement) -> None:
    settled = step(Status.DISPUTED, Action.RESOLVE, AMOUNT, outcome=outcome, release_minor=release)
    assert settled == expected
    assert settled.release_minor + settled.refund_minor == AMOUNT


@pytest.mark.parametrize(("status", "action"), ILLEGAL)
def test_every_illegal_step_is_refused_with_the_current_status(status: Status, action: Action) -> None:
    with pytest.raises(InvalidMilestoneTransition) as raised:
        step(status, action, AMOUNT, outcome="release", release_minor=1)
    assert raised.value.extra["current_status"] == status.value
    assert raised.value.code == "invalid_milestone_transition"
    assert isinstance(raised.value, Conflict)  # a 409
    assert status.value in str(raised.value) and action.value in str(raised.value)


@pytest.mark.parametrize("outcome", [None, "", "accept", "RELEASE", "partial"])
def test_a_resolution_is_release_refund_or_split(outcome: str | None) -> None:
    with pytest.raises(EscrowError):
        step(Status.DISPUTED, Action.RESOLVE, AMOUNT, outcome=outcome, release_minor=10)


def test_an_unknown_status_is_not_a_status() -> None:
    with pytest.raises(ValueError):
        step("closed", Action.SUBMIT, AMOUNT)


# --- split bounds -------------------------------------------------------------------------------------


@pytest.mark.parametrize("release", [0, AMOUNT, AMOUNT + 1, -1, -AMOUNT, 10**15])
def test_a_split_releases_strictly_between_nothing_and_everything(release: int) -> None:
    with pytest.raises(EscrowError) as raised:
        step(Status.DISPUTED, Action.RESOLVE, AMOUNT, outcome="split", release_minor=release)
    assert raised.value.code == "invalid_escrow"
    assert isinstance(raised.value, InvalidInput)  # a 422


def test_a_one_unit_milestone_cannot_be_split() -> None:
    for release in (0, 1):
        with pytest.raises(EscrowError):
            step(Status.DISPUTED, Action.RESOLVE, 1, outcome="split", release_minor=release)


# --- an agreement's milestones ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "amounts"),
    [
        (10, [10]),
        (10, [1] * 10),
        (MAX_MILESTONES, [1] * MAX_MILESTONES),
        (10**15, [10**15 - 1, 1]),
    ],
)
def test_good_milestones_pass(total: int, amounts: list[int]) -> None:
    check_milestones(total, amounts)


@pytest.mark.parametrize(
    ("total", "amounts", "words"),
    [
        (10, [3, 3, 3], "sum to 9"),
        (10, [5, 6], "sum to 11"),
        (0, [], "1 to 50"),
        (10, [10, 0], "positive"),
        (10, [0, 10], "positive"),
        (10, [11, -1], "positive"),  # sums right, but a negative milestone is still refused
        (-5, [-5], "positive"),
        (MAX_MILESTONES + 1, [1] * (MAX_MILESTONES + 1), "1 to 50"),
        (1000, [10] * 100, "1 to 50"),
    ],
)
def test_bad_milestones_are_refused(total: int, amounts: list[int], words: str) -> None:
    with pytest.raises(EscrowError) as raised:
        check_milestones(total, amounts)
    assert words in str(raised.value)


def test_held_is_never_negative() -> None:
    assert held(100, 30, 70) == 0
    assert held(100, 30, 20) == 50
    assert held(0, 0, 0) == 0
    with pytest.raises(EscrowError):
        held(100, 60, 41)
    with pytest.raises(EscrowError):
        held(0, 1, 0)


# --- random agreements, random actions ----------------------------------------------------------------

# None is "whatever moves this milestone on" (so sequences get somewhere); cancelling ends an agreement,
# so it is drawn rarely.
ACTIONS = st.sampled_from(
    [None] * 10 + [Action.SUBMIT, Action.ACCEPT, Action.REJECT, Action.RESOLVE] * 2 + [Action.CANCEL]
)
FORWARD = {Status.PENDING: Action.SUBMIT, Status.DISPUTED: Action.RESOLVE}
OUTCOMES = st.sampled_from(["release", "refund", "split"])
moves = st.tuples(st.integers(0, 49), ACTIONS, OUTCOMES, st.floats(0.0, 1.0))
amount_lists = st.lists(st.integers(1, 10**9), min_size=1, max_size=6)


def balances(postings: Iterable[Posting]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        sums[posting.account] += posting.amount_minor
    return dict(sums)


def test_random_sequences_keep_held_non_negative_and_the_books_agree(report: Callable[[str], None]) -> None:
    tally: dict[str, int] = defaultdict(int)

    @PROPERTY
    @given(amount_lists, st.lists(moves, min_size=4, max_size=60), st.sampled_from(["EUR", "USD", "JPY"]))
    # Besides the random ones, one sequence known to reach every settlement and a cancel, so the counts below
    # never depend on luck: release, a dispute split, a dispute refunded, a dispute released, a cancel refused
    # while a milestone is submitted, its acceptance, then the cancel.
    @example(
        [300, 500, 700, 900, 1_100, 1_300],
        [
            (0, None, "release", 0.1),
            *[(1, None, "split", 0.2), (1, None, "split", 0.9), (1, None, "split", 0.3)],
            *[(2, None, "refund", 0.0), (2, None, "refund", 0.9), (2, None, "refund", 0.0)],
            *[(3, None, "release", 0.0), (3, None, "release", 0.9), (3, None, "release", 0.0)],
            *[(4, Action.SUBMIT, "release", 0.0), (0, Action.ACCEPT, "release", 0.0), (5, Action.CANCEL, "split", 0.5)],
            *[(4, Action.ACCEPT, "release", 0.0), (5, Action.CANCEL, "split", 0.5)],
        ],
        "EUR",
    )
    def run(amounts: list[int], sequence: list[tuple[int, Action | None, str, float]], currency: str) -> None:
        tally["sequences"] += 1
        for status, count in play(amounts, sequence, currency).items():
            tally["steps"] += count
            tally[status] += count

    run()
    assert tally["sequences"] > 0
    # The sequences reached every kind of settlement and a cancel (not only illegal steps).
    assert all(tally[status] > 0 for status in Status if status is not Status.PENDING), dict(tally)
    assert tally["canceled"] > 0, dict(tally)
    assert tally["cancel_refused"] > 0, dict(tally)  # a cancel while a milestone was under review
    report(
        f"escrow: {tally['sequences']} operation sequences (random, plus one fixed; {tally['steps']} legal steps) "
        "kept held >= 0, every journal balanced and the held account at -held"
    )


def play(amounts: list[int], sequence: list[tuple[int, Action | None, str, float]], currency: str) -> Counter[str]:
    """Apply the sequence where it is legal, checking the money after every step; the statuses reached."""
    reached: Counter[str] = Counter()
    total = sum(amounts)
    check_milestones(total, amounts)
    statuses = [Status.PENDING] * len(amounts)
    released = [0] * len(amounts)
    refunded = [0] * len(amounts)
    funded = total
    journals = [ledger.escrow_funded(ESCROW, currency, funded)]
    held_account = ledger.escrow_held(ESCROW)
    payee_account = ledger.payee_payable("vendor", PAYEE)
    canceled = False

    def settle(index: int, settlement: Settlement) -> None:
        amount = amounts[index]
        assert settlement.release_minor >= 0 and settlement.refund_minor >= 0
        if settlement.status in SETTLED:
            # A settled milestone's money is all gone, to the payee or back, and never more.
            assert settlement.release_minor + settlement.refund_minor == amount, settlement
        else:
            assert (settlement.release_minor, settlement.refund_minor) == (0, 0), settlement
        statuses[index] = settlement.status
        released[index] += settlement.release_minor
        refunded[index] += settlement.refund_minor
        if settlement.refund_minor:
            journals.append(ledger.escrow_refunded(ESCROW, currency, settlement.refund_minor))
        if settlement.release_minor:
            journals.append(ledger.escrow_released(ESCROW, "vendor", PAYEE, currency, settlement.release_minor))

    def check() -> None:
        remaining = held(funded, sum(released), sum(refunded))
        assert remaining == funded - sum(released) - sum(refunded) >= 0
        # What is still held is exactly what the unsettled milestones are worth.
        assert remaining == sum(a for a, s in zip(amounts, statuses, strict=True) if s not in SETTLED)
        for journal in journals:
            assert all(p.amount_minor != 0 and p.currency == currency for p in journal), journal
            assert sum(p.amount_minor for p in journal) == 0, journal
        books = balances(p for journal in journals for p in journal)
        assert books.get(held_account, 0) == -remaining
        assert books.get(payee_account, 0) == -sum(released)
        assert books.get(CASH, 0) == funded - sum(refunded)
        assert sum(books.values()) == 0

    check()
    for position, drawn, outcome, fraction in sequence:
        if canceled:
            break
        index = position % len(amounts)
        amount = amounts[index]
        action = drawn
        if action is None:
            if statuses[index] in SETTLED:
                continue
            accept_or_reject = Action.ACCEPT if fraction < 0.5 else Action.REJECT
            action = FORWARD.get(statuses[index], accept_or_reject)
        if action is Action.CANCEL:
            # A milestone under review (submitted or disputed) keeps the agreement from being canceled.
            if any(status in UNDER_REVIEW for status in statuses):
                with pytest.raises(EscrowUnderReview):
                    check_cancellable(statuses)
                reached["cancel_refused"] += 1
                continue
            check_cancellable(statuses)
            # The agreement is canceled: every milestone not yet settled is refunded; nothing moves after.
            for other, status in enumerate(statuses):
                if status not in SETTLED:
                    settle(other, step(status, Action.CANCEL, amounts[other]))
            canceled = True
            reached["canceled"] += 1
            check()
            continue
        release = round(fraction * amount)
        legal = (statuses[index], action) in LEGAL
        split_ok = outcome != "split" or 0 < release < amount
        if not legal:
            with pytest.raises(InvalidMilestoneTransition) as raised:
                step(statuses[index], action, amount, outcome=outcome, release_minor=release)
            assert raised.value.extra["current_status"] == statuses[index].value
            continue
        if action is Action.RESOLVE and not split_ok:
            with pytest.raises(EscrowError):
                step(statuses[index], action, amount, outcome=outcome, release_minor=release)
            continue
        before = statuses[index]
        settlement = step(before, action, amount, outcome=outcome, release_minor=release)
        assert settlement.status in LEGAL[(before, action)]
        if action is Action.RESOLVE:
            assert settlement.status == {"release": Status.RELEASED, "refund": Status.REFUNDED}.get(
                outcome, Status.SPLIT
            )
            if outcome == "split":
                assert settlement.release_minor == release
        settle(index, settlement)
        reached[settlement.status] += 1
        check()

    assert sum(released) + sum(refunded) <= funded
    if canceled or all(s in SETTLED for s in statuses):
        assert sum(released) + sum(refunded) == funded
        assert balances(p for journal in journals for p in journal).get(held_account, 0) == 0
    return reached
