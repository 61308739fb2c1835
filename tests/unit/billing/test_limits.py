"""The numeric bounds of billing: every input the API accepts rates to lines and invoices that fit in a bigint
with a wide margin, and a figure beyond the bounds is a domain error (never an overflow in the database)."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from billing import limits
from billing.catalogue.rules import parse_charge
from billing.errors import AmountOutOfRange, InvalidCharge
from billing.invoices.totals import single_rate, totals
from billing.periods import Period
from billing.rating import advance_lines, metered_lines
from tests.unit.billing.builders import make_plan, per_seat, per_unit, utc

JANUARY = Period(utc(2026, 1, 1), utc(2026, 2, 1))
BIGINT_MAX = 2**63 - 1


def test_the_bounds_leave_a_wide_margin_below_bigint() -> None:
    # The largest advance line: the largest unit price for the most seats.
    assert limits.MAX_UNIT_PRICE_MINOR * limits.MAX_SEATS <= limits.MAX_LINE_MINOR
    assert limits.MAX_FLAT_MINOR <= limits.MAX_LINE_MINOR
    # The largest invoice, taxed at 100 %, is still forty times below bigint.
    assert 2 * limits.MAX_INVOICE_MINOR * 40 < BIGINT_MAX
    assert limits.MAX_TAX_BPS == 10_000


def test_the_largest_accepted_per_seat_price_for_the_most_seats_is_billable() -> None:
    plan = make_plan("big", [per_seat(limits.MAX_UNIT_PRICE_MINOR)])
    lines = advance_lines(plan, limits.MAX_SEATS, JANUARY, JANUARY)
    assert [line.amount_minor for line in lines] == [limits.MAX_UNIT_PRICE_MINOR * limits.MAX_SEATS]


def test_a_unit_price_beyond_the_bound_is_refused_when_the_plan_is_parsed() -> None:
    with pytest.raises(InvalidCharge):
        parse_charge(per_seat(limits.MAX_UNIT_PRICE_MINOR + 1), 0)
    with pytest.raises(InvalidCharge):
        parse_charge(per_unit("bytes", limits.MAX_UNIT_PRICE_MINOR + 1), 0)
    with pytest.raises(InvalidCharge):
        parse_charge({"type": "flat", "amount_minor": str(limits.MAX_FLAT_MINOR + 1)}, 0)


def test_a_metered_line_beyond_the_bound_raises_amount_out_of_range() -> None:
    charge = parse_charge(per_unit("bytes", limits.MAX_UNIT_PRICE_MINOR), 0)
    # Legacy or accumulated usage: 10^12 units at the largest unit price is 10^21 minor units.
    with pytest.raises(AmountOutOfRange) as raised:
        metered_lines(charge, 0, Decimal(10**12), JANUARY)
    assert raised.value.code == "amount_out_of_range"


def test_an_invoice_beyond_the_bound_raises_amount_out_of_range() -> None:
    line = limits.MAX_LINE_MINOR
    many = [line] * (limits.MAX_INVOICE_MINOR // line + 1)
    with pytest.raises(AmountOutOfRange):
        totals(many, single_rate(10_000))
    with pytest.raises(AmountOutOfRange):
        totals([-line] * (limits.MAX_INVOICE_MINOR // line + 1), [])
    fits = totals([line] * (limits.MAX_INVOICE_MINOR // line), single_rate(10_000))
    assert fits.total_minor == 2 * limits.MAX_INVOICE_MINOR


def test_a_tax_rate_beyond_100_percent_raises() -> None:
    with pytest.raises(AmountOutOfRange):
        totals([100], single_rate(limits.MAX_TAX_BPS + 1))


def test_the_tenants_terms_and_the_plugin_prices_are_bounded_as_billing_computes_with_them() -> None:
    from plugins_registry.api.schemas import PriceMinor, Seats
    from tenants.api.schemas import GraceHours, TaxRateBps

    def bounds(annotated: object) -> msgspec.inspect.Type:
        info = msgspec.inspect.type_info(annotated)
        return info.type if isinstance(info, msgspec.inspect.Metadata) else info

    assert bounds(TaxRateBps) == msgspec.inspect.IntType(ge=0, le=limits.MAX_TAX_BPS)
    assert bounds(GraceHours) == msgspec.inspect.IntType(ge=0, le=limits.MAX_GRACE_HOURS)
    seats = msgspec.inspect.type_info(Seats)
    assert isinstance(seats, msgspec.inspect.IntType) and seats.le is not None and seats.le <= limits.MAX_SEATS
    assert msgspec.convert(limits.MAX_UNIT_PRICE_MINOR, PriceMinor) == limits.MAX_UNIT_PRICE_MINOR
    for refused in (limits.MAX_UNIT_PRICE_MINOR + 1, "1000000000.5", "1e9", "-1"):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(refused, PriceMinor)


@pytest.mark.parametrize(
    "raw",
    [
        per_unit("bytes", limits.MAX_UNIT_PRICE_MINOR),
        per_unit("bytes", "0.000000000001"),
        {
            "type": "metered",
            "metric_code": "bytes",
            "model": "graduated",
            "tiers": [
                {"up_to": 10, "unit_amount_minor": "5", "flat_amount_minor": limits.MAX_FLAT_MINOR},
                {"up_to": 1000, "unit_amount_minor": limits.MAX_UNIT_PRICE_MINOR, "flat_amount_minor": 7},
                {"up_to": None, "unit_amount_minor": "3", "flat_amount_minor": limits.MAX_FLAT_MINOR},
            ],
        },
        {
            "type": "metered",
            "metric_code": "bytes",
            "model": "volume",
            "tiers": [
                {"up_to": 10, "unit_amount_minor": "1", "flat_amount_minor": limits.MAX_FLAT_MINOR},
                {"up_to": None, "unit_amount_minor": "999.5", "flat_amount_minor": 0},
            ],
        },
        {
            "type": "metered",
            "metric_code": "bytes",
            "model": "package",
            "amount_minor": limits.MAX_FLAT_MINOR,
            "package_size": 3,
            "free_units": 10,
        },
    ],
)
def test_usage_up_to_a_charges_unit_bound_never_rates_a_line_past_the_line_bound(raw: dict[str, object]) -> None:
    from billing.usage.rules import max_units

    charge = parse_charge(raw, 0)
    bound = max_units(charge)
    assert bound is not None and bound > 0
    for units in (bound, bound.to_integral_value(), bound - Decimal("0.5")):
        if units < 0:
            continue
        lines = metered_lines(charge, 0, units, JANUARY)
        assert abs(sum(line.amount_minor for line in lines)) <= limits.MAX_LINE_MINOR


def test_a_free_metered_charge_bounds_no_usage() -> None:
    from billing.usage.rules import max_units

    assert max_units(parse_charge(per_unit("bytes", 0), 0)) is None


def test_a_metrics_bound_is_the_strictest_of_every_charge_that_rates_it() -> None:
    """The plan's, a scheduled plan's and the add-ons' metered charges all rate the window: the dearest wins."""
    from billing.usage.rules import bounds

    cheap, dear = parse_charge(per_unit("bytes", 1), 0), parse_charge(per_unit("bytes", 1000), 0)
    calls = parse_charge(per_unit("calls", 10), 0)
    found = bounds([cheap, calls, dear, parse_charge(per_seat(5), 0)])
    assert found == {"bytes": Decimal(10**12), "calls": Decimal(10**14)}


def test_a_unique_count_bound_counts_every_event_of_a_batch_as_a_new_value() -> None:
    """PostgreSQL tells `1E2` from `"1E+2"` (and from `100`) where Python's text of them may not: so, for the bound,
    each event of a batch is a new value."""
    from datetime import UTC, datetime

    from billing.usage.rules import Event, within_bounds

    metric = {"code": "users", "aggregation": "unique_count", "field": "user"}
    at = datetime(2026, 1, 10, tzinfo=UTC)
    raws = ['{"user": 1E2}', '{"user": "1E+2"}', '{"user": "a"}', '{"user": "a"}']
    events = [Event(i, f"k{i}", "users", at, None, raw) for i, raw in enumerate(raws)]
    kept, refused = within_bounds(events, {"users": metric}, {"users": Decimal(3)}, {"users": Decimal(1)})
    assert [event.index for event in kept] == [0, 1]
    assert [(rejection.index, rejection.code) for rejection in refused] == [
        (2, "usage_limit_exceeded"),
        (3, "usage_limit_exceeded"),
    ]
