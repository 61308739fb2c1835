"""Card disputes (pure): Stripe's dispute object read defensively, in ISO minor units; the status only moves
forward; the dispute journals balance and a decided dispute leaves nothing held."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import hooks
from billing.disputes.rules import (
    check_payment,
    dispute_facts,
    next_status,
    opened_at,
    outcome_of,
    withdraws,
)
from billing.errors import BillingInvalid, InvalidDisputeEvent
from billing.ledger.rules import (
    CASH,
    DISPUTE_FEES,
    DISPUTE_LOSSES,
    Posting,
    credit_liability,
    dispute_fee_charged,
    dispute_lost,
    dispute_opened,
    dispute_won,
    disputes_held,
)
from billing.limits import MAX_AMOUNT_MINOR

TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")
PROPERTY = settings(max_examples=200, deadline=None)


def dispute(**changes: Any) -> dict[str, Any]:
    """A Stripe dispute object as `charge.dispute.created` carries it (amounts in Stripe's units)."""
    return {
        "id": "dp_1",
        "object": "dispute",
        "amount": 3410,
        "currency": "usd",
        "charge": "ch_1",
        "payment_intent": "pi_1",
        "reason": "fraudulent",
        "status": "needs_response",
        "created": 1_767_225_600,  # 2026-01-01
        "balance_transactions": [{"id": "txn_1", "amount": -3410, "fee": 1500, "currency": "usd"}],
        **changes,
    }


def by_account(postings: Iterable[Posting]) -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for posting in postings:
        sums[(posting.account, posting.currency)] += posting.amount_minor
    return {key: value for key, value in sums.items() if value}


# -- reading the object ------------------------------------------------------------------------------------------


def test_a_dispute_object_is_read_in_iso_minor_units_with_stripes_fee() -> None:
    facts = dispute_facts(dispute())
    assert (facts.stripe_id, facts.payment_intent_id, facts.charge_id) == ("dp_1", "pi_1", "ch_1")
    assert (facts.amount_minor, facts.currency, facts.fee_minor, facts.fee_returned_minor) == (3410, "USD", 1500, 0)
    assert (facts.fee_currency, facts.reason, facts.stripe_status) == ("USD", "fraudulent", "needs_response")
    assert facts.opened_at == datetime(2026, 1, 1, tzinfo=UTC)
    assert facts.notes == ()


@pytest.mark.parametrize(
    ("currency", "stripe_amount", "iso_minor"),
    [("jpy", 5000, 5000), ("kwd", 12340, 12340), ("isk", 310000, 3100), ("usd", 1, 1)],
)
def test_amounts_follow_stripes_own_table(currency: str, stripe_amount: int, iso_minor: int) -> None:
    """JPY is whole yen in both; KWD thousandths in both; ISK hundredths at Stripe but whole krónur in ISO."""
    facts = dispute_facts(dispute(currency=currency, amount=stripe_amount, balance_transactions=[]))
    assert (facts.amount_minor, facts.currency, facts.fee_minor, facts.fee_currency) == (
        iso_minor,
        currency.upper(),
        0,
        currency.upper(),
    )


def test_without_balance_transactions_the_fee_is_zero_and_a_win_returns_what_a_reinstatement_gave_back() -> None:
    assert dispute_facts(dispute(balance_transactions=None)).fee_minor == 0
    assert dispute_facts({k: v for k, v in dispute().items() if k != "balance_transactions"}).fee_minor == 0
    assert dispute_facts(dispute(balance_transactions=["txn_1", "txn_2"])).fee_minor == 0  # not expanded
    won = dispute_facts(
        dispute(
            status="won",
            balance_transactions=[
                {"amount": -3410, "fee": 1500, "currency": "usd"},
                {"amount": 3410, "fee": -1500, "currency": "usd"},
            ],
        )
    )
    assert (won.fee_minor, won.fee_returned_minor) == (1500, 1500)
    # Never more given back than was charged.
    greedy = dispute_facts(
        dispute(balance_transactions=[{"fee": 100, "currency": "usd"}, {"fee": -900, "currency": "usd"}])
    )
    assert (greedy.fee_minor, greedy.fee_returned_minor) == (100, 100)


def test_the_fee_is_in_the_currency_stripe_charged_it_in() -> None:
    """A JPY charge on a USD account: the amount in yen, Stripe's fee in dollars (its settlement currency)."""
    facts = dispute_facts(
        dispute(currency="jpy", amount=5000, balance_transactions=[{"amount": -3300, "fee": 1500, "currency": "usd"}])
    )
    assert (facts.amount_minor, facts.currency, facts.fee_minor, facts.fee_currency) == (5000, "JPY", 1500, "USD")


@pytest.mark.parametrize(
    ("transactions", "note"),
    [
        ([{"fee": 1500, "currency": "xxq"}], "fee_currency"),
        ([{"fee": 1500, "currency": "usd"}, {"fee": 700, "currency": "eur"}], "fee_in_two_currencies"),
        ([{"fee": 10**20, "currency": "usd"}], "fee_amount"),
    ],
)
def test_an_unreadable_fee_is_left_out_and_noted_never_the_dispute(transactions: list[Any], note: str) -> None:
    facts = dispute_facts(dispute(balance_transactions=transactions))
    assert facts.amount_minor == 3410
    assert note in facts.notes
    assert facts.fee_minor == (1500 if note == "fee_in_two_currencies" else 0)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"amount": -100}, "amount"),
        ({"amount": 0}, "amount"),
        ({"amount": 10**40}, "amount"),
        ({"amount": True}, "amount"),
        ({"amount": "3410"}, "amount"),
        ({"amount": 34.1}, "amount"),
        ({"amount": None}, "amount"),
        ({"currency": "xxq"}, "currency"),
        ({"currency": 840}, "currency"),
        ({"currency": "usdollars"}, "currency"),
        ({"id": None}, "id"),
        ({"id": "dp_'; drop table disputes;--"}, "id"),
        ({"id": "x" * 256}, "id"),
        ({"payment_intent": {"id": "pi_1"}}, "payment_intent"),
        ({"payment_intent": None}, "payment_intent"),
        ({"charge": ["ch_1"]}, "charge"),
    ],
)
def test_hostile_fields_are_refused_with_their_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(InvalidDisputeEvent) as refused:
        dispute_facts(dispute(**changes))
    assert refused.value.reason == reason


