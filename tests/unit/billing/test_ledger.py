"""The ledger's posting rules (pure): every journal balances per currency, invoices move the receivable by
their total, reductions split between revenue and tax in the invoice's proportion, reversals undo."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import BillingInvalid, UnbalancedJournal
from billing.ledger.rules import (
    CASH,
    REVENUE,
    TAX_PAYABLE,
    Posting,
    balanced,
    invoice_issued,
    invoice_reduced,
    payment_received,
    receivable,
    reversal,
)
from billing.money import CURRENCY_EXPONENTS

PROPERTY = settings(max_examples=200, deadline=None)
TENANT = uuid.UUID("00000000-0000-4000-8000-000000000001")

tenants = st.uuids(version=4)
currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
minor = st.integers(min_value=0, max_value=10**12)
signed = st.integers(min_value=-(10**12), max_value=10**12)
accounts = st.sampled_from([REVENUE, TAX_PAYABLE, CASH, receivable(TENANT), "refunds"])


def by_account(postings: Iterable[Posting]) -> dict[tuple[str, str], int]:
    """(account, currency) -> net amount; accounts that net to zero are left out."""
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for posting in postings:
        sums[(posting.account, posting.currency)] += posting.amount_minor
    return {key: value for key, value in sums.items() if value}


def per_currency(postings: Iterable[Posting]) -> dict[str, int]:
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        sums[posting.currency] += posting.amount_minor
    return dict(sums)


def assert_journal(postings: list[Posting]) -> None:
    """What every journal the rules produce must be: balanced per currency, with no zero lines."""
    assert all(posting.amount_minor != 0 for posting in postings), postings
    assert all(total == 0 for total in per_currency(postings).values()), postings


# -- invoice_issued -------------------------------------------------------------------------------------


def test_invoice_issued_by_hand() -> None:
    postings = invoice_issued(TENANT, "EUR", 823, 165)
    assert postings == [
        Posting(f"receivable:tenant:{TENANT}", 988, "EUR"),
        Posting("revenue", -823, "EUR"),
        Posting("tax_payable", -165, "EUR"),
    ]


def test_invoice_issued_without_tax_has_no_tax_line() -> None:
    assert invoice_issued(TENANT, "JPY", 500, 0) == [
        Posting(receivable(TENANT), 500, "JPY"),
        Posting(REVENUE, -500, "JPY"),
    ]


def test_a_zero_invoice_books_nothing() -> None:
    assert invoice_issued(TENANT, "EUR", 0, 0) == []


@PROPERTY
@given(tenants, currencies, signed, minor)
def test_invoice_issued_balances_and_moves_the_receivable_by_the_total(
    tenant_id: uuid.UUID, currency: str, subtotal: int, tax: int
) -> None:
    postings = invoice_issued(tenant_id, currency, subtotal, tax)
    assert_journal(postings)
    assert {posting.currency for posting in postings} <= {currency}
    assert {posting.account for posting in postings} <= {receivable(tenant_id), REVENUE, TAX_PAYABLE}
    net = by_account(postings)
    assert net.get((receivable(tenant_id), currency), 0) == subtotal + tax
    assert net.get((REVENUE, currency), 0) == -subtotal
    assert net.get((TAX_PAYABLE, currency), 0) == -tax


def test_the_receivable_account_names_the_tenant() -> None:
    other = uuid.uuid4()
    assert receivable(TENANT) == f"receivable:tenant:{TENANT}"
    assert receivable(other) != receivable(TENANT)


# -- invoice_reduced ------------------------------------------------------------------------------------


def test_invoice_reduced_by_hand() -> None:
    # 100 of an invoice of 823 + 165 = 988: revenue 100 x 823/988 = 83.30, tax 100 x 165/988 = 16.70.
    # Truncated 83 + 16 = 99; the leftover unit goes to the larger remainder (tax, .70 against .30).
    assert invoice_reduced(TENANT, "EUR", 100, 823, 165) == [
        Posting(receivable(TENANT), -100, "EUR"),
        Posting(REVENUE, 83, "EUR"),
        Posting(TAX_PAYABLE, 17, "EUR"),
    ]


def test_invoice_reduced_in_full_takes_back_exactly_what_was_issued() -> None:
    issued = invoice_issued(TENANT, "KWD", 8416, 421)
    reduced = invoice_reduced(TENANT, "KWD", 8837, 8416, 421)
    assert by_account(issued + reduced) == {}


def test_two_halves_take_back_exactly_what_was_issued() -> None:
    """494 twice on 823 + 165: each half alone splits 411.5 / 82.5 (a tie, to revenue: 412 / 82). Split
    cumulatively, the second note takes the rest (823 - 412 = 411, 165 - 82 = 83), so nothing is left over."""
    first = invoice_reduced(TENANT, "EUR", 494, 823, 165)
    assert first == [
        Posting(receivable(TENANT), -494, "EUR"),
        Posting(REVENUE, 412, "EUR"),
        Posting(TAX_PAYABLE, 82, "EUR"),
    ]
    second = invoice_reduced(TENANT, "EUR", 494, 823, 165, already_reduced=494)
    assert second == [
        Posting(receivable(TENANT), -494, "EUR"),
        Posting(REVENUE, 411, "EUR"),
        Posting(TAX_PAYABLE, 83, "EUR"),
    ]
    assert by_account(invoice_issued(TENANT, "EUR", 823, 165) + first + second) == {}


@st.composite
def reductions(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """(subtotal, tax, already, amount): an invoice with a positive total, what its earlier credit notes took
    (`already`), and a new note's amount, together no more than the total."""
    subtotal = draw(minor)
    tax = draw(st.integers(min_value=0, max_value=10**11))
    if subtotal + tax == 0:
        subtotal = draw(st.integers(min_value=1, max_value=10**12))
    already = draw(st.integers(min_value=0, max_value=subtotal + tax) | st.just(0))
    amount = draw(st.integers(min_value=0, max_value=subtotal + tax - already))
    return subtotal, tax, already, amount


