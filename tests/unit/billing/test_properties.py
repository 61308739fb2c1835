"""Properties of the billing core, checked with hypothesis over generated amounts, dates and plans."""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from billing.catalogue.rules import charge_to_json, parse_charge
from billing.invoices.totals import credit_to_carry, single_rate, totals
from billing.money import allocate, round_minor
from billing.periods import Period, full_period_containing, midnight, period_from, prorate
from billing.rating import Line, advance_lines, charge_total, metered_lines
from billing.subscriptions.lifecycle import cancel_now, change, cross_boundary, start
from tests.unit.billing.builders import amounts, make_plan, precise_total, utc

PROPERTY = settings(max_examples=200, deadline=None)
HALF = Decimal("0.5")
JANUARY = Period(utc(2026, 1, 1), utc(2026, 2, 1))

prices = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False, allow_infinity=False)
days = st.dates(min_value=date(2024, 1, 1), max_value=date(2030, 12, 31))
intervals = st.sampled_from(["month", "year"])
anchors = st.sampled_from(["calendar", "anniversary"])


def at_midnight(day: date) -> Any:
    return utc(day.year, day.month, day.day)


# -- rounding and totals --------------------------------------------------------------------------------


@PROPERTY
@given(st.decimals(min_value=-(10**9), max_value=10**9, places=6, allow_nan=False, allow_infinity=False))
def test_round_minor_is_half_up_away_from_zero(amount: Decimal) -> None:
    rounded = round_minor(amount)
    assert abs(rounded - amount) <= HALF
    if abs(rounded - amount) == HALF:
        assert abs(rounded) > abs(amount)  # a tie goes away from zero
    assert round_minor(-amount) == -rounded


@PROPERTY
@given(
    st.lists(st.tuples(prices, st.integers(1, 366), st.booleans()), max_size=30),
    st.integers(0, 10_000),
)
def test_invoice_subtotal_is_the_sum_of_the_lines_each_rounded_once(
    raw_lines: list[tuple[Decimal, int, bool]], tax_bps: int
) -> None:
    lines = []
    for amount, period_days, credit in raw_lines:
        remaining = min(period_days, 17)
        precise = prorate(amount, remaining, period_days)
        lines.append(Line("line", "proration", Decimal(1), amount, -precise if credit else precise, JANUARY))
    result = totals(amounts(lines), single_rate(tax_bps))
    assert result.subtotal_minor == sum(line.amount_minor for line in lines)
    assert abs(result.subtotal_minor - precise_total(lines)) <= HALF * len(lines)
    exact_tax = Decimal(result.subtotal_minor) * tax_bps / 10_000
    assert abs(result.tax_minor - exact_tax) <= HALF
    assert result.tax_minor == round_minor(exact_tax)
    assert result.total_minor == result.subtotal_minor + result.tax_minor


@PROPERTY
@given(st.lists(st.integers(-(10**9), 10**9), max_size=30), st.integers(0, 10_000))
def test_no_invoice_total_is_negative_unless_all_its_lines_are_credits(line_amounts: list[int], tax_bps: int) -> None:
    carried = credit_to_carry(line_amounts)
    assert carried >= 0
    if any(amount > 0 for amount in line_amounts):
        after = totals([*line_amounts, carried], single_rate(tax_bps))
        assert after.subtotal_minor >= 0
        assert after.total_minor >= 0
        # Only the excess is carried: either nothing, or exactly enough to reach zero.
        assert carried == 0 or after.subtotal_minor == 0
    else:
        assert carried == 0


# -- allocation -----------------------------------------------------------------------------------------


@PROPERTY
@given(
    st.integers(-(10**12), 10**12),
    st.lists(st.integers(0, 10**6), min_size=1, max_size=20).filter(any),
)
def test_allocate_parts_sum_to_the_whole_each_within_one_unit_of_its_share(minor: int, weights: list[int]) -> None:
    parts = allocate(minor, weights)
    assert len(parts) == len(weights)
    assert sum(parts) == minor
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        exact = Decimal(minor) * weight / weight_sum
        assert abs(part - exact) < 1
        assert part * minor >= 0  # no part has the opposite sign
        if weight == 0:
            assert part == 0


@PROPERTY
@given(
    st.integers(-(10**9), 10**9),
    st.lists(
        st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False, allow_infinity=False),
        min_size=1,
        max_size=10,
    ).filter(any),
)
def test_allocate_by_decimal_weights_also_sums_to_the_whole(minor: int, weights: list[Decimal]) -> None:
    parts = allocate(minor, weights)
    assert sum(parts) == minor
    weight_sum = sum(weights)
    for part, weight in zip(parts, weights, strict=True):
        assert abs(part - Decimal(minor) * weight / weight_sum) < 1


# -- periods and proration ------------------------------------------------------------------------------


@PROPERTY
@given(st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False, allow_infinity=False), st.integers(1, 366))
def test_prorating_a_full_period_gives_the_full_price(amount: Decimal, period_days: int) -> None:
    assert prorate(amount, period_days, period_days) == amount


