"""Charges parsed from their JSON form: what is accepted, what is refused, and the round trip back."""

from decimal import Decimal
from typing import Any

import pytest

from billing.catalogue.rules import Charge, Tier, charge_to_json, parse_charge, parse_charges
from billing.errors import InvalidCharge, UnknownCurrency
from tests.unit.billing.builders import flat, make_plan, per_seat, per_unit

GRADUATED = {
    "type": "metered",
    "name": "API calls",
    "metric_code": "api_calls",
    "model": "graduated",
    "tiers": [
        {"up_to": "100", "unit_amount_minor": "10", "flat_amount_minor": "500"},
        {"up_to": "1000", "unit_amount_minor": "5", "flat_amount_minor": "1000"},
        {"up_to": None, "unit_amount_minor": "0.25", "flat_amount_minor": "0"},
    ],
}
PACKAGE = {
    "type": "metered",
    "name": "Storage",
    "metric_code": "gb",
    "model": "package",
    "package_size": 100,
    "amount_minor": "2000",
    "free_units": "50",
}


def test_flat_charge_parses_to_a_decimal_amount() -> None:
    charge = parse_charge({"type": "flat", "name": "Base", "amount_minor": "1999.5"}, 0)
    assert charge == Charge("flat", "Base", amount=Decimal("1999.5"))
    assert charge.in_advance


def test_integer_amounts_are_accepted_as_well_as_decimal_strings() -> None:
    assert parse_charge({"type": "per_seat", "unit_amount_minor": 500}, 0).unit_amount == Decimal(500)


def test_default_names_come_from_the_kind_or_the_metric() -> None:
    assert parse_charge({"type": "per_seat", "unit_amount_minor": "5"}, 0).name == "per seat"
    assert (
        parse_charge({"type": "metered", "metric_code": "gb", "model": "per_unit", "unit_amount_minor": "1"}, 0).name
        == "gb"
    )


def test_graduated_charge_parses_its_tiers() -> None:
    charge = parse_charge(GRADUATED, 0)
    assert charge.kind == "metered"
    assert not charge.in_advance
    assert charge.model == "graduated"
    assert charge.metric_code == "api_calls"
    assert charge.tiers == (
        Tier(Decimal(100), Decimal(10), Decimal(500)),
        Tier(Decimal(1000), Decimal(5), Decimal(1000)),
        Tier(None, Decimal("0.25"), Decimal(0)),
    )


def test_tier_amounts_default_to_zero() -> None:
    charge = parse_charge({"type": "metered", "metric_code": "x", "model": "volume", "tiers": [{"up_to": None}]}, 0)
    assert charge.tiers == (Tier(None, Decimal(0), Decimal(0)),)


def test_package_charge_parses_size_amount_and_free_units() -> None:
    charge = parse_charge(PACKAGE, 0)
    assert (charge.package_size, charge.amount, charge.free_units) == (100, Decimal(2000), Decimal(50))


def test_min_amount_is_optional() -> None:
    assert parse_charge(flat(100), 0).min_amount is None
    assert parse_charge(per_unit("x", 1, min_amount_minor="1000"), 0).min_amount == Decimal(1000)


def bad_tiers(tiers: Any) -> dict[str, Any]:
    return {"type": "metered", "metric_code": "x", "model": "graduated", "tiers": tiers}


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(flat("-1"), id="negative flat amount"),
        pytest.param(per_seat("-0.01"), id="negative seat price"),
        pytest.param(per_unit("x", "-5"), id="negative unit price"),
        pytest.param(flat(100, min_amount_minor="-1"), id="negative minimum"),
        pytest.param({**PACKAGE, "free_units": "-1"}, id="negative free units"),
        pytest.param({"type": "flat", "amount_minor": 10.5}, id="float amount"),
        pytest.param({"type": "flat", "amount_minor": 10.0}, id="whole float amount"),
        pytest.param({"type": "per_seat", "unit_amount_minor": True}, id="bool amount"),
        pytest.param({"type": "flat", "amount_minor": "NaN"}, id="NaN amount"),
        pytest.param({"type": "flat", "amount_minor": "ten"}, id="text amount"),
        pytest.param({"type": "flat", "amount_minor": "1e16"}, id="amount out of range"),
        pytest.param({"type": "flat", "amount_minor": "0.0000000000001"}, id="too many decimals"),
        pytest.param({"type": "flat"}, id="missing amount"),
        pytest.param(flat(100, unit_amount_minor="5"), id="unknown field for flat"),
        pytest.param(flat(100, model="per_unit"), id="model on a flat charge"),
        pytest.param(per_unit("x", 1, tiers=[]), id="tiers on per_unit"),
        pytest.param({**GRADUATED, "colour": "blue"}, id="unknown field"),
        pytest.param(
            bad_tiers([{"up_to": "10", "unit_amount_minor": "1", "extra": 1}, {"up_to": None}]), id="unknown tier field"
        ),
        pytest.param(bad_tiers([{"up_to": "10"}, {"up_to": "10"}, {"up_to": None}]), id="equal tier bounds"),
        pytest.param(bad_tiers([{"up_to": "10"}, {"up_to": "5"}, {"up_to": None}]), id="decreasing tier bounds"),
        pytest.param(bad_tiers([{"up_to": "0"}, {"up_to": None}]), id="first bound zero"),
        pytest.param(bad_tiers([{"up_to": "10"}, {"up_to": "20"}]), id="last tier with up_to"),
        pytest.param(bad_tiers([{"up_to": None}, {"up_to": None}]), id="middle tier without up_to"),
        pytest.param(bad_tiers([{"up_to": 10.5}, {"up_to": None}]), id="float tier bound"),
        pytest.param(bad_tiers([]), id="no tiers"),
        pytest.param(bad_tiers("many"), id="tiers not a list"),
        pytest.param(bad_tiers([{"up_to": str(i)} for i in range(1, 21)] + [{"up_to": None}]), id="too many tiers"),
        pytest.param({"type": "metered", "metric_code": "x", "model": "tiered"}, id="unknown model"),
        pytest.param({"type": "metered", "metric_code": "x"}, id="missing model"),
        pytest.param({"type": "metered", "model": "per_unit", "unit_amount_minor": "1"}, id="missing metric"),
        pytest.param({"type": "metered", "metric_code": "", "model": "per_unit"}, id="empty metric"),
        pytest.param({"type": "subscription", "amount_minor": "1"}, id="unknown type"),
        pytest.param({**PACKAGE, "package_size": 0}, id="package size zero"),
        pytest.param({**PACKAGE, "package_size": 2.0}, id="package size float"),
        pytest.param({**PACKAGE, "package_size": "10"}, id="package size string"),
        pytest.param({k: v for k, v in PACKAGE.items() if k != "package_size"}, id="package size missing"),
        pytest.param(flat(1, name="x" * 201), id="name too long"),
        pytest.param(flat(1, name="bad\nname"), id="control character in name"),
        pytest.param("flat", id="not an object"),
    ],
)
def test_parse_charges_rejects_bad_input_with_invalid_charge(raw: Any) -> None:
    with pytest.raises(InvalidCharge):
        parse_charges([raw])