@PROPERTY
@given(tenants, currencies, reductions())
def test_invoice_reduced_splits_any_amount_between_revenue_and_tax(
    tenant_id: uuid.UUID, currency: str, figures: tuple[int, int, int, int]
) -> None:
    subtotal, tax, already, amount = figures
    postings = invoice_reduced(tenant_id, currency, amount, subtotal, tax, already)
    assert_journal(postings)
    assert {posting.currency for posting in postings} <= {currency}
    net = by_account(postings)
    assert net.get((receivable(tenant_id), currency), 0) == -amount
    revenue_part = net.get((REVENUE, currency), 0)
    tax_part = net.get((TAX_PAYABLE, currency), 0)
    assert revenue_part + tax_part == amount
    total = subtotal + tax
    exact_revenue = Fraction(amount * subtotal, total)
    exact_tax = Fraction(amount * tax, total)
    assert abs(revenue_part - exact_revenue) < 1, (revenue_part, exact_revenue)
    assert abs(tax_part - exact_tax) < 1, (tax_part, exact_tax)
    assert revenue_part >= 0 and tax_part >= 0
    # With what earlier notes took, never more taken back from an account than the invoice put into it:
    # everything credited so far is split within a unit of its exact share.
    before = by_account(invoice_reduced(tenant_id, currency, already, subtotal, tax)) if already else {}
    revenue_so_far = before.get((REVENUE, currency), 0) + revenue_part
    tax_so_far = before.get((TAX_PAYABLE, currency), 0) + tax_part
    assert abs(revenue_so_far - Fraction((already + amount) * subtotal, total)) < 1
    assert revenue_so_far <= subtotal and tax_so_far <= tax
    if already + amount == total:
        assert (revenue_so_far, tax_so_far) == (subtotal, tax)


