"""Percentage charges: worked examples by hand in USD, JPY and KWD (free events, a fixed fee per event, the
per-event minimum and maximum both binding, the line rounded once), their checks, and properties."""

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import limits
from billing.addons.rules import check_charge
from billing.catalogue.rules import charge_to_json, check_percentage_metrics, parse_charge
from billing.errors import InvalidAddon, InvalidCharge, PercentageNeedsSum
from billing.money import round_minor
from billing.periods import Period
from billing.rating import PercentageUsage, metered_lines, percentage_usage
from billing.usage.rules import (
    Event,
    FeeBound,
    bounds,
    fee_bound,
    fee_bound_passed,
    fee_bounds,
    max_units,
    within_bounds,
)
from tests.unit.billing.builders import utc

JANUARY = Period(utc(2026, 1, 1), utc(2026, 2, 1))


def percentage(**fields: Any) -> dict[str, Any]:
    return {"type": "metered", "name": "Payments", "metric_code": "payments", "model": "percentage", **fields}


def line_of(raw: dict[str, Any], values: list[str | int]) -> tuple[int, Decimal]:
    charge = parse_charge(raw, 0)
    usage = percentage_usage(charge, [Decimal(v) for v in values])
    [line] = metered_lines(charge, 0, usage, JANUARY)
    return line.amount_minor, line.precise_amount


def test_usd_free_event_fixed_fee_min_and_max_rounded_once() -> None:
    # 1.5 % + 30 cents per payment, at least 50 and at most 2000 cents, the first payment free. In cents:
    #   10000  free                                  ->    0
    #    1000  x 1.5 % = 15 + 30 = 45  (minimum)     ->   50
    #   10000  x 1.5 % = 150 + 30                    ->  180
    #  200000  x 1.5 % = 3000 + 30 = 3030 (maximum)  -> 2000
    #    5555  x 1.5 % = 83.325 + 30                 ->  113.325
    #    5545  x 1.5 % = 83.175 + 30                 ->  113.175
    # sum 2456.5 -> 2457 (rounding each fee first would give 2456).
    raw = percentage(
        rate="1.5", fixed_amount_minor="30", free_events=1, per_event_min_minor="50", per_event_max_minor="2000"
    )
    assert line_of(raw, [10000, 1000, 10000, 200000, 5555, 5545]) == (2457, Decimal("2456.5"))


def test_jpy_two_free_events_min_and_max() -> None:
    # 3.6 %, at least 10 and at most 500 yen, the first two payments free:
    #   1000, 1000 free; 100 x 3.6 % = 3.6 -> 10; 5000 -> 180; 20000 -> 720 -> 500; 1234 -> 44.424
    # sum 734.424 -> 734 yen.
    raw = percentage(rate="3.6", free_events=2, per_event_min_minor="10", per_event_max_minor="500")
    assert line_of(raw, [1000, 1000, 100, 5000, 20000, 1234]) == (734, Decimal("734.424"))


def test_kwd_fixed_fee_min_and_max_in_fils() -> None:
    # 2.75 % + 100 fils, at least 250 and at most 5000 fils, no free payment. In fils:
    #    1000 x 2.75 % = 27.5 + 100 = 127.5 -> 250;   20000 -> 550 + 100 = 650
    #  500000 -> 13750 + 100 = 13850 -> 5000;        33333 -> 916.6575 + 100 = 1016.6575
    # sum 6916.6575 -> 6917 fils (6.917 KWD).
    raw = percentage(rate="2.75", fixed_amount_minor="100", per_event_min_minor="250", per_event_max_minor="5000")
    assert line_of(raw, [1000, 20000, 500000, 33333]) == (6917, Decimal("6916.6575"))


def test_no_events_and_only_free_events_bill_zero_but_the_charge_minimum_applies() -> None:
    raw = percentage(rate="1", free_events=3, per_event_min_minor="50")
    assert line_of(raw, []) == (0, Decimal(0))
    assert line_of(raw, [100, 100, 100]) == (0, Decimal(0))
    assert line_of(raw, [100, 100, 100, 100]) == (50, Decimal(50))  # 1 -> the minimum, 50
    charge = parse_charge(percentage(rate="1", min_amount_minor="500"), 0)
    lines = metered_lines(charge, 0, Decimal(0), JANUARY)  # a window with nothing metered
    assert [line.amount_minor for line in lines] == [0, 500]


