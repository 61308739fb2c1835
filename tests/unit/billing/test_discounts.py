"""Coupons and discounts, pure: worked examples by hand (USD, JPY, KWD) and properties."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.discounts.rules import (
    FULL_SHARE,
    BilledShare,
    CouponState,
    CouponTerms,
    Discount,
    after_invoice,
    after_invoices,
    apply,
    at_billed_share,
    billed_share,
    check_redeemable,
    check_terms,
    discount_base,
    discount_lines,
    given_back,
)
from billing.errors import (
    CouponArchived,
    CouponCurrencyMismatch,
    CouponExhausted,
    CouponExpired,
    CouponPlanMismatch,
    InvalidCoupon,
    UnknownCurrency,
)
from billing.invoices.totals import credit_to_carry
from billing.periods import Period
from billing.rating import Line
from tests.unit.billing.builders import utc

PROPERTY = settings(max_examples=200, deadline=None)
JANUARY = Period(utc(2026, 1, 1), utc(2026, 2, 1))


def line(amount: int, kind: Any = "flat") -> Line:
    return Line(f"{kind} {amount}", kind, Decimal(1), Decimal(amount), Decimal(amount), JANUARY)


def percent(bps: int, position: int = 1, duration: Any = "forever", periods: int | None = None, **kw: Any) -> Discount:
    terms = CouponTerms(f"p{position}", f"Percent {position}", duration, percent_off_bps=bps, duration_periods=periods)
    return Discount.redeemed(position, CouponTerms(**{**_fields(terms), **kw}))


def amount_off(minor: int, currency: str, position: int = 1, duration: Any = "forever", **kw: Any) -> Discount:
    terms = CouponTerms(f"a{position}", f"Amount {position}", duration, amount_off_minor=minor, currency=currency)
    return Discount.redeemed(position, CouponTerms(**{**_fields(terms), **kw}))


def _fields(terms: CouponTerms) -> dict[str, Any]:
    return {name: getattr(terms, name) for name in CouponTerms.__slots__}  # type: ignore[attr-defined]


def taken(discounts: list[Discount], lines: list[Line], currency: str, plan: str = "pro") -> list[int]:
    return [item.amount_minor for item in apply(discounts, lines, plan, currency)]


# -- worked examples ------------------------------------------------------------------------------------------


def test_percent_coupon_usd_rounds_half_up_once() -> None:
    # Pro $29.00 + 3 seats x $12.50 = 2900 + 3750 = 6650 cents; 25 % = 1662.5 -> 1663.
    lines = [line(2900), line(3750, "per_seat")]
    [discount] = discount_lines([percent(2500)], lines, "pro", "USD", JANUARY)
    assert discount.amount_minor == -1663
    assert discount.charge_kind == "discount"
    assert discount.charge_index == 1
    assert discount.description == "Discount Percent 1 (p1): 25% off"


def test_percent_and_amount_coupons_jpy() -> None:
    # ¥4,980 at 33 % = 1643.4 -> 1643; an amount coupon of ¥1,000 takes 1000.
    assert taken([percent(3300)], [line(4980)], "JPY") == [1643]
    assert taken([amount_off(1000, "JPY")], [line(4980)], "JPY") == [1000]
    # Never more than the base: ¥6,000 off ¥4,980 takes 4980.
    assert taken([amount_off(6000, "JPY")], [line(4980)], "JPY") == [4980]


def test_percent_and_amount_coupons_kwd() -> None:
    # 12.345 KWD = 12345 fils; 12.5 % = 1543.125 -> 1543; 5.000 KWD off = 5000.
    assert taken([percent(1250)], [line(12345)], "KWD") == [1543]
    assert taken([amount_off(5000, "KWD")], [line(12345)], "KWD") == [5000]


def test_two_stacked_discounts_apply_in_redemption_order_kwd() -> None:
    lines = [line(12345)]
    # 10 % first: 1234.5 -> 1235, leaving 11110; then 5.000 KWD: 5000. Together 6235.
    assert taken([percent(1000, 1), amount_off(5000, "KWD", 2)], lines, "KWD") == [1235, 5000]
    # The amount first: 5000, leaving 7345; then 10 %: 734.5 -> 735. Together 5735: order matters.
    assert taken([amount_off(5000, "KWD", 1), percent(1000, 2)], lines, "KWD") == [5000, 735]
    # Redemption order, not the order given.
    assert taken([amount_off(5000, "KWD", 2), percent(1000, 1)], lines, "KWD") == [1235, 5000]


def test_stacked_percent_coupons_usd() -> None:
    # 50 % of 6650 = 3325, then 50 % of the 3325 left = 1662.5 -> 1663.
    assert taken([percent(5000, 1), percent(5000, 2)], [line(6650)], "USD") == [3325, 1663]


@pytest.mark.parametrize(
    ("currency", "coupon", "invoice", "expected"),
    [
        # $100.00 once against $29.00 invoices: 2900, 2900, 2900, then the 1300 left.
        ("USD", 10000, 2900, [2900, 2900, 2900, 1300]),
        # ¥10,000 once against ¥4,980 invoices: 4980, 4980, then 40.
        ("JPY", 10000, 4980, [4980, 4980, 40]),
        # 20.000 KWD once against 12.345 KWD invoices: 12345, then 7655.
        ("KWD", 20000, 12345, [12345, 7655]),
    ],
)
def test_once_amount_larger_than_one_invoice_carries_to_the_next(
    currency: str, coupon: int, invoice: int, expected: list[int]
) -> None:
    discount = amount_off(coupon, currency, duration="once")
    seen = []
    for _ in range(len(expected) + 1):
        [item] = taken([discount], [line(invoice)], currency)
        outcome = after_invoice(discount, item, "cycle", "pro", currency)
        seen.append(item)
        discount = outcome.discount
        if outcome.ended:
            assert outcome.ended == "used"
            assert discount.amount_remaining_minor == 0
            break
    assert seen == expected


def test_repeating_for_three_periods_then_gone_usd() -> None:
    # 20 % of $29.00 = 580 on three cycle invoices; a change invoice between them is discounted, counts none.
    discount = percent(2000, duration="repeating", periods=3)
    seen = []
    for kind in ["cycle", "change", "cycle", "cycle", "cycle"]:
        lines = [line(2900)] if kind == "cycle" else [line(1000, "proration")]
        [item] = taken([discount], lines, "USD") or [0]
        outcome = after_invoice(discount, item, kind, "pro", "USD")
        seen.append((kind, item, outcome.discount.periods_used, outcome.ended))
        discount = outcome.discount
        if outcome.ended:
            break
    assert seen == [
        ("cycle", 580, 1, None),
        ("change", 200, 1, None),
        ("cycle", 580, 2, None),
        ("cycle", 580, 3, "periods_over"),
    ]


def test_once_percent_is_used_by_the_first_invoice_it_discounts() -> None:
    discount = percent(1000, duration="once")
    # A trial's invoice has no charges: nothing taken, nothing used.
    assert after_invoice(discount, 0, "cycle", "pro", "USD").ended is None
    assert after_invoice(discount, 290, "cycle", "pro", "USD").ended == "used"


def test_credits_are_no_base_and_the_cap_is_the_charges_usd() -> None:
    # Base: the 1000 charge only; credits on the invoice are the tenant's own and do not shrink a discount:
    # $5.00 off takes 500, 50 % of the 1000 base takes 500 (the invoice's -300 is carried to the next one).
    lines = [line(1000, "proration"), line(-800, "proration"), line(7, "rounding")]
    assert discount_base(lines) == 1000
    assert taken([amount_off(500, "USD")], [line(1000, "proration"), line(-800, "proration")], "USD") == [500]
    assert taken([percent(5000)], [line(1000, "proration"), line(-800, "proration")], "USD") == [500]


def test_a_carried_credit_stays_the_tenants_and_is_carried_on() -> None:
    # Flat 1500, a credit of -1000 carried from before, 50 % off: 750 off (50 % of the charges), and
    # 1500 - 1000 - 750 = -250 is the tenant's own credit, carried to the next invoice.
    lines = [line(1500), line(-1000, "proration")]
    produced = discount_lines([percent(5000)], lines, "pro", "EUR", JANUARY)
    assert [item.amount_minor for item in produced] == [-750]
    assert credit_to_carry([item.amount_minor for item in lines + produced]) == 250


def test_a_once_percent_is_not_spent_on_a_unit_left_by_credits() -> None:
    # ¥4,980 charges and a ¥4,979 credit: 50 % takes 2490 of the charges (not the ¥1 owed), and is used.
    lines = [line(4980), line(-4979, "proration")]
    [outcome] = after_invoices([percent(5000, duration="once")], lines, "cycle", "pro", "JPY")
    assert (outcome.taken_minor, outcome.ended) == (2490, "used")


def test_a_repeating_discount_counts_no_period_where_it_took_nothing() -> None:
    # 10 % of 4 fils is 0.4 -> 0: nothing taken, no period used; 10 % of 12.345 KWD takes 1235 and counts one.
    discount = percent(1000, duration="repeating", periods=2)
    [nothing] = after_invoices([discount], [line(4)], "cycle", "pro", "KWD")
    assert (nothing.taken_minor, nothing.discount.periods_used, nothing.ended) == (0, 0, None)
    [counted] = after_invoices([discount], [line(12345)], "cycle", "pro", "KWD")
    assert (counted.taken_minor, counted.discount.periods_used) == (1235, 1)


def test_a_repeating_or_forever_amount_applies_once_per_period_on_its_cycle_invoice() -> None:
    # $5.00 off forever: the cycle invoice takes 500; a seat increase's change invoice (a $10.00 proration)
    # and the final invoice take none of it, however often. 20 % off applies to the change too (200).
    forever = amount_off(500, "USD")
    repeating = amount_off(500, "USD", duration="repeating", duration_periods=3)
    once = amount_off(500, "USD", duration="once")
    change = [line(1000, "proration")]
    for kind in ["change", "final"]:
        assert taken([forever], change, "USD") == [500]  # a cycle invoice of the same charge would
        assert [item.amount_minor for item in apply([forever, repeating], change, "pro", "USD", kind)] == [0, 0]
        assert discount_lines([forever, repeating], change, "pro", "USD", JANUARY, kind) == []
        assert [o.discount.periods_used for o in after_invoices([repeating], change, kind, "pro", "USD")] == [0]
    assert [item.amount_minor for item in apply([percent(2000)], change, "pro", "USD", "change")] == [200]
    assert [item.amount_minor for item in apply([once], change, "pro", "USD", "change")] == [500]


def test_unused_time_is_credited_at_the_billed_share() -> None:
    # 15.00 EUR a month at 50 % off forever: February billed 750. Cancelled on Feb 15, 14 of 28 days unused:
    # 750 at the plan's price, 750 x 750 / 1500 = 375 as billed.
    share = billed_share([("flat", 1500), ("discount", -750)])
    assert share == BilledShare(750, 1500)
    unused = Line("Unused", "proration", Decimal(1), Decimal(1500), Decimal(-750), JANUARY)
    assert [item.amount_minor for item in at_billed_share([unused], share)] == [-375]
    # Plan A 10000 at 50 % off, upgraded to B 20000 half-way: -5000 x 1/2 = -2500 and +10000, whose 50 % is
    # 5000 off: the change invoice totals 2500, not 0.
    credit = Line("Unused A", "proration", Decimal(1), Decimal(10000), Decimal(-5000), JANUARY)
    charge = Line("Remaining B", "proration", Decimal(1), Decimal(20000), Decimal(10000), JANUARY)
    lines = at_billed_share([credit, charge], billed_share([("flat", 10000), ("discount", -5000)]))
    assert [item.amount_minor for item in lines] == [-2500, 10000]
    produced = discount_lines([percent(5000)], lines, "pro", "EUR", JANUARY, "change")
    assert sum(item.amount_minor for item in lines + produced) == 2500
    # 12.345 KWD at 12.5 % off (1543): 10802 of 12345 billed; half a period unused, 6172.5 fils, credits 5401.
    kwd = billed_share([("flat", 12345), ("metered", -5), ("rounding", 3), ("discount", -1543)])
    assert kwd == BilledShare(10802, 12345)
    half = Line("Unused", "proration", Decimal(1), Decimal(12345), Decimal("-6172.5"), JANUARY)
    assert [item.amount_minor for item in at_billed_share([half], kwd)] == [-5401]


def test_without_a_discount_the_share_is_full_and_charges_are_never_scaled() -> None:
    assert billed_share([("flat", 2900), ("proration", -100)]) == FULL_SHARE
    charge = line(1000, "proration")
    usage = line(300, "metered")
    assert at_billed_share([charge, usage], BilledShare(1, 2)) == [charge, usage]


def test_a_voided_invoice_gives_back_what_it_used() -> None:
    # A once amount used up by a voided invoice gets its 500 back and runs again.
    once = replace(amount_off(2000, "JPY", duration="once"), amount_remaining_minor=0)
    back, reactivate = given_back(once, 500, "cycle", "used")
    assert (back.amount_remaining_minor, reactivate) == (500, True)
    # A repeating discount gets back the period a cycle invoice counted; a change invoice counted none.
    repeating = replace(percent(1000, duration="repeating", periods=3), periods_used=3)
    assert given_back(repeating, 290, "cycle", "periods_over") == (replace(repeating, periods_used=2), True)
    assert given_back(repeating, 290, "change", None) == (repeating, False)
    # A once percent runs again; a discount staff removed stays removed.
    assert given_back(percent(1000, duration="once"), 290, "cycle", "used")[1] is True
    assert given_back(percent(1000), 290, "cycle", "removed")[1] is False


def test_a_discount_for_other_plans_or_another_currency_takes_nothing_and_ends() -> None:
    restricted = percent(1000, plan_codes=("basic",))
    assert discount_lines([restricted], [line(2900)], "pro", "USD", JANUARY) == []
    assert after_invoice(restricted, 0, "cycle", "pro", "USD").ended == "plan_mismatch"
    assert after_invoice(restricted, 290, "cycle", "basic", "USD").ended is None
    euros = amount_off(500, "EUR")
    assert discount_lines([euros], [line(2900)], "pro", "USD", JANUARY) == []
    assert after_invoice(euros, 0, "cycle", "pro", "USD").ended == "currency_mismatch"


def test_forever_never_ends_by_itself() -> None:
    outcomes = after_invoices([percent(1000)], [line(2900)], "cycle", "pro", "USD")
    assert [(o.taken_minor, o.ended) for o in outcomes] == [(290, None)]


# -- terms and redemption -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"percent_off_bps": 1000, "amount_off_minor": 500, "currency": "USD"},  # both
        {},  # neither
        {"amount_off_minor": 500},  # amount without currency
        {"percent_off_bps": 1000, "currency": "USD"},  # percent with currency
        {"percent_off_bps": 10001},
        {"amount_off_minor": 10**15 + 1, "currency": "USD"},
        {"percent_off_bps": 1000, "duration_periods": 3},  # periods without repeating
        {"percent_off_bps": 1000, "duration": "repeating"},  # repeating without periods
        {"percent_off_bps": 1000, "duration": "repeating", "duration_periods": 121},
        {"percent_off_bps": 1000, "plan_codes": ()},
        {"percent_off_bps": 1000, "plan_codes": ("pro", "pro")},
    ],
)
def test_invalid_terms_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidCoupon):
        check_terms(CouponTerms(**{"code": "c", "name": "C", "duration": "forever", **fields}))


def test_an_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        check_terms(CouponTerms("c", "C", "once", amount_off_minor=5, currency="XXX"))


def test_each_refusal_of_a_redemption_has_its_own_error() -> None:
    now = utc(2026, 3, 1)
    terms = CouponTerms("c", "C", "once", amount_off_minor=500, currency="USD", plan_codes=("pro",))
    ok = CouponState(terms, False, now + timedelta(days=1), 10, 9)
    check_redeemable(ok, "pro", "USD", now)
    cases: list[tuple[CouponState, str, str, type[Exception]]] = [
        (CouponState(terms, True, None, None, 0), "pro", "USD", CouponArchived),
        (CouponState(terms, False, now, None, 0), "pro", "USD", CouponExpired),
        (CouponState(terms, False, None, 10, 10), "pro", "USD", CouponExhausted),
        (ok, "basic", "USD", CouponPlanMismatch),
        (ok, "pro", "EUR", CouponCurrencyMismatch),
    ]
    for state, plan, currency, error in cases:
        with pytest.raises(error):
            check_redeemable(state, plan, currency, now)


# -- properties -----------------------------------------------------------------------------------------------

kinds = st.sampled_from(["flat", "per_seat", "metered", "proration", "rounding"])
invoice_lines = st.lists(
    st.tuples(st.integers(min_value=-(10**12), max_value=10**12), kinds).map(lambda pair: line(pair[0], pair[1])),
    max_size=8,
)


@st.composite
def discount_sets(draw: Any) -> list[Discount]:
    count = draw(st.integers(min_value=0, max_value=5))
    positions = draw(st.permutations(list(range(1, count + 1))))
    found = []
    for position in positions:
        if draw(st.booleans()):
            found.append(percent(draw(st.integers(min_value=1, max_value=10_000)), position))
        else:
            found.append(amount_off(draw(st.integers(min_value=1, max_value=10**15)), "USD", position))
    return found


def _half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


@PROPERTY
@given(discount_sets(), invoice_lines)
def test_discounts_never_exceed_their_base_and_leave_credits_alone(
    discounts: list[Discount], lines: list[Line]
) -> None:
    amounts = taken(discounts, lines, "USD")
    base = discount_base(lines)
    assert all(amount >= 0 for amount in amounts)
    assert sum(amounts) <= base
    # The same discounts on the charges alone: the credits on the invoice change nothing they take.
    charges = [item for item in lines if item.amount_minor > 0 and item.charge_kind != "rounding"]
    assert taken(discounts, charges, "USD") == amounts


@PROPERTY
@given(discount_sets(), st.lists(st.integers(min_value=0, max_value=10**12), max_size=6))
def test_discounted_charges_are_never_negative(discounts: list[Discount], charges: list[int]) -> None:
    lines = [line(amount) for amount in charges]
    produced = discount_lines(discounts, lines, "pro", "USD", JANUARY)
    assert all(item.amount_minor < 0 for item in produced)
    assert sum(line.amount_minor for line in lines + produced) >= 0


@PROPERTY
@given(discount_sets(), st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=6))
def test_each_discount_applies_in_redemption_order_to_what_the_earlier_ones_left(
    discounts: list[Discount], charges: list[int]
) -> None:
    lines = [line(amount) for amount in charges]
    applied = apply(discounts, lines, "pro", "USD")
    assert [item.discount.position for item in applied] == sorted(d.position for d in discounts)
    left = sum(charges)
    for item in applied:
        terms = item.discount.terms
        if terms.percent_off_bps is not None:
            expected = _half_up(Decimal(left) * terms.percent_off_bps / 10_000)
        else:
            assert terms.amount_off_minor is not None
            expected = min(terms.amount_off_minor, left)
        assert item.amount_minor == expected
        left -= item.amount_minor


@PROPERTY
@given(st.integers(min_value=1, max_value=10**15), st.lists(st.integers(min_value=0, max_value=10**13), max_size=10))
def test_a_once_amount_gives_exactly_its_amount_at_most_over_invoices(coupon: int, invoices: list[int]) -> None:
    discount = amount_off(coupon, "USD", duration="once")
    given_total = 0
    for invoice in invoices:
        [item] = taken([discount], [line(invoice)], "USD")
        outcome = after_invoice(discount, item, "cycle", "pro", "USD")
        given_total += item
        discount = outcome.discount
        assert discount.amount_remaining_minor == coupon - given_total
        if outcome.ended:
            break
    assert 0 <= given_total <= coupon
    assert given_total == min(coupon, sum(invoices))


@PROPERTY
@given(
    st.lists(st.integers(min_value=0, max_value=10**12), min_size=1, max_size=6),
    discount_sets(),
    st.integers(min_value=-(10**12), max_value=0),
)
def test_the_billed_share_bills_exactly_the_discounted_charges_and_never_credits_more(
    charges: list[int], discounts: list[Discount], credit: int
) -> None:
    lines = [line(amount) for amount in charges]
    produced = discount_lines(discounts, lines, "pro", "USD", JANUARY)
    share = billed_share([(item.charge_kind, item.amount_minor) for item in lines + produced])
    base = sum(charges)
    # The whole period at its billed share is what the invoice billed for it, to the unit, unrounded.
    assert share.of(Decimal(base)) == base + sum(item.amount_minor for item in produced)
    # A credit at the billed share is between nothing and the credit at the plan's price.
    [scaled] = at_billed_share([line(credit, "proration")], share)
    assert credit <= scaled.amount_minor <= 0


@PROPERTY
@given(
    discount_sets(),
    st.lists(st.integers(min_value=0, max_value=10**12), max_size=4),
    st.sampled_from(["change", "final"]),
)
def test_an_amount_that_is_not_once_never_applies_outside_the_cycle_invoice(
    discounts: list[Discount], charges: list[int], kind: str
) -> None:
    for item in apply(discounts, [line(amount, "proration") for amount in charges], "pro", "USD", kind):
        if item.discount.terms.amount_off_minor is not None and item.discount.terms.duration != "once":
            assert item.amount_minor == 0