@PROPERTY
@given(tenants, reductions(), st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8))
def test_credit_notes_up_to_the_total_never_take_back_more_than_was_issued(
    tenant_id: uuid.UUID, figures: tuple[int, int, int, int], cuts: list[int]
) -> None:
    """Several credit notes (each split given what the earlier ones took) whose sum is at most the total leave
    revenue and tax payable between the invoice's figures and zero, and at exactly zero once all is credited."""
    subtotal, tax, _, amount = figures
    total = subtotal + tax
    for credited_in_full in (False, True):
        target = total if credited_in_full else amount
        points = sorted({target * cut // 1000 for cut in cuts} | {0, target})  # cuts in thousandths
        notes = [high - low for low, high in pairwise(points)]
        booked = invoice_issued(tenant_id, "EUR", subtotal, tax)
        credited = 0
        for note in notes:
            booked += invoice_reduced(tenant_id, "EUR", note, subtotal, tax, credited)
            credited += note
            net = by_account(booked)
            assert net.get((receivable(tenant_id), "EUR"), 0) == total - credited
            assert -subtotal <= net.get((REVENUE, "EUR"), 0) <= 0, (notes, net)
            assert -tax <= net.get((TAX_PAYABLE, "EUR"), 0) <= 0, (notes, net)
        assert credited == target
        if credited_in_full:
            assert by_account(booked) == {}, (notes, by_account(booked))


@pytest.mark.parametrize(("subtotal", "tax"), [(0, 0), (-100, 0), (0, -1), (-100, 50), (100, -100), (-5, -5)])
def test_invoice_reduced_refuses_an_invoice_without_a_positive_total(subtotal: int, tax: int) -> None:
    with pytest.raises(BillingInvalid) as raised:
        invoice_reduced(TENANT, "EUR", 1, subtotal, tax)
    assert not isinstance(raised.value, UnbalancedJournal)
    assert "positive total" in raised.value.detail


# -- balanced -------------------------------------------------------------------------------------------


def test_balanced_drops_zero_postings_and_keeps_the_order() -> None:
    postings = [
        Posting("a", 5, "EUR"),
        Posting("b", 0, "EUR"),
        Posting("c", -7, "EUR"),
        Posting("d", 0, "USD"),
        Posting("e", 2, "EUR"),
    ]
    assert balanced(postings) == [Posting("a", 5, "EUR"), Posting("c", -7, "EUR"), Posting("e", 2, "EUR")]
    assert balanced([]) == []
    assert balanced([Posting("a", 0, "EUR")]) == []


def test_balanced_accepts_an_iterator() -> None:
    assert balanced(iter([Posting("a", 1, "EUR"), Posting("b", -1, "EUR")])) == [
        Posting("a", 1, "EUR"),
        Posting("b", -1, "EUR"),
    ]


def test_two_currencies_each_balanced_separately_are_fine() -> None:
    postings = [
        Posting("a", 100, "EUR"),
        Posting("b", 250, "USD"),
        Posting("c", -100, "EUR"),
        Posting("d", -250, "USD"),
    ]
    assert balanced(postings) == postings


def test_an_unbalanced_currency_is_refused_with_its_difference() -> None:
    with pytest.raises(UnbalancedJournal) as raised:
        balanced([Posting("a", 100, "EUR"), Posting("b", -90, "EUR"), Posting("c", 5, "USD"), Posting("d", -5, "USD")])
    error = raised.value
    assert isinstance(error, BillingInvalid)
    assert error.code == "unbalanced_journal"
    assert "'EUR': 10" in error.detail, error.detail
    assert "USD" not in error.detail, error.detail


def test_currencies_never_offset_each_other() -> None:
    """+100 EUR and -100 USD sum to zero only if currencies are mixed up: both are named as unbalanced."""
    with pytest.raises(UnbalancedJournal) as raised:
        balanced([Posting("a", 100, "EUR"), Posting("b", -100, "USD")])
    assert "'EUR': 100" in raised.value.detail, raised.value.detail
    assert "'USD': -100" in raised.value.detail, raised.value.detail


postings_lists = st.lists(
    st.builds(Posting, accounts, st.integers(-1000, 1000), st.sampled_from(["EUR", "USD", "JPY"]))
)


@PROPERTY
@given(postings_lists)
def test_balanced_refuses_exactly_the_journals_that_do_not_sum_to_zero(postings: list[Posting]) -> None:
    sums = per_currency(postings)
    off = {currency: total for currency, total in sums.items() if total}
    if off:
        with pytest.raises(UnbalancedJournal) as raised:
            balanced(postings)
        for currency, total in off.items():
            assert f"'{currency}': {total}" in raised.value.detail, (raised.value.detail, off)
        for currency in set(sums) - set(off):
            assert currency not in raised.value.detail
    else:
        assert balanced(postings) == [posting for posting in postings if posting.amount_minor]


@PROPERTY
@given(postings_lists)
def test_any_list_can_be_closed_into_a_journal(postings: list[Posting]) -> None:
    """Adding, per currency, the line that brings the sum to zero always makes a journal balanced() accepts."""
    closing = [Posting("suspense", -total, currency) for currency, total in per_currency(postings).items()]
    kept = balanced(postings + closing)
    assert_journal(kept)
    assert by_account(kept) == by_account(postings + closing)


# -- reversal and payments ------------------------------------------------------------------------------


def test_reversal_by_hand() -> None:
    issued = invoice_issued(TENANT, "EUR", 823, 165)
    assert reversal(issued) == [
        Posting(receivable(TENANT), -988, "EUR"),
        Posting(REVENUE, 823, "EUR"),
        Posting(TAX_PAYABLE, 165, "EUR"),
    ]


@PROPERTY
@given(tenants, currencies, reductions(), st.booleans())
def test_reversal_negates_and_undoes(
    tenant_id: uuid.UUID, currency: str, figures: tuple[int, int, int, int], credited: bool
) -> None:
    subtotal, tax, _, amount = figures
    booked = invoice_issued(tenant_id, currency, subtotal, tax)
    if credited:
        booked += invoice_reduced(tenant_id, currency, amount, subtotal, tax)
    undone = reversal(booked)
    assert_journal(undone)
    assert [(p.account, -p.amount_minor, p.currency) for p in undone] == [
        (p.account, p.amount_minor, p.currency) for p in booked if p.amount_minor
    ]
    assert by_account(booked + undone) == {}
    assert reversal(undone) == [p for p in booked if p.amount_minor]


def test_reversal_of_an_unbalanced_list_is_refused() -> None:
    with pytest.raises(UnbalancedJournal):
        reversal([Posting("a", 1, "EUR")])


def test_payment_received_by_hand() -> None:
    assert payment_received(TENANT, "EUR", 988) == [
        Posting("cash:stripe", 988, "EUR"),
        Posting(receivable(TENANT), -988, "EUR"),
    ]


@PROPERTY
@given(tenants, currencies, signed)
def test_payment_received_balances_and_lowers_the_receivable(tenant_id: uuid.UUID, currency: str, amount: int) -> None:
    postings = payment_received(tenant_id, currency, amount)
    assert_journal(postings)
    net = by_account(postings)
    assert net.get((CASH, currency), 0) == amount
    assert net.get((receivable(tenant_id), currency), 0) == -amount
    assert len(net) == (2 if amount else 0)


@PROPERTY
@given(tenants, reductions())
def test_issue_credit_and_payment_leave_the_receivable_at_zero(
    tenant_id: uuid.UUID, figures: tuple[int, int, int, int]
) -> None:
    subtotal, tax, _, amount = figures
    booked = invoice_issued(tenant_id, "USD", subtotal, tax)
    booked += invoice_reduced(tenant_id, "USD", amount, subtotal, tax)
    booked += payment_received(tenant_id, "USD", subtotal + tax - amount)
    net = by_account(booked)
    assert (receivable(tenant_id), "USD") not in net
    assert net.get((CASH, "USD"), 0) == subtotal + tax - amount
    assert sum(net.values()) == 0