def test_parse_charges_rejects_a_metric_charged_twice() -> None:
    with pytest.raises(InvalidCharge, match="only once"):
        parse_charges([per_unit("api_calls", 1), {**GRADUATED, "metric_code": "api_calls"}])


def test_parse_charges_rejects_a_non_list_or_too_many_charges() -> None:
    with pytest.raises(InvalidCharge):
        parse_charges({"type": "flat", "amount_minor": "1"})
    with pytest.raises(InvalidCharge):
        parse_charges([flat(1)] * 51)
    assert len(parse_charges([flat(1)] * 50)) == 50


def test_invalid_charge_names_the_offending_charge() -> None:
    with pytest.raises(InvalidCharge, match=r"charges\[1\]"):
        parse_charges([flat(1), flat(-1)])


@pytest.mark.parametrize(
    "raw",
    [
        flat("1999.50", min_amount_minor="100"),
        per_seat("0.25"),
        per_unit("api_calls", "0.001"),
        GRADUATED,
        {**GRADUATED, "model": "volume", "min_amount_minor": "5000"},
        PACKAGE,
        {**PACKAGE, "free_units": "0"},
        flat(100000000),
        flat("999999999999.999999999999"),  # the largest amount with the most places allowed
        flat("0.000000000001"),
        flat("1e3"),
    ],
)
def test_charge_to_json_round_trips_through_parse_charge(raw: dict[str, Any]) -> None:
    charge = parse_charge(raw, 0)
    stored = charge_to_json(charge)
    assert parse_charge(stored, 0) == charge
    assert charge_to_json(parse_charge(stored, 0)) == stored


def test_charge_to_json_writes_plain_decimal_strings() -> None:
    stored = charge_to_json(parse_charge(flat("100.00"), 0))
    assert stored == {"type": "flat", "name": "Base fee", "amount_minor": "100"}
    tiers = charge_to_json(parse_charge(GRADUATED, 0))["tiers"]
    assert tiers[0] == {"up_to": "100", "unit_amount_minor": "10", "flat_amount_minor": "500"}
    assert tiers[2] == {"up_to": None, "unit_amount_minor": "0.25", "flat_amount_minor": "0"}


def test_plan_from_row_builds_a_plan_with_its_metrics_and_policies() -> None:
    plan = make_plan(
        "pro",
        [flat(1000), per_seat(500), per_unit("api_calls", "0.5"), PACKAGE],
        interval="year",
        trial_days=14,
        upgrade="next_period",
        downgrade="immediate",
    )
    assert plan.code == "pro"
    assert plan.interval == "year"
    assert plan.trial_days == 14
    assert (plan.upgrade, plan.downgrade) == ("next_period", "immediate")
    assert plan.metric_codes == frozenset({"api_calls", "gb"})
    assert len(plan.charges) == 4


def test_plan_from_row_refuses_an_unknown_currency() -> None:
    with pytest.raises(UnknownCurrency):
        make_plan("pro", [flat(1000)], currency="ABC")


def test_recurring_amount_counts_flat_and_seat_charges_not_usage() -> None:
    plan = make_plan("pro", [flat(1000), per_seat(500), per_unit("api_calls", 3)])
    assert plan.recurring_amount(3) == Decimal(2500)
    assert plan.monthly_amount(3) == Decimal(2500)


def test_monthly_amount_of_a_yearly_plan_is_a_twelfth() -> None:
    plan = make_plan("annual", [flat(12000), per_seat(1200)], interval="year")
    assert plan.recurring_amount(2) == Decimal(14400)
    assert plan.monthly_amount(2) == Decimal(1200)