def test_the_line_explains_itself() -> None:
    charge = parse_charge(percentage(rate="1.5", fixed_amount_minor="30", free_events=1, per_event_max_minor="2000"), 0)
    [line] = metered_lines(charge, 0, PercentageUsage(Decimal("12000"), 3, Decimal("210")), JANUARY)
    assert line.description == (
        "Payments: 12000 unit(s) over 3 event(s), the first 1 free at 1.5% + 30 per event at most 2000 per event,"
        " 2026-01-01 to 2026-02-01"
    )
    assert (line.charge_kind, line.metric_code, line.quantity, line.unit_amount) == (
        "metered",
        "payments",
        Decimal(1),
        Decimal(210),
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rate": "0"}, "rate"),
        ({"rate": "-1"}, "negative"),
        ({"rate": "100.01"}, "rate"),
        ({}, "rate is required"),
        ({"rate": 1.5}, "rate"),
        ({"rate": "1", "fixed_amount_minor": "-1"}, "negative"),
        ({"rate": "1", "free_events": -1}, "free_events"),
        ({"rate": "1", "free_events": "3"}, "free_events"),
        ({"rate": "1", "per_event_min_minor": "10", "per_event_max_minor": "9"}, "per_event_min_minor"),
        ({"rate": "1", "per_event_max_minor": "1000000000001"}, "out of range"),
        ({"rate": "1", "unit_amount_minor": "1"}, "unexpected"),
    ],
)
def test_bad_percentage_charges_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidCharge, match=message):
        parse_charge(percentage(**fields), 0)


def test_percentage_round_trips_and_needs_a_sum_metric() -> None:
    raw = percentage(rate="100", fixed_amount_minor="0.5", free_events=2, per_event_min_minor="1")
    charge = parse_charge(raw, 0)
    assert parse_charge(charge_to_json(charge), 0) == charge
    assert charge_to_json(charge)["rate"] == "100" and "per_event_max_minor" not in charge_to_json(charge)
    check_percentage_metrics([charge], {"payments": {"aggregation": "sum"}})
    with pytest.raises(PercentageNeedsSum):
        check_percentage_metrics([charge], {"payments": {"aggregation": "count"}})
    assert PercentageNeedsSum.code == "percentage_needs_sum_metric"
    with pytest.raises(InvalidAddon):
        check_charge(raw, "USD")


def test_the_usage_bound_of_a_percentage_charge_is_its_rate() -> None:
    # (10^15) / 2 % = 5 x 10^16 summed value.
    assert max_units(parse_charge(percentage(rate="2"), 0)) == Decimal(5 * 10**16)


# -- properties ------------------------------------------------------------------------------------------

money = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False)


@st.composite
def percentage_charges(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "rate": str(draw(st.decimals(min_value="0.001", max_value=100, places=3))),
        "fixed_amount_minor": str(draw(money)),
        "free_events": draw(st.integers(min_value=0, max_value=5)),
    }
    bounds = sorted(draw(st.lists(money, min_size=2, max_size=2)))
    if draw(st.booleans()):
        fields["per_event_min_minor"] = str(bounds[0])
    if draw(st.booleans()):
        fields["per_event_max_minor"] = str(bounds[1])
    return percentage(**fields)


@settings(max_examples=200, deadline=None)
@given(
    percentage_charges(),
    st.lists(st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False), max_size=30),
)
def test_the_line_is_the_rounded_sum_of_clamped_fees(raw: dict[str, Any], values: list[Decimal]) -> None:
    # Computed here independently of billing.rating: each paying event's fee, clamped.
    low = Decimal(raw["per_event_min_minor"]) if "per_event_min_minor" in raw else None
    high = Decimal(raw["per_event_max_minor"]) if "per_event_max_minor" in raw else None
    fees = []
    for value in values[raw["free_events"] :]:
        fee = value * Decimal(raw["rate"]) / 100 + Decimal(raw["fixed_amount_minor"])
        fee = fee if low is None or fee >= low else low
        fee = fee if high is None or fee <= high else high
        assert (low is None or fee >= low) and (high is None or fee <= high)
        fees.append(fee)
    amount, precise = line_of(raw, values)  # type: ignore[arg-type]
    assert precise == sum(fees, Decimal(0))
    assert amount == round_minor(sum(fees, Decimal(0)))
    # Never more than each paying event at its maximum, never less than each at its minimum.
    if high is not None:
        assert precise <= high * len(fees)
    if low is not None:
        assert precise >= low * len(fees)


# -- the ingestion bound of a per-event fee ---------------------------------------------------------------

PAYMENTS = {"code": "payments", "aggregation": "sum", "field": None}


def _events(values: list[Decimal]) -> list[Event]:
    return [Event(i, f"k{i}", "payments", utc(2026, 1, 10), value, None) for i, value in enumerate(values)]


def _ingest(raw: dict[str, Any], values: list[Decimal], total: Decimal, count: int) -> tuple[list[int], list[int]]:
    charge = parse_charge(raw, 0)
    kept, refused = within_bounds(
        _events(values),
        {"payments": PAYMENTS},
        bounds([charge]),
        {"payments": total},
        fee_bounds([charge]),
        {"payments": count},
    )
    assert {rejection.code for rejection in refused} <= {"usage_limit_exceeded"}
    return [event.index for event in kept], [rejection.index for rejection in refused]


