"""Worked examples, computed by hand, of every charge model and of advance (flat, per-seat) lines."""

import re
from decimal import Decimal
from typing import Any

import pytest

from billing.catalogue.rules import parse_charge
from billing.money import Money
from billing.periods import Period
from billing.rating import advance_lines, charge_total, metered_lines, proration_lines
from billing.subscriptions.lifecycle import usage_lines
from tests.unit.billing.builders import amounts, flat, make_plan, per_seat, per_unit, utc

JANUARY = Period(utc(2026, 1, 1), utc(2026, 2, 1))  # 31 days
FROM_15_JANUARY = Period(utc(2026, 1, 15), utc(2026, 2, 1))  # 17 days

TIERS = [
    {"up_to": "100", "unit_amount_minor": "10", "flat_amount_minor": "500"},
    {"up_to": "1000", "unit_amount_minor": "5", "flat_amount_minor": "1000"},
    {"up_to": None, "unit_amount_minor": "0.25", "flat_amount_minor": "0"},
]


def metered(model: str, **fields: Any) -> dict[str, Any]:
    return {"type": "metered", "name": "API calls", "metric_code": "api_calls", "model": model, **fields}


def rate(raw: dict[str, Any], units: int | str) -> list[int]:
    return amounts(metered_lines(parse_charge(raw, 0), 0, Decimal(units), JANUARY))


# -- per unit -------------------------------------------------------------------------------------------


def test_per_unit_fractional_price_is_rounded_once_per_line() -> None:
    # 1234 x 0.25 = 308.5 → 309 (half up).
    lines = metered_lines(parse_charge(per_unit("api_calls", "0.25"), 0), 0, Decimal(1234), JANUARY)
    assert len(lines) == 1
    assert lines[0].precise_amount == Decimal("308.5")
    assert lines[0].amount_minor == 309
    assert (lines[0].quantity, lines[0].unit_amount) == (Decimal(1234), Decimal("0.25"))
    assert lines[0].metric_code == "api_calls"
    assert lines[0].charge_kind == "metered"


def test_per_unit_zero_units_bills_a_zero_line() -> None:
    assert rate(per_unit("api_calls", 7), 0) == [0]


# -- graduated ------------------------------------------------------------------------------------------


def test_graduated_prices_each_unit_in_its_tier_and_adds_each_reached_tiers_flat_fee() -> None:
    # 1503 units: tier 1 100 x 10 = 1000, + flat 500;
    #             tier 2 900 x 5 = 4500, + flat 1000;
    #             tier 3 503 x 0.25 = 125.75 → 126.  Total 7126.
    assert rate(metered("graduated", tiers=TIERS), 1503) == [1000, 500, 4500, 1000, 126]


def test_graduated_at_a_tier_bound_does_not_reach_the_next_tier() -> None:
    # 100 units fill tier 1 exactly: 1000 + 500; tier 2 has no unit, so no flat fee.
    assert rate(metered("graduated", tiers=TIERS), 100) == [1000, 500]


def test_graduated_one_unit_into_a_tier_adds_its_flat_fee() -> None:
    # 101 units: 1000 + 500, then 1 x 5 = 5 + flat 1000. Total 2505.
    assert rate(metered("graduated", tiers=TIERS), 101) == [1000, 500, 5, 1000]


def test_graduated_line_descriptions_name_the_tier_range() -> None:
    lines = metered_lines(parse_charge(metered("graduated", tiers=TIERS), 0), 0, Decimal(1503), JANUARY)
    # The range separator is cosmetic; the tier number and its bounds are not.
    assert re.search(r"tier 2 \(101\D1000\)", lines[2].description)
    assert "flat fee" in lines[3].description
    assert "tier 3 (1001 and up)" in lines[4].description