@PROPERTY
@given(days, days, intervals, anchors, prices, prices, st.integers(1, 500))
def test_advance_lines_for_a_whole_period_bill_the_whole_price(
    day: date, anchor_day: date, interval: str, anchor: str, flat: Decimal, seat: Decimal, seats: int
) -> None:
    plan = make_plan(
        "p",
        [{"type": "flat", "amount_minor": str(flat)}, {"type": "per_seat", "unit_amount_minor": str(seat)}],
        interval=interval,
    )
    full = full_period_containing(at_midnight(day), interval, anchor, anchor_day)  # type: ignore[arg-type]
    assert period_from(full.start, interval, anchor, anchor_day) == full  # type: ignore[arg-type]
    lines = advance_lines(plan, seats, full, full)
    assert [line.precise_amount for line in lines] == [flat, seat * seats]
    assert sum(amounts(lines)) == round_minor(flat) + round_minor(seat * seats)


@PROPERTY
@given(days, days, intervals, anchors)
def test_periods_contain_their_day_and_follow_each_other_without_gaps(
    day: date, anchor_day: date, interval: str, anchor: str
) -> None:
    at = at_midnight(day)
    full = full_period_containing(at, interval, anchor, anchor_day)  # type: ignore[arg-type]
    assert full.start <= at < full.end
    assert full.start == midnight(full.start)
    following = period_from(full.end, interval, anchor, anchor_day)  # type: ignore[arg-type]
    assert following.start == full.end
    assert following == full_period_containing(full.end, interval, anchor, anchor_day)  # type: ignore[arg-type]
    if interval == "month":
        assert 28 <= full.days <= 31
    else:
        assert full.days in (365, 366)
    if anchor == "calendar":
        assert full.start.day == 1
    else:
        month_end = (following.start.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        assert following.start.day == min(anchor_day.day, month_end.day)


# -- upgrades -------------------------------------------------------------------------------------------


@PROPERTY
@given(
    start_day=days,
    anchor=anchors,
    old_flat=prices,
    old_seat=prices,
    old_seats=st.integers(1, 50),
    extra_flat=prices,
    new_seat=prices,
    new_seats=st.integers(1, 50),
    offset=st.integers(0, 365),
)
def test_immediate_upgrade_credit_plus_charge_is_the_price_difference_over_the_remaining_days(
    start_day: date,
    anchor: str,
    old_flat: Decimal,
    old_seat: Decimal,
    old_seats: int,
    extra_flat: Decimal,
    new_seat: Decimal,
    new_seats: int,
    offset: int,
) -> None:
    old = make_plan(
        "old",
        [{"type": "flat", "amount_minor": str(old_flat)}, {"type": "per_seat", "unit_amount_minor": str(old_seat)}],
    )
    old_price = old.recurring_amount(old_seats)
    new_flat = old_price + extra_flat  # at least the old price whatever the seats: always an upgrade
    new = make_plan(
        "new",
        [{"type": "flat", "amount_minor": str(new_flat)}, {"type": "per_seat", "unit_amount_minor": str(new_seat)}],
    )
    # At an equal price, fewer seats is a downgrade.
    assume(new.recurring_amount(new_seats) > old_price or new_seats >= old_seats)
    sub = cross_boundary(start(old, old_seats, at_midnight(start_day), anchor), {}).subscription  # type: ignore[arg-type]
    assume(offset < sub.current_period.days)
    change_at = sub.current_period.start + timedelta(days=offset, hours=13)
    full = sub.full_period()
    remaining = (sub.current_period.end.date() - change_at.date()).days

    result = change(sub, new, new_seats, change_at, {})

    assert (result.direction, result.timing) == ("upgrade", "immediate")
    assert all(line.charge_kind == "proration" for line in result.lines)
    credits = [line for line in result.lines if line.precise_amount < 0]
    assert all(line.amount_minor <= 0 for line in credits)
    expected = (new.recurring_amount(new_seats) - old_price) * remaining / full.days
    assert abs(sum(amounts(result.lines)) - expected) <= HALF * len(result.lines)
    assert result.subscription.current_period == sub.current_period


@PROPERTY
@given(
    start_day=days,
    anchor=anchors,
    interval=intervals,
    flat=prices,
    seat=prices,
    seats=st.integers(1, 50),
    offset=st.integers(0, 366),
)
def test_cancel_now_credits_the_unused_days_of_the_advance_charges(
    start_day: date, anchor: str, interval: str, flat: Decimal, seat: Decimal, seats: int, offset: int
) -> None:
    plan = make_plan(
        "p",
        [
            {"type": "flat", "amount_minor": str(flat)},
            {"type": "per_seat", "unit_amount_minor": str(seat)},
            {"type": "metered", "metric_code": "m", "model": "per_unit", "unit_amount_minor": "3"},
        ],
        interval=interval,
    )
    sub = cross_boundary(start(plan, seats, at_midnight(start_day), anchor), {}).subscription  # type: ignore[arg-type]
    assume(offset < sub.current_period.days)
    cancel_at = sub.current_period.start + timedelta(days=offset, hours=5)
    remaining = sub.current_period.days - offset

    result = cancel_now(sub, cancel_at, {"m": Decimal(7)})

    expected_credit = -plan.recurring_amount(seats) * remaining / sub.full_period().days
    assert abs(sum(amounts(result.credit_lines)) - expected_credit) <= HALF * len(result.credit_lines)
    assert all(line.amount_minor <= 0 for line in result.credit_lines)
    assert amounts(result.usage_lines) == [21]  # 7 units x 3, billed at once
    assert result.subscription.status == "canceled"


# -- charge models --------------------------------------------------------------------------------------


@st.composite
def tiered(draw: st.DrawFn) -> tuple[list[dict[str, Any]], Decimal]:
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), min_size=1, max_size=4)))
    money = st.decimals(min_value=0, max_value=10_000, places=3, allow_nan=False, allow_infinity=False)
    tiers: list[dict[str, Any]] = [
        {"up_to": str(bound), "unit_amount_minor": str(draw(money)), "flat_amount_minor": str(draw(money))}
        for bound in bounds
    ]
    tiers.append({"up_to": None, "unit_amount_minor": str(draw(money)), "flat_amount_minor": str(draw(money))})
    units = draw(st.decimals(min_value=0, max_value=bounds[0], places=2, allow_nan=False, allow_infinity=False))
    return tiers, units