def test_a_per_event_fee_bounds_the_number_of_events_not_only_their_sum() -> None:
    # 1 % + 10^12 per event of 100 each: an event adds at most 1 + 10^12. 998 stored (99 800 summed): the 999th
    # reaches 999 x (10^12 + 1) = 999 000 000 000 999, the 1000th 10^15 + 1000, beyond MAX_LINE_MINOR (10^15).
    raw = percentage(rate="1", fixed_amount_minor=str(limits.MAX_FLAT_MINOR))
    assert fee_bound(parse_charge(raw, 0)) == FeeBound(per_unit=Decimal("0.01"), per_event=Decimal(10**12))
    hundred = [Decimal(100)] * 3
    assert _ingest(raw, hundred, Decimal(99_800), 998) == ([0], [1, 2])
    # The sum alone (1 % of 10^12 x 10^5) is far within its own bound: without the count all three would pass.
    assert max_units(parse_charge(raw, 0)) == Decimal(10**17)
    # A per-event minimum counts as the fixed fee does; a per-event maximum caps both; none: no count bound.
    floor = percentage(rate="1", per_event_min_minor=str(limits.MAX_FLAT_MINOR))
    assert _ingest(floor, hundred, Decimal(99_800), 998) == ([0], [1, 2])
    capped = percentage(rate="1", fixed_amount_minor="1000", per_event_max_minor="10")
    assert fee_bound(parse_charge(capped, 0)) == FeeBound(per_unit=Decimal("0.01"), per_event=Decimal(10))
    assert fee_bound(parse_charge(percentage(rate="1", per_event_max_minor="10"), 0)) is None
    assert fee_bounds([parse_charge(percentage(rate="1"), 0)]) == {}


@settings(max_examples=60, deadline=None)
@given(
    rate=st.decimals(min_value="0.001", max_value=100, places=3),
    fixed=st.sampled_from([0, limits.MAX_FLAT_MINOR]) | st.integers(min_value=0, max_value=limits.MAX_FLAT_MINOR),
    low=st.none() | st.integers(min_value=10**11, max_value=limits.MAX_FLAT_MINOR),
    high=st.none() | st.integers(min_value=10**11, max_value=limits.MAX_FLAT_MINOR),
    free=st.integers(min_value=0, max_value=3),
    value=st.decimals(min_value=0, max_value=limits.MAX_USAGE_VALUE, places=2),
    stored=st.integers(min_value=950, max_value=1100) | st.integers(min_value=0, max_value=1100),
)
def test_events_a_percentage_bound_accepts_never_rate_a_line_past_the_line_bound(
    rate: Decimal, fixed: int, low: int | None, high: int | None, free: int, value: Decimal, stored: int
) -> None:
    """Whatever the charge, events of one value: those stored and those the bound accepts rate within
    MAX_LINE_MINOR (the cycle never meets AmountOutOfRange through them)."""
    fields: dict[str, Any] = {"rate": str(rate), "fixed_amount_minor": str(fixed), "free_events": free}
    if low is not None and high is not None and low > high:
        low, high = high, low
    if low is not None:
        fields["per_event_min_minor"] = str(low)
    if high is not None:
        fields["per_event_max_minor"] = str(high)
    raw = percentage(**fields)
    charge = parse_charge(raw, 0)
    # What is stored was accepted against the same bound: keep only a count of it that fits.
    fees = fee_bounds([charge]).get("payments", ())
    while stored and (
        fee_bound_passed(fees, value * stored, stored) is not None or value * stored > (max_units(charge) or 0)
    ):
        stored -= 1
    kept, _ = _ingest(raw, [value] * 50, value * stored, stored)
    usage = percentage_usage(charge, [value] * (stored + len(kept)))
    [line] = metered_lines(charge, 0, usage, JANUARY)
    assert abs(line.amount_minor) <= limits.MAX_LINE_MINOR


@settings(max_examples=100, deadline=None)
@given(
    percentage_charges(),
    st.lists(st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False), max_size=12),
    st.integers(min_value=0, max_value=12),
)
def test_free_events_are_granted_once_per_period_however_its_windows_split_it(
    raw: dict[str, Any], values: list[Decimal], cut: int
) -> None:
    """A mid-period plan change splits the period into windows: the windows' fees, each after the events
    before it, add up to the whole period's, the first `free_events` of the period free once."""
    charge = parse_charge(raw, 0)
    first, second = values[:cut], values[cut:]
    whole = percentage_usage(charge, values)
    split = percentage_usage(charge, first).fees + percentage_usage(charge, second, earlier_events=len(first)).fees
    assert split == whole.fees
    # Three free payments of a period, two of them in an earlier window: one is left for the next.
    three_free = parse_charge(percentage(rate="10", free_events=3), 0)
    assert percentage_usage(three_free, [Decimal(100)] * 2, earlier_events=2).fees == 10
