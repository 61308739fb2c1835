"""Reseller commissions (pure): hand-worked examples exact to the minor unit (flat rate, tiers, duration,
pending period, clawbacks before and after payout, a negative balance carried forward, a minimum payout),
the agreement's and the events' validation, and, over random invoices and refunds, that what an invoice
keeps is its rate on the kept net within one minor unit and that no clawback exceeds what was earned."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.commissions.rules import (
    Agreement,
    CommissionLine,
    Earned,
    LineKind,
    PaidInvoice,
    Refund,
    Statement,
    Tier,
    add_months,
    close_month,
    commission_of,
    month_lines,
    tier_rate,
)
from billing.errors import BillingInvalid, CurrencyMismatch, InvalidAgreement, InvalidCommissionEvent, UnknownCurrency
from billing.money import Money
from tests.unit.billing.builders import utc

PROPERTY = settings(max_examples=200, deadline=None)
TENANT = uuid.UUID("00000000-0000-4000-8000-00000000000a")
OWNED = utc(2025, 6, 1)
ZERO = Money(0, "USD")
# Statements close at midnight UTC on the 1st: the January statement closes at 1 February.
JAN_CLOSE, FEB_CLOSE, MAR_CLOSE, APR_CLOSE = utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1), utc(2026, 5, 1)


def invoice(
    n: int, net: int, paid_at: datetime, *, owned_since: datetime = OWNED, currency: str = "USD"
) -> PaidInvoice:
    return PaidInvoice(TENANT, uuid.UUID(int=n), f"INV-{n:04d}", currency, net, paid_at, owned_since)


def refund(n: int, net: int, at: datetime) -> Refund:
    return Refund(uuid.UUID(int=n), net, at)


def commissions(lines: Sequence[CommissionLine]) -> list[int]:
    return [line.commission_minor for line in lines]


def flat(rate_bps: int = 1_000, **kwargs: Any) -> Agreement:
    return Agreement("USD", rate_bps, **{"pending_days": 0, **kwargs})


# -- (1) a flat rate --------------------------------------------------------------------------------------


def test_a_flat_rate_rounds_each_invoice_half_up_once() -> None:
    result = month_lines(flat(), [invoice(1, 12_345, utc(2026, 1, 5)), invoice(2, 6_789, utc(2026, 1, 9))])
    assert commissions(result.lines) == [1_235, 679]  # 1,234.5 -> 1,235; 678.9 -> 679
    first = result.lines[0]
    assert (first.kind, first.net_minor, first.rate_bps, first.number, first.tenant_id) == (
        LineKind.COMMISSION,
        12_345,
        1_000,
        "INV-0001",
        TENANT,
    )
    statement = close_month(flat(), result.lines, ZERO, closes_at=JAN_CLOSE)
    assert (statement.total, statement.payable, statement.carried_out) == (
        Money(1_914, "USD"),
        Money(1_914, "USD"),
        ZERO,
    )


def test_commission_of_is_half_up_on_the_exact_product() -> None:
    assert commission_of(5, 1_000) == 1  # 0.5 -> 1
    assert commission_of(4, 1_000) == 0  # 0.4 -> 0
    assert commission_of(15, 1_000) == 2  # 1.5 -> 2 (half up, not to even)
    assert commission_of(12_345, 10_000) == 12_345
    assert commission_of(12_345, 0) == 0


# -- (2) volume tiers: the month's total picks one rate for all of the month -----------------------------

TIERED = Agreement("USD", 1_000, tiers=(Tier(0, 1_000), Tier(100_000, 1_500)), pending_days=0)


def test_a_month_below_the_threshold_earns_the_first_tier_on_everything() -> None:
    result = month_lines(TIERED, [invoice(1, 60_000, utc(2026, 1, 5)), invoice(2, 39_999, utc(2026, 1, 20))])
    assert [line.rate_bps for line in result.lines] == [1_000, 1_000]
    assert commissions(result.lines) == [6_000, 4_000]  # 3,999.9 -> 4,000


def test_a_month_above_the_threshold_earns_the_higher_rate_on_all_of_it_not_graduated() -> None:
    result = month_lines(TIERED, [invoice(1, 60_000, utc(2026, 1, 5)), invoice(2, 40_001, utc(2026, 1, 20))])
    assert [line.rate_bps for line in result.lines] == [1_500, 1_500]
    assert commissions(result.lines) == [9_000, 6_000]  # 6,000.15 -> 6,000; graduated would be 10,000.15
    assert sum(commissions(result.lines)) == 15_000


def test_the_threshold_itself_is_in_the_higher_tier() -> None:
    result = month_lines(TIERED, [invoice(1, 100_000, utc(2026, 1, 5))])
    assert commissions(result.lines) == [15_000]
    assert tier_rate(TIERED, 99_999) == 1_000
    assert tier_rate(TIERED, 100_000) == 1_500
    assert tier_rate(flat(700), 10**9) == 700


def test_tiers_may_be_given_as_pairs() -> None:
    agreement = Agreement("USD", 1_000, tiers=[(0, 1_000), (100_000, 1_500)])  # type: ignore[arg-type]
    assert agreement.tiers == (Tier(0, 1_000), Tier(100_000, 1_500))


def test_out_of_duration_invoices_do_not_count_toward_the_tier() -> None:
    agreement = Agreement("USD", 1_000, tiers=(Tier(0, 1_000), Tier(100_000, 1_500)), duration=12, pending_days=0)
    old_tenant = invoice(1, 90_000, utc(2026, 1, 5), owned_since=utc(2024, 1, 1))
    result = month_lines(agreement, [old_tenant, invoice(2, 20_000, utc(2026, 1, 6))])
    assert [(line.rate_bps, line.commission_minor) for line in result.lines] == [(0, 0), (1_000, 2_000)]


# -- (3) duration: lifetime or the first N months of each tenant -----------------------------------------


def test_an_invoice_in_month_13_earns_nothing_on_a_12_month_agreement_but_earns_on_lifetime() -> None:
    owned = utc(2025, 1, 15, 10)
    month_12 = invoice(1, 12_345, utc(2026, 1, 15, 9), owned_since=owned)  # one hour before the 12 months end
    month_13 = invoice(2, 12_345, utc(2026, 1, 15, 10), owned_since=owned)  # exactly 12 calendar months on
    twelve = month_lines(flat(duration=12), [month_12, month_13])
    assert [(line.rate_bps, line.commission_minor) for line in twelve.lines] == [(1_000, 1_235), (0, 0)]
    lifetime = month_lines(flat(), [month_12, month_13])
    assert commissions(lifetime.lines) == [1_235, 1_235]


def test_calendar_months_clamp_to_the_end_of_a_short_month() -> None:
    assert add_months(utc(2025, 1, 31, 8), 1) == utc(2025, 2, 28, 8)
    assert add_months(utc(2024, 1, 31), 1) == utc(2024, 2, 29)
    assert add_months(utc(2025, 11, 30), 3) == utc(2026, 2, 28)
    assert add_months(utc(2025, 1, 15), 12) == utc(2026, 1, 15)
    one_month = flat(duration=1)
    owned = utc(2025, 1, 31)
    inside = invoice(1, 1_000, utc(2025, 2, 27, 23), owned_since=owned)
    outside = invoice(2, 1_000, utc(2025, 2, 28), owned_since=owned)
    assert commissions(month_lines(one_month, [inside, outside]).lines) == [100, 0]


# -- (4) the pending period -------------------------------------------------------------------------------


def test_a_line_accrued_ten_days_before_close_is_deferred_to_the_next_statement() -> None:
    agreement = Agreement("USD", 1_000)  # pending_days defaults to 30
    assert agreement.pending_days == 30
    old = invoice(1, 12_345, utc(2026, 1, 2))  # payable 1 Feb 00:00, exactly at the close: due
    late = invoice(2, 6_789, utc(2026, 1, 22))  # 10 days before the close: payable 21 Feb
    january = month_lines(agreement, [old, late])
    jan = close_month(agreement, january.lines, ZERO, closes_at=JAN_CLOSE)
    assert commissions(jan.lines) == [1_235]
    assert commissions(jan.deferred) == [679]
    assert jan.deferred[0].payable_at == utc(2026, 2, 21)
    assert (jan.total, jan.payable, jan.carried_out) == (Money(1_235, "USD"), Money(1_235, "USD"), ZERO)

    feb = close_month(agreement, jan.deferred, jan.carried_out, closes_at=FEB_CLOSE)
    assert commissions(feb.lines) == [679]
    assert feb.deferred == ()
    assert feb.payable == Money(679, "USD")


# -- (5) clawbacks ---------------------------------------------------------------------------------------


def test_a_partial_refund_before_payout_nets_in_the_same_statement() -> None:
    agreement = flat()
    result = month_lines(agreement, [invoice(1, 12_345, utc(2026, 1, 5))], [refund(1, 5_000, utc(2026, 1, 20))])
    # 1,235 x 5,000 / 12,345 = 500.2 -> 500
    assert commissions(result.lines) == [1_235, -500]
    claw = result.lines[1]
    assert (claw.kind, claw.net_minor, claw.rate_bps, claw.accrued_at) == (
        LineKind.CLAWBACK,
        -5_000,
        1_000,
        utc(2026, 1, 20),
    )
    statement = close_month(agreement, result.lines, ZERO, closes_at=JAN_CLOSE)
    assert statement.payable == Money(735, "USD")
    assert result.earned[uuid.UUID(int=1)].refunded_minor == 5_000


def test_a_refund_after_payout_appears_in_a_later_month_and_nets_against_new_lines() -> None:
    agreement = flat()
    january = month_lines(agreement, [invoice(1, 12_345, utc(2026, 1, 5))])
    jan = close_month(agreement, january.lines, ZERO, closes_at=JAN_CLOSE)
    assert jan.payable == Money(1_235, "USD")

    february = month_lines(
        agreement, [invoice(2, 6_789, utc(2026, 2, 3))], [refund(1, 5_000, utc(2026, 2, 10))], january.earned
    )
    assert commissions(february.lines) == [679, -500]
    feb = close_month(agreement, february.lines, jan.carried_out, closes_at=FEB_CLOSE)
    assert (feb.total, feb.payable) == (Money(179, "USD"), Money(179, "USD"))

    # Refunding the rest gives back exactly what is left of the 1,235: 1,235 - 500.
    march = month_lines(agreement, [], [refund(1, 7_345, utc(2026, 3, 2))], february.earned)
    assert commissions(march.lines) == [-735]
    assert march.earned[uuid.UUID(int=1)].clawed_back_minor == 1_235


def test_small_refunds_round_cumulatively_so_their_sum_is_the_proportion_of_the_total() -> None:
    # Each refund alone is 1,235 x 1,000 / 12,345 = 100.04 of commission; five of them are 500.2 -> 500.
    agreement = flat()
    refunds = [refund(1, 1_000, utc(2026, 1, 10 + day)) for day in range(5)]
    result = month_lines(agreement, [invoice(1, 12_345, utc(2026, 1, 5))], refunds)
    assert commissions(result.lines) == [1_235, -100, -100, -100, -100, -100]
    # Seven refunds of 1 each: 0.1 each, so the cumulative figure reaches 1 only at the fifth.
    tiny = month_lines(agreement, [invoice(1, 12_345, utc(2026, 1, 5))], [refund(1, 1, utc(2026, 1, 9))] * 7)
    assert commissions(tiny.lines) == [1_235, 0, 0, 0, 0, -1, 0, 0]


def test_a_clawback_waits_for_the_commission_it_reverses() -> None:
    agreement = Agreement("USD", 1_000)  # 30 pending days
    result = month_lines(agreement, [invoice(1, 12_345, utc(2026, 1, 22))], [refund(1, 12_345, utc(2026, 1, 25))])
    assert [line.payable_at for line in result.lines] == [utc(2026, 2, 21), utc(2026, 2, 21)]
    jan = close_month(agreement, result.lines, ZERO, closes_at=JAN_CLOSE)
    assert (jan.lines, jan.total) == ((), ZERO)
    feb = close_month(agreement, jan.deferred, jan.carried_out, closes_at=FEB_CLOSE)
    assert commissions(feb.lines) == [1_235, -1_235]
    assert feb.total == ZERO
    # After the commission is payable, a clawback is due at once.
    later = month_lines(agreement, [], [refund(2, 1, utc(2026, 4, 2))], _earned_of(invoice(2, 100, utc(2026, 1, 2))))
    assert later.lines[0].payable_at == utc(2026, 4, 2)


def _earned_of(paid: PaidInvoice) -> dict[uuid.UUID, Earned]:
    return dict(month_lines(Agreement("USD", 1_000), [paid]).earned)


# -- (6) a negative balance is carried, never charged -----------------------------------------------------


def test_a_negative_balance_carries_across_two_months_and_is_never_charged() -> None:
    agreement = flat()
    january = month_lines(agreement, [invoice(1, 12_345, utc(2026, 1, 5))])
    jan = close_month(agreement, january.lines, ZERO, closes_at=JAN_CLOSE)
    assert jan.payable == Money(1_235, "USD")

    february = month_lines(agreement, [], [refund(1, 12_345, utc(2026, 2, 4))], january.earned)
    feb = close_month(agreement, february.lines, jan.carried_out, closes_at=FEB_CLOSE)
    assert (feb.total, feb.payable, feb.carried_out) == (Money(-1_235, "USD"), ZERO, Money(-1_235, "USD"))

    march = month_lines(agreement, [invoice(2, 6_789, utc(2026, 3, 3))], [], february.earned)
    mar = close_month(agreement, march.lines, feb.carried_out, closes_at=MAR_CLOSE)
    assert (mar.carried_in, mar.total, mar.payable, mar.carried_out) == (
        Money(-1_235, "USD"),
        Money(-556, "USD"),
        ZERO,
        Money(-556, "USD"),
    )

    april = month_lines(agreement, [invoice(3, 12_345, utc(2026, 4, 3))], [], march.earned)
    apr = close_month(agreement, april.lines, mar.carried_out, closes_at=APR_CLOSE)
    assert (apr.total, apr.payable, apr.carried_out) == (Money(679, "USD"), Money(679, "USD"), ZERO)


# -- (7) a minimum payout ---------------------------------------------------------------------------------


def test_a_balance_under_the_minimum_payout_carries_until_it_reaches_it() -> None:
    agreement = flat(minimum_payout_minor=1_000)
    january = month_lines(agreement, [invoice(1, 6_789, utc(2026, 1, 5))])
    jan = close_month(agreement, january.lines, ZERO, closes_at=JAN_CLOSE)
    assert (jan.total, jan.payable, jan.carried_out) == (Money(679, "USD"), ZERO, Money(679, "USD"))

    february = month_lines(agreement, [invoice(2, 6_789, utc(2026, 2, 5))], [], january.earned)
    feb = close_month(agreement, february.lines, jan.carried_out, closes_at=FEB_CLOSE)
    assert (feb.total, feb.payable, feb.carried_out) == (Money(1_358, "USD"), Money(1_358, "USD"), ZERO)


def test_a_balance_exactly_at_the_minimum_is_paid() -> None:
    agreement = flat(minimum_payout_minor=1_235)
    lines = month_lines(agreement, [invoice(1, 12_345, utc(2026, 1, 5))]).lines
    statement = close_month(agreement, lines, ZERO, closes_at=JAN_CLOSE)
    assert statement.payable == Money(1_235, "USD")
    empty = close_month(agreement, [], ZERO, closes_at=JAN_CLOSE)
    assert (empty.total, empty.payable, empty.carried_out) == (ZERO, ZERO, ZERO)


# -- validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate_bps": -1},
        {"rate_bps": 10_001},
        {"rate_bps": True},
        {"rate_bps": 10.0},
        {"tiers": (Tier(1, 1_000),)},  # does not start at 0
        {"tiers": (Tier(0, 1_000), Tier(50_000, 1_200), Tier(50_000, 1_500))},  # overlapping start
        {"tiers": (Tier(0, 1_000), Tier(90_000, 1_200), Tier(50_000, 1_500))},  # unsorted
        {"tiers": (Tier(0, 1_000), Tier(-5, 1_200))},
        {"tiers": (Tier(0, 1_000), Tier(50_000, 10_001))},
        {"tiers": (Tier(0, 900), Tier(50_000, 1_200))},  # the base rate disagrees with rate_bps
        {"tiers": ((0, 1_000, 3),)},
        {"duration": 0},
        {"duration": -3},
        {"duration": "forever"},
        {"duration": True},
        {"pending_days": -1},
        {"minimum_payout_minor": -1},
    ],
)
def test_invalid_agreements_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidAgreement) as raised:
        Agreement(**{"currency": "USD", "rate_bps": 1_000, **kwargs})
    assert raised.value.code == "invalid_commission_agreement"
    assert isinstance(raised.value, BillingInvalid)


def test_valid_edges_of_an_agreement() -> None:
    Agreement("USD", 0)
    Agreement("USD", 10_000, duration=1, pending_days=0)
    Agreement("JPY", 1_000, tiers=(Tier(0, 1_000),))
    with pytest.raises(UnknownCurrency):
        Agreement("XXX", 1_000)


def test_invalid_events_are_refused() -> None:
    agreement = flat()
    paid = invoice(1, 12_345, utc(2026, 1, 5))
    earned = month_lines(agreement, [paid], [refund(1, 12_000, utc(2026, 1, 6))]).earned
    cases: list[tuple[type[Exception], Any]] = [
        (CurrencyMismatch, lambda: month_lines(agreement, [invoice(2, 10, utc(2026, 1, 5), currency="EUR")])),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [paid, paid])),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [paid], [], earned)),  # already commissioned
        (InvalidCommissionEvent, lambda: month_lines(agreement, [paid, invoice(2, 10, utc(2026, 2, 1))])),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [invoice(2, -1, utc(2026, 1, 5))])),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [invoice(2, 1, utc(2025, 5, 31))])),  # not owned
        (InvalidCommissionEvent, lambda: month_lines(agreement, [invoice(2, 1, datetime(2026, 1, 5))])),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [], [refund(1, 346, utc(2026, 1, 7))], earned)),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [], [refund(1, 0, utc(2026, 1, 7))], earned)),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [], [refund(9, 1, utc(2026, 1, 7))], earned)),
        (InvalidCommissionEvent, lambda: month_lines(agreement, [], [refund(1, 1, utc(2026, 1, 4))], earned)),
        (CurrencyMismatch, lambda: close_month(agreement, [], Money(0, "EUR"), closes_at=JAN_CLOSE)),
    ]
    for error, call in cases:
        with pytest.raises(error):
            call()
    # The remainder (345) may still be refunded.
    assert commissions(month_lines(agreement, [], [refund(1, 345, utc(2026, 1, 7))], earned).lines) == [-35]
    assert InvalidCommissionEvent.code == "invalid_commission_event"


def test_a_line_in_another_currency_is_refused_by_the_statement() -> None:
    eur = Agreement("EUR", 1_000, pending_days=0)
    lines = month_lines(eur, [invoice(1, 100, utc(2026, 1, 5), currency="EUR")]).lines
    with pytest.raises(CurrencyMismatch):
        close_month(flat(), lines, ZERO, closes_at=JAN_CLOSE)


# -- properties -------------------------------------------------------------------------------------------

MONTHS = [utc(2026, month, 1) for month in range(1, 13)]


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    starts = sorted(draw(st.sets(st.integers(1, 2_000_000), max_size=3)))
    rates = draw(st.lists(st.integers(0, 10_000), min_size=len(starts) + 1, max_size=len(starts) + 1))
    tiers = tuple(Tier(start, rate) for start, rate in zip([0, *starts], rates, strict=True))
    return Agreement(
        "USD",
        rates[0],
        tiers=tiers if draw(st.booleans()) else (),
        duration=draw(st.one_of(st.just("lifetime"), st.integers(1, 6))),
        pending_days=draw(st.integers(0, 45)),
        minimum_payout_minor=draw(st.integers(0, 5_000)),
    )


def _run(agreement: Agreement, data: st.DataObject) -> tuple[list[PaidInvoice], list[CommissionLine], list[Statement]]:
    """Random invoices over six months, random partial and full refunds of them (each within what remains),
    fed month by month to `month_lines` and `close_month`."""
    raw = data.draw(
        st.lists(
            st.tuples(st.integers(0, 5), st.integers(0, 27 * 24 * 60), st.integers(0, 1_000_000), st.integers(0, 300)),
            max_size=15,
        )
    )
    paid = [
        invoice(n, net, MONTHS[month] + timedelta(minutes=minute), owned_since=MONTHS[month] - timedelta(days=ago))
        for n, (month, minute, net, ago) in enumerate(raw)
    ]
    refunds: list[Refund] = []
    for item in paid:
        remaining = item.net_minor
        while remaining > 0 and data.draw(st.booleans()):
            amount = data.draw(st.one_of(st.just(remaining), st.integers(1, remaining)))
            at = item.paid_at + timedelta(minutes=data.draw(st.integers(0, 150 * 24 * 60)))
            refunds.append(Refund(item.invoice_id, amount, at))
            remaining -= amount
    earned: dict[uuid.UUID, Earned] = {}
    lines: list[CommissionLine] = []
    statements: list[Statement] = []
    carried: Money = ZERO
    deferred: tuple[CommissionLine, ...] = ()
    for month, start in enumerate(MONTHS):
        end = MONTHS[month + 1] if month + 1 < len(MONTHS) else utc(2027, 1, 1)
        result = month_lines(
            agreement,
            [item for item in paid if start <= item.paid_at < end],
            [item for item in refunds if start <= item.at < end],
            earned,
        )
        earned = dict(result.earned)
        lines.extend(result.lines)
        statement = close_month(agreement, [*deferred, *result.lines], carried, closes_at=end)
        statements.append(statement)
        carried, deferred = statement.carried_out, statement.deferred
    return paid, lines, statements


@PROPERTY
@given(agreements(), st.data())
def test_each_invoice_keeps_its_rate_on_the_kept_net_and_never_gives_back_more_than_it_earned(
    agreement: Agreement, data: st.DataObject
) -> None:
    paid, lines, _ = _run(agreement, data)
    by_invoice: dict[uuid.UUID, list[CommissionLine]] = defaultdict(list)
    for line in lines:
        by_invoice[line.invoice_id].append(line)
    assert set(by_invoice) == {item.invoice_id for item in paid}
    for item in paid:
        own = by_invoice[item.invoice_id]
        earned, clawbacks = own[0], own[1:]
        assert earned.kind == LineKind.COMMISSION and all(line.kind == LineKind.CLAWBACK for line in clawbacks)
        rate = Decimal(earned.rate_bps)
        kept_net = item.net_minor + sum(line.net_minor for line in clawbacks)
        kept = sum(line.commission_minor for line in own)
        assert abs(kept - kept_net * rate / 10_000) <= 1  # one minor unit per invoice, so per line too
        assert 0 <= kept <= earned.commission_minor  # never gives back more than was earned
        assert all(line.commission_minor <= 0 for line in clawbacks)
        for index, line in enumerate(clawbacks):  # each clawback is its own proportion within one unit
            exact = Decimal(earned.commission_minor) * line.net_minor / item.net_minor
            assert abs(line.commission_minor - exact) <= 1, index
        if kept_net == 0:
            assert kept == 0  # a full refund gives back exactly the commission


@PROPERTY
@given(agreements(), st.data())
def test_the_month_rate_is_the_tier_of_the_months_earning_total(agreement: Agreement, data: st.DataObject) -> None:
    paid, lines, _ = _run(agreement, data)
    rates = {line.invoice_id: line.rate_bps for line in lines if line.kind == LineKind.COMMISSION}
    for start in {item.paid_at.replace(day=1, hour=0, minute=0) for item in paid}:
        month = [item for item in paid if item.paid_at.replace(day=1, hour=0, minute=0) == start]
        if agreement.duration == "lifetime":
            earning = month
        else:
            earning = [item for item in month if item.paid_at < add_months(item.owned_since, int(agreement.duration))]
        total = sum(item.net_minor for item in earning)
        expected = max(
            (tier for tier in agreement.tiers or (Tier(0, agreement.rate_bps),) if tier.from_minor <= total),
            key=lambda tier: tier.from_minor,
        ).rate_bps
        for item in month:
            assert rates[item.invoice_id] == (expected if item in earning else 0)


@PROPERTY
@given(agreements(), st.data())
def test_statements_pay_out_exactly_the_lines_never_charge_and_respect_the_minimum(
    agreement: Agreement, data: st.DataObject
) -> None:
    _, lines, statements = _run(agreement, data)
    paid_out = sum(statement.payable.minor for statement in statements)
    last = statements[-1]
    assert paid_out + last.carried_out.minor + sum(line.commission_minor for line in last.deferred) == sum(
        line.commission_minor for line in lines
    )
    previous = ZERO
    for statement in statements:
        assert statement.carried_in == previous
        assert statement.total.minor == previous.minor + sum(line.commission_minor for line in statement.lines)
        assert statement.payable.minor >= 0  # never charged
        assert statement.payable.minor in (0, statement.total.minor)
        if statement.payable.minor > 0:
            assert statement.payable.minor >= agreement.minimum_payout_minor
        else:
            assert statement.total.minor <= 0 or statement.total.minor < agreement.minimum_payout_minor
        assert all(line.payable_at <= statement.closes_at for line in statement.lines)
        assert all(line.payable_at > statement.closes_at for line in statement.deferred)
        previous = statement.carried_out