# -- volume ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (1500, [375]),  # all 1500 at tier 3: 1500 x 0.25 = 375; tier 3 has no flat fee
        (500, [2500, 1000]),  # all 500 at tier 2: 500 x 5 = 2500, + flat 1000
        (100, [1000, 500]),  # all 100 at tier 1: 100 x 10 = 1000, + flat 500
        (101, [505, 1000]),  # all 101 at tier 2: 505, + flat 1000
        (1001, [250]),  # 1001 x 0.25 = 250.25 → 250
    ],
)
def test_volume_prices_every_unit_at_the_tier_the_total_falls_in(units: int, expected: list[int]) -> None:
    assert rate(metered("volume", tiers=TIERS), units) == expected


def test_volume_zero_units_bills_zero_without_the_first_tiers_flat_fee() -> None:
    assert rate(metered("volume", tiers=TIERS), 0) == [0]


# -- package --------------------------------------------------------------------------------------------

PACKAGE = metered("package", package_size=100, amount_minor="2000", free_units="50")


@pytest.mark.parametrize(
    ("units", "packages"),
    [
        (0, 0),  # nothing used
        (50, 0),  # all free
        (51, 1),  # 1 billable unit → ceil(1/100) = 1 package
        (150, 1),  # 100 billable → exactly 1 package
        (151, 2),  # 101 billable → ceil(1.01) = 2
        (250, 2),  # 200 billable → 2
        (251, 3),  # 201 billable → ceil(2.01) = 3
    ],
)
def test_package_bills_whole_packages_of_the_units_beyond_the_free_ones(units: int, packages: int) -> None:
    assert charge_total(metered_lines(parse_charge(PACKAGE, 0), 0, Decimal(units), JANUARY)) == packages * 2000


def test_package_without_free_units_rounds_a_part_package_up() -> None:
    raw = metered("package", package_size=10, amount_minor="300")
    # 25 units → ceil(2.5) = 3 packages x 300 = 900; 30 → 3 → 900; 31 → 4 → 1200.
    assert rate(raw, 25) == [900]
    assert rate(raw, 30) == [900]
    assert rate(raw, 31) == [1200]


# -- minimum --------------------------------------------------------------------------------------------


def test_metered_minimum_adds_a_true_up_line_for_the_shortfall() -> None:
    raw = per_unit("api_calls", 10, min_amount_minor="1000")
    # 30 x 10 = 300 < 1000: a true-up line of 700 brings the charge to 1000.
    lines = metered_lines(parse_charge(raw, 0), 0, Decimal(30), JANUARY)
    assert amounts(lines) == [300, 700]
    assert "minimum" in lines[1].description
    assert charge_total(lines) == 1000


def test_metered_minimum_is_not_added_when_usage_reaches_it() -> None:
    raw = per_unit("api_calls", 10, min_amount_minor="1000")
    assert rate(raw, 100) == [1000]  # exactly the minimum
    assert rate(raw, 200) == [2000]


def test_graduated_minimum_tops_up_the_tier_lines() -> None:
    # 100 units: 1000 + 500 = 1500; minimum 5000 → true-up 3500.
    assert rate(metered("graduated", tiers=TIERS, min_amount_minor="5000"), 100) == [1000, 500, 3500]


def test_zero_usage_with_a_minimum_bills_the_whole_minimum() -> None:
    assert sum(rate(per_unit("api_calls", 10, min_amount_minor="1000"), 0)) == 1000


# -- usage lines of a plan ------------------------------------------------------------------------------


def test_usage_lines_bill_each_metric_of_the_plan_from_its_own_usage() -> None:
    plan = make_plan("pro", [flat(1000), per_unit("api_calls", 2), per_unit("gb", 50)])
    lines = usage_lines(plan, {"api_calls": Decimal(150), "gb": Decimal(3), "other": Decimal(9)}, JANUARY)
    # 150 x 2 = 300; 3 x 50 = 150. No line for the flat charge or the unknown metric.
    assert [(line.metric_code, line.amount_minor) for line in lines] == [("api_calls", 300), ("gb", 150)]
    assert [line.charge_index for line in lines] == [1, 2]