@PROPERTY
@given(tiered())
def test_graduated_and_volume_agree_when_only_the_first_tier_is_touched(
    case: tuple[list[dict[str, Any]], Decimal],
) -> None:
    tiers, units = case
    graduated = parse_charge({"type": "metered", "metric_code": "m", "model": "graduated", "tiers": tiers}, 0)
    volume = parse_charge({"type": "metered", "metric_code": "m", "model": "volume", "tiers": tiers}, 0)
    graduated_lines = metered_lines(graduated, 0, units, JANUARY)
    volume_lines = metered_lines(volume, 0, units, JANUARY)
    assert charge_total(graduated_lines) == charge_total(volume_lines)
    assert precise_total(graduated_lines) == precise_total(volume_lines)


@PROPERTY
@given(
    units=st.integers(0, 10**6),
    size=st.integers(1, 1000),
    amount=prices,
    free=st.integers(0, 1000),
)
def test_package_bills_the_ceiling_of_billable_units_over_the_package_size(
    units: int, size: int, amount: Decimal, free: int
) -> None:
    charge = parse_charge(
        {
            "type": "metered",
            "metric_code": "m",
            "model": "package",
            "package_size": size,
            "amount_minor": str(amount),
            "free_units": str(free),
        },
        0,
    )
    packages = -(-max(units - free, 0) // size)  # integer ceiling division
    lines = metered_lines(charge, 0, Decimal(units), JANUARY)
    assert precise_total(lines) == packages * amount


# -- charge JSON round trip -----------------------------------------------------------------------------

decimal_text = st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False).map(str)
names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), min_size=1, max_size=40)
optional_minimum = st.one_of(st.none(), decimal_text)


@st.composite
def raw_charges(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["flat", "per_seat", "per_unit", "graduated", "volume", "package"]))
    raw: dict[str, Any] = {"name": draw(names)}
    if kind == "flat":
        raw |= {"type": "flat", "amount_minor": draw(decimal_text)}
    elif kind == "per_seat":
        raw |= {"type": "per_seat", "unit_amount_minor": draw(decimal_text)}
    else:
        raw |= {
            "type": "metered",
            "model": kind,
            "metric_code": draw(st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)),
        }
        if kind == "per_unit":
            raw["unit_amount_minor"] = draw(decimal_text)
        elif kind == "package":
            raw |= {
                "package_size": draw(st.integers(1, 10**6)),
                "amount_minor": draw(decimal_text),
                "free_units": draw(decimal_text),
            }
        else:
            bounds = sorted(draw(st.sets(st.decimals(min_value="0.01", max_value=10**9, places=2), max_size=5)))
            raw["tiers"] = [
                {"up_to": str(bound), "unit_amount_minor": draw(decimal_text), "flat_amount_minor": draw(decimal_text)}
                for bound in bounds
            ] + [{"up_to": None, "unit_amount_minor": draw(decimal_text), "flat_amount_minor": draw(decimal_text)}]
    minimum = draw(optional_minimum)
    if minimum is not None:
        raw["min_amount_minor"] = minimum
    return raw


@PROPERTY
@given(raw_charges())
def test_charge_to_json_round_trips_through_parse_charge(raw: dict[str, Any]) -> None:
    charge = parse_charge(raw, 0)
    stored = charge_to_json(charge)
    assert parse_charge(stored, 0) == charge
    assert charge_to_json(parse_charge(stored, 0)) == stored
