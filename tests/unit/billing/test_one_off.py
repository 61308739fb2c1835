"""One-off invoices: worked examples by hand in USD, JPY and KWD (two lines with fractional quantities and a tax
rate: subtotal, tax, total), the checks of each field, and a property."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import InvalidOneOffInvoice
from billing.invoices.rules import MAX_LINES, OneOffLine, one_off_lines
from billing.invoices.totals import cash_rounded, single_rate, totals
from billing.limits import MAX_AMOUNT_MINOR, MAX_LINE_MINOR
from billing.money import exponent, round_minor
from billing.payments.stripe_amounts import chargeable_step
from billing.periods import Period

NOW = datetime(2026, 12, 4, 10, tzinfo=UTC)
MOMENT = Period(NOW, NOW)


def figures(currency: str, rate_bps: int, *lines: tuple[str, str | int, int]) -> tuple[list[int], int, int, int]:
    rated = one_off_lines([OneOffLine(*line) for line in lines], MOMENT)
    amounts = [line.amount_minor for line in rated]
    result, rounding = cash_rounded(
        totals(amounts, single_rate(rate_bps)), chargeable_step(currency, exponent(currency))
    )
    assert [line.charge_kind for line in rated] == ["one_off"] * len(lines)
    return amounts + ([rounding] if rounding else []), result.subtotal_minor, result.tax_minor, result.total_minor


def test_usd_two_lines_with_fractional_quantities_and_tax() -> None:
    # 2.5 x 19.99 = 49.975 -> 49.98; 1.333 x 15.00 = 19.995 -> 20.00; subtotal 69.98;
    # tax 8.25 % = 5.77335 -> 5.77; total 75.75.
    got = figures("USD", 825, ("Setup", "2.5", 1999), ("Training hours", "1.333", 1500))
    assert got == ([4998, 2000], 6998, 577, 7575)


def test_jpy_two_lines_with_fractional_quantities_and_tax() -> None:
    # 2.5 x 333 = 832.5 -> 833 yen; 0.5 x 1001 = 500.5 -> 501; subtotal 1334; tax 10 % = 133.4 -> 133; 1467.
    got = figures("JPY", 1000, ("Onboarding", "2.5", 333), ("Half a day", "0.5", 1001))
    assert got == ([833, 501], 1334, 133, 1467)


def test_kwd_two_lines_with_fractional_quantities_tax_and_a_chargeable_total() -> None:
    # 1.5 x 12.345 = 18.5175 -> 18.518 KWD; 0.25 x 4.002 = 1.0005 -> 1.001; subtotal 19.519;
    # tax 5 % = 0.97595 -> 0.976; total 20.495, which Stripe charges in steps of 10 fils: +0.005 -> 20.500.
    got = figures("KWD", 500, ("Migration", "1.5", 12345), ("Support", "0.25", 4002))
    assert got == ([18518, 1001, 5], 19524, 976, 20500)


def test_whole_number_quantities_and_a_free_line() -> None:
    assert figures("EUR", 0, ("Licence", 3, 1000), ("Goodwill item", 1, 0)) == ([3000, 0], 3000, 0, 3000)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (("", "1", 1), "description"),
        (("   ", "1", 1), "description"),
        (("a\x00b", "1", 1), "control"),
        (("tab\there", "1", 1), "control"),
        (("c1\x85", "1", 1), "control"),
        (("x" * 501, "1", 1), "description"),
        (("ok", "0", 1), "greater than 0"),
        (("ok", "-1", 1), "greater than 0"),
        (("ok", "NaN", 1), "greater than 0"),
        (("ok", "Infinity", 1), "greater than 0"),
        (("ok", "abc", 1), "not a decimal"),
        (("ok", "1000000001", 1), "at most"),
        (("ok", "0.0000000000001", 1), "decimal places"),
        (("ok", "1" * 41, 1), "decimal string"),
        (("ok", True, 1), "decimal string"),
        (("ok", "1", -1), "unit_amount_minor"),
        (("ok", "1", MAX_AMOUNT_MINOR + 1), "unit_amount_minor"),
        (("ok", "2", MAX_AMOUNT_MINOR), "beyond"),
    ],
)
def test_bad_lines_are_refused(line: tuple[str, str | int, int], message: str) -> None:
    with pytest.raises(InvalidOneOffInvoice, match=message):
        one_off_lines([OneOffLine(*line)], MOMENT)


def test_unicode_text_is_kept_and_the_number_of_lines_is_bounded() -> None:
    [line] = one_off_lines([OneOffLine("Mise en service — 東京 ✓", "1", 5)], MOMENT)
    assert line.description == "Mise en service — 東京 ✓"
    with pytest.raises(InvalidOneOffInvoice, match="1 to 100"):
        one_off_lines([], MOMENT)
    with pytest.raises(InvalidOneOffInvoice, match="1 to 100"):
        one_off_lines([OneOffLine("x", 1, 1)] * (MAX_LINES + 1), MOMENT)
    assert len(one_off_lines([OneOffLine("x", 1, 1)] * MAX_LINES, MOMENT)) == MAX_LINES
    assert InvalidOneOffInvoice.code == "invalid_one_off_invoice"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.decimals(min_value="0.001", max_value=10**6, places=3, allow_nan=False, allow_infinity=False),
            st.integers(min_value=0, max_value=10**9),
        ),
        min_size=1,
        max_size=MAX_LINES,
    )
)
def test_each_line_is_quantity_times_unit_rounded_once_and_the_sum_stays_bounded(
    items: list[tuple[Decimal, int]],
) -> None:
    lines = one_off_lines([OneOffLine("item", str(quantity), unit) for quantity, unit in items], MOMENT)
    for line, (quantity, unit) in zip(lines, items, strict=True):
        assert line.amount_minor == round_minor(quantity * unit) and 0 <= line.amount_minor <= MAX_LINE_MINOR
        assert abs(line.amount_minor - quantity * unit) <= Decimal("0.5")
    assert 0 <= sum(line.amount_minor for line in lines) <= MAX_LINES * MAX_LINE_MINOR