@pytest.mark.parametrize("obj", [None, [], "dp_1", 42])
def test_an_event_without_a_dispute_object_is_refused(obj: Any) -> None:
    with pytest.raises(InvalidDisputeEvent) as refused:
        dispute_facts(obj)
    assert refused.value.reason == "object"


def test_odd_reasons_statuses_and_times_are_kept_harmless() -> None:
    facts = dispute_facts(dispute(reason="<script>" * 50, status=None, created=10**15))
    assert (facts.reason, facts.stripe_status, facts.opened_at) == ("unrecognized", "unrecognized", None)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert opened_at(facts, now) == now
    future = dispute_facts(dispute(created=int((now + timedelta(days=30)).timestamp())))
    assert opened_at(future, now) == now  # never after now
    assert opened_at(dispute_facts(dispute()), now) == datetime(2026, 1, 1, tzinfo=UTC)


def test_a_dispute_is_of_its_payment_in_its_currency_and_never_for_more() -> None:
    facts = dispute_facts(dispute())
    check_payment(facts, "USD", 3410)
    with pytest.raises(InvalidDisputeEvent) as more:
        check_payment(facts, "USD", 3409)
    with pytest.raises(InvalidDisputeEvent) as other:
        check_payment(facts, "EUR", 3410)
    assert (more.value.reason, other.value.reason) == ("amount", "currency")


# -- status ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stripe_status", "outcome"),
    [
        ("won", "won"),
        ("warning_closed", "won"),
        ("prevented", "won"),
        ("charge_refunded", "won"),
        ("lost", "lost"),
        ("needs_response", None),
        ("under_review", None),
        ("unrecognized", None),
    ],
)
def test_a_closed_status_decides_won_or_lost_or_nothing(stripe_status: str, outcome: str | None) -> None:
    assert outcome_of(stripe_status) == outcome


def test_the_status_moves_only_forward_once() -> None:
    assert next_status("open", "won") == "won"
    assert next_status("open", "lost") == "lost"
    for decided in ("won", "lost"):
        for outcome in ("won", "lost"):
            assert next_status(decided, outcome) is None  # type: ignore[arg-type]


# -- journals ----------------------------------------------------------------------------------------------------


def test_worked_example_usd_won_with_the_fee_given_back() -> None:
    opened = dispute_opened(TENANT, "USD", 3410, "USD", 1500)
    assert by_account(opened) == {
        (disputes_held(TENANT), "USD"): 3410,
        (CASH, "USD"): -4910,
        (DISPUTE_FEES, "USD"): 1500,
    }
    won = dispute_won(TENANT, "USD", 3410, "USD", 1500)
    assert by_account([*opened, *won]) == {}


def test_worked_example_jpy_lost_with_the_fee_in_dollars() -> None:
    both = [*dispute_opened(TENANT, "JPY", 5000, "USD", 1500), *dispute_lost(TENANT, "JPY", 5000)]
    assert by_account(both) == {
        (CASH, "JPY"): -5000,
        (DISPUTE_LOSSES, "JPY"): 5000,
        (CASH, "USD"): -1500,
        (DISPUTE_FEES, "USD"): 1500,
    }


def test_worked_example_kwd_won_keeping_the_fee() -> None:
    both = [*dispute_opened(TENANT, "KWD", 12340, "KWD", 0), *dispute_won(TENANT, "KWD", 12340, "KWD", 0)]
    assert by_account(both) == {}
    assert by_account(dispute_opened(TENANT, "KWD", 12340, "KWD", 0)) == {
        (disputes_held(TENANT), "KWD"): 12340,
        (CASH, "KWD"): -12340,
    }