@pytest.mark.parametrize("model", ["per_unit", "graduated", "volume", "package"])
def test_usage_lines_bill_a_line_even_for_zero_units(model: str) -> None:
    """`lifecycle.usage_lines` promises "a line even for zero units" for every metered charge."""
    fields: dict[str, dict[str, Any]] = {
        "per_unit": {"unit_amount_minor": "2"},
        "graduated": {"tiers": TIERS},
        "volume": {"tiers": TIERS},
        "package": {"package_size": 10, "amount_minor": "300"},
    }
    plan = make_plan("pro", [metered(model, **fields[model])])
    lines = usage_lines(plan, {}, JANUARY)
    assert len(lines) >= 1
    assert sum(amounts(lines)) == 0


# -- advance lines: flat and per seat -------------------------------------------------------------------


def test_first_partial_calendar_period_prorates_flat_and_per_seat_by_17_of_31_days() -> None:
    plan = make_plan("pro", [flat(1000), per_seat(500), per_unit("api_calls", 2)])
    lines = advance_lines(plan, 3, FROM_15_JANUARY, JANUARY)
    # Flat: 1000 x 17/31 = 548.387… → 548.  Seats: 500 x 3 = 1500 x 17/31 = 822.580… → 823.
    assert amounts(lines) == [548, 823]
    assert [line.charge_kind for line in lines] == ["flat", "per_seat"]
    assert lines[0].precise_amount == Decimal(1000) * 17 / 31
    assert all("(17/31 days)" in line.description for line in lines)
    assert re.search(r"Seat \S 3\b", lines[1].description)


def test_full_period_advance_lines_bill_the_whole_price() -> None:
    plan = make_plan("pro", [flat(1000), per_seat("499.5")])
    lines = advance_lines(plan, 3, JANUARY, JANUARY)
    # 499.5 x 3 = 1498.5 → 1499.
    assert amounts(lines) == [1000, 1499]
    assert all("days)" not in line.description for line in lines)


def test_zero_decimal_currency_prorates_to_whole_yen() -> None:
    plan = make_plan("jp", [flat(1000)], currency="JPY")
    # 1000 JPY x 17/31 = 548.387… → 548 JPY.
    [line] = advance_lines(plan, 1, FROM_15_JANUARY, JANUARY)
    assert line.amount_minor == 548
    assert Money(line.amount_minor, "JPY").format() == "548 JPY"


def test_three_decimal_currency_prorates_to_whole_fils() -> None:
    plan = make_plan("kw", [flat(10_000)], currency="KWD")
    # 10.000 KWD = 10000 fils x 17/31 = 5483.870… → 5484 fils = 5.484 KWD.
    [line] = advance_lines(plan, 1, FROM_15_JANUARY, JANUARY)
    assert line.amount_minor == 5484
    assert Money(line.amount_minor, "KWD").format() == "5.484 KWD"


def test_yearly_plan_first_calendar_period_is_prorated_over_the_year() -> None:
    plan = make_plan("annual", [flat(120_000)], interval="year")
    period = Period(utc(2026, 7, 1), utc(2027, 1, 1))  # 184 days
    year = Period(utc(2026, 1, 1), utc(2027, 1, 1))  # 365 days
    # 120000 x 184/365 = 60493.150… → 60493.
    assert amounts(advance_lines(plan, 1, period, year)) == [60_493]


def test_proration_lines_credit_negative_and_skip_zero_charges() -> None:
    plan = make_plan("pro", [flat(1000), per_seat(0)])
    rest = Period(utc(2026, 1, 21), utc(2026, 2, 1))  # 11 days
    # Credit: -(1000 x 11/31) = -354.838… → -355; the zero seat price gives no line.
    credits = proration_lines(plan, 2, rest, JANUARY, credit=True, change_at=utc(2026, 1, 21))
    assert amounts(credits) == [-355]
    assert credits[0].charge_kind == "proration"
    assert "Unused time" in credits[0].description
    charges = proration_lines(plan, 2, rest, JANUARY, credit=False, change_at=utc(2026, 1, 21))
    assert amounts(charges) == [355]
    assert "Remaining time" in charges[0].description
