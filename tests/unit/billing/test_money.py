"""Money: integer minor units, the one rounding rule, formatting per currency exponent, allocation, tax."""

from decimal import Decimal

import pytest

from billing.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency
from billing.invoices.totals import amount_due, credit_to_carry, single_rate, tax_of, totals
from billing.money import Money, allocate, decimal_of, display, exponent, round_minor, total


@pytest.mark.parametrize(("currency", "places"), [("JPY", 0), ("USD", 2), ("EUR", 2), ("KWD", 3), ("BHD", 3)])
def test_currency_exponents_follow_iso_4217(currency: str, places: int) -> None:
    assert exponent(currency) == places


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(UnknownCurrency):
        exponent("XXX")
    with pytest.raises(UnknownCurrency):
        Money(100, "usd")


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0.5", 1),
        ("-0.5", -1),
        ("1.5", 2),
        ("-1.5", -2),
        ("2.4999", 2),
        ("-2.4999", -2),
        ("2.5000", 3),
        ("548.387", 548),
        ("822.58", 823),
        ("0.4999999999", 0),
        ("7", 7),
    ],
)
def test_round_minor_rounds_half_up_away_from_zero(amount: str, expected: int) -> None:
    result = round_minor(Decimal(amount))
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("money", "text"),
    [
        (Money(1234, "USD"), "12.34 USD"),
        (Money(5, "USD"), "0.05 USD"),
        (Money(-1234, "USD"), "-12.34 USD"),
        (Money(1235, "JPY"), "1235 JPY"),
        (Money(1235, "KWD"), "1.235 KWD"),
        (Money(5484, "KWD"), "5.484 KWD"),
        (Money(0, "EUR"), "0.00 EUR"),
    ],
)
def test_format_uses_the_currency_exponent(money: Money, text: str) -> None:
    assert money.format() == text


@pytest.mark.parametrize("minor", [1.5, 1.0, Decimal("1"), "100", True])
def test_money_is_a_whole_number_of_minor_units(minor: object) -> None:
    with pytest.raises(InvalidAmount):
        Money(minor, "USD")  # type: ignore[arg-type]


def test_money_arithmetic_in_one_currency() -> None:
    assert Money(1000, "USD") + Money(234, "USD") == Money(1234, "USD")
    assert Money(1000, "USD") - Money(1234, "USD") == Money(-234, "USD")
    assert -Money(5, "KWD") == Money(-5, "KWD")
    assert Money(1, "USD") < Money(2, "USD")
    assert Money(2, "USD") <= Money(2, "USD")
    assert total([Money(1, "JPY"), Money(2, "JPY"), Money(-4, "JPY")], "JPY") == Money(-1, "JPY")


@pytest.mark.parametrize(
    "operation",
    [
        lambda: Money(1, "USD") + Money(1, "EUR"),
        lambda: Money(1, "USD") - Money(1, "EUR"),
        lambda: Money(1, "USD") < Money(1, "JPY"),
        lambda: Money(1, "USD") <= Money(1, "JPY"),
        lambda: total([Money(1, "USD"), Money(1, "KWD")], "USD"),
        lambda: total([Money(1, "EUR")], "USD"),
    ],
)
def test_mixing_currencies_raises_currency_mismatch(operation: object) -> None:
    with pytest.raises(CurrencyMismatch):
        operation()  # type: ignore[operator]


def test_decimal_of_accepts_decimal_strings_and_integers() -> None:
    assert decimal_of("0.25") == Decimal("0.25")
    assert decimal_of(7) == Decimal(7)
    assert decimal_of(Decimal("1.5")) == Decimal("1.5")


@pytest.mark.parametrize("bad", [0.25, 1.0, True, "abc", "NaN", "Infinity", "-inf", None, [1]])
def test_decimal_of_refuses_floats_bools_and_non_numbers(bad: object) -> None:
    with pytest.raises(InvalidAmount):
        decimal_of(bad)  # type: ignore[arg-type]


def test_allocate_hands_leftover_units_to_the_largest_remainders_then_earlier_parts() -> None:
    # 100 / 3 = 33.33 each: one leftover unit goes to the first part (all remainders tie).
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    # 10 x (1/6, 2/6, 3/6) = 1.67, 3.33, 5: the leftover goes to the 0.67 remainder.
    assert allocate(10, [1, 2, 3]) == [2, 3, 5]
    assert allocate(5, [0, 1]) == [0, 5]
    assert allocate(0, [1, 2]) == [0, 0]
    assert allocate(7, [Decimal("0.5"), Decimal("0.5")]) == [4, 3]


def test_money_allocate_keeps_the_currency() -> None:
    assert Money(1001, "KWD").allocate([1, 1]) == [Money(501, "KWD"), Money(500, "KWD")]


@pytest.mark.parametrize("weights", [[], [0, 0], [1, -1]])
def test_allocate_refuses_empty_zero_or_negative_weights(weights: list[int]) -> None:
    with pytest.raises(InvalidAmount):
        allocate(100, weights)


@pytest.mark.parametrize(
    ("subtotal", "bps", "tax"),
    [
        (10_000, 2_000, 2_000),  # 20 %
        (1_003, 1_500, 150),  # 150.45 → 150
        (1_010, 1_950, 197),  # 196.95 → 197
        (1, 5_000, 1),  # 0.5 → 1 (half up)
        (-1, 5_000, -1),  # -0.5 → -1 (away from zero)
        (12_345, 0, 0),
    ],
)
def test_tax_is_subtotal_times_bps_rounded_half_up(subtotal: int, bps: int, tax: int) -> None:
    assert tax_of(subtotal, bps) == tax


def test_totals_sum_rounded_lines_then_add_tax() -> None:
    # Lines 548 + 823 - 355 = 1016; 8.25 % tax = 83.82 → 84.
    result = totals([548, 823, -355], single_rate(825))
    assert (result.subtotal_minor, result.tax_minor, result.total_minor) == (1016, 84, 1100)


def test_credit_beyond_the_charges_is_carried_but_an_all_credit_invoice_stays_negative() -> None:
    assert credit_to_carry([1000, -1500]) == 500
    assert credit_to_carry([1000, -400]) == 0
    assert credit_to_carry([-400, -100]) == 0
    assert credit_to_carry([]) == 0


def test_amount_due_never_goes_below_zero() -> None:
    assert amount_due(1000, 300, 200) == 500
    assert amount_due(1000, 800, 500) == 0
    assert amount_due(1000, 0) == 1000


@pytest.mark.parametrize(
    ("minor", "currency", "shown"),
    [
        (123450, "USD", "1,234.50 USD"),
        (5, "USD", "0.05 USD"),
        (1235, "JPY", "1,235 JPY"),
        (-125, "KWD", "-0.125 KWD"),
        (10**18, "KWD", "1,000,000,000,000,000.000 KWD"),
        (0, "JPY", "0 JPY"),
    ],
)
def test_an_amount_is_displayed_in_its_currency_precision(minor: int, currency: str, shown: str) -> None:
    assert display(minor, currency) == shown