@pytest.mark.parametrize(
    "call",
    [
        lambda: dispute_opened(TENANT, "USD", 0, "USD", 0),
        lambda: dispute_opened(TENANT, "USD", -5, "USD", 0),
        lambda: dispute_opened(TENANT, "USD", 5, "USD", -1),
        lambda: dispute_won(TENANT, "USD", 5, "USD", -1),
        lambda: dispute_lost(TENANT, "USD", 0),
    ],
)
def test_a_dispute_journal_refuses_a_non_positive_amount_or_a_negative_fee(call: Any) -> None:
    with pytest.raises(BillingInvalid):
        call()


amounts = st.integers(min_value=1, max_value=MAX_AMOUNT_MINOR)
fees = st.integers(min_value=0, max_value=10**9)
codes = st.sampled_from(["USD", "JPY", "KWD", "EUR"])


@PROPERTY
@given(amount=amounts, fee=fees, share=st.fractions(min_value=0, max_value=1), currency=codes, fee_currency=codes)
def test_a_decided_dispute_leaves_nothing_held_and_cash_moves_by_what_was_lost(
    amount: int, fee: int, share: Any, currency: str, fee_currency: str
) -> None:
    returned = int(fee * share)
    opened = dispute_opened(TENANT, currency, amount, fee_currency, fee)
    for journal in (
        opened,
        dispute_won(TENANT, currency, amount, fee_currency, returned),
        dispute_lost(TENANT, currency, amount),
    ):
        totals: dict[str, int] = defaultdict(int)
        for posting in journal:
            totals[posting.currency] += posting.amount_minor
            assert posting.amount_minor != 0
        assert not any(totals.values())
    won = by_account([*opened, *dispute_won(TENANT, currency, amount, fee_currency, returned)])
    lost = by_account([*opened, *dispute_lost(TENANT, currency, amount)])
    for books in (won, lost):
        assert (disputes_held(TENANT), currency) not in books
    kept = fee - returned
    if currency == fee_currency:
        assert won.get((CASH, currency), 0) == -kept
        assert lost[(CASH, currency)] == -(amount + fee)
    else:
        assert (CASH, currency) not in won and won.get((CASH, fee_currency), 0) == -kept
        assert (lost[(CASH, currency)], lost.get((CASH, fee_currency), 0)) == (-amount, -fee)
    assert lost[(DISPUTE_LOSSES, currency)] == amount and (DISPUTE_LOSSES, currency) not in won


async def test_clear_hooks_forgets_the_dispute_callbacks_too() -> None:
    calls: list[str] = []

    async def record(tenant_id: uuid.UUID, dispute_id: uuid.UUID, status: str) -> None:
        calls.append(status)

    before, paid = list(hooks._DISPUTE_CHANGED), list(hooks._INVOICE_PAID)
    try:
        hooks.on_dispute_changed(record)
        hooks.on_dispute_changed(record)  # once
        await hooks.dispute_changed(TENANT, TENANT, "open")
        hooks.clear_hooks()
        await hooks.dispute_changed(TENANT, TENANT, "won")
    finally:
        hooks._DISPUTE_CHANGED[:], hooks._INVOICE_PAID[:] = before, paid
    assert calls == ["open"]


@pytest.mark.parametrize(
    ("event_type", "stripe_status", "withdrawn"),
    [
        ("charge.dispute.created", "warning_needs_response", False),
        ("charge.dispute.created", "warning_under_review", False),
        ("charge.dispute.closed", "warning_closed", False),
        ("charge.dispute.funds_withdrawn", "warning_needs_response", True),
        ("charge.dispute.created", "needs_response", True),
        ("charge.dispute.created", "under_review", True),
        ("charge.dispute.closed", "lost", True),
        ("charge.dispute.closed", "won", True),
        ("charge.dispute.created", "unrecognized", True),
    ],
)
def test_an_inquiry_withdraws_nothing_until_stripe_says_the_funds_are_withdrawn(
    event_type: str, stripe_status: str, withdrawn: bool
) -> None:
    assert withdraws(event_type, stripe_status) is withdrawn


def test_a_fee_booked_on_its_own_is_an_expense_out_of_cash_and_positive() -> None:
    assert by_account(dispute_fee_charged("USD", 1500)) == {(DISPUTE_FEES, "USD"): 1500, (CASH, "USD"): -1500}
    for fee in (0, -1):
        with pytest.raises(BillingInvalid):
            dispute_fee_charged("USD", fee)


def test_a_lost_credit_purchase_books_the_credits_taken_back_off_the_liability_and_only_the_rest_as_lost() -> None:
    assert by_account(dispute_lost(TENANT, "EUR", 5000, 1920)) == {
        (DISPUTE_LOSSES, "EUR"): 3080,
        (credit_liability(TENANT), "EUR"): 1920,
        (disputes_held(TENANT), "EUR"): -5000,
    }
    assert by_account(dispute_lost(TENANT, "EUR", 5000, 5000)) == {
        (credit_liability(TENANT), "EUR"): 5000,
        (disputes_held(TENANT), "EUR"): -5000,
    }
    for taken in (-1, 5001):
        with pytest.raises(BillingInvalid):
            dispute_lost(TENANT, "EUR", 5000, taken)
