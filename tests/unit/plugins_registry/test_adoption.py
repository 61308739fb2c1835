"""The pure counting of plugin adoption: months, their bounds, the rate's rounding, and who counts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugins_registry.adoption import adoption, parse_month, rate, window
from plugins_registry.errors import InvalidMonth, MonthInFuture

NOW = datetime(2026, 12, 4, 13, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("numerator", "denominator", "shown"),
    [
        (2, 3, "0.6667"),
        (1, 3, "0.3333"),
        (1, 8, "0.1250"),
        (1, 20_000, "0.0001"),  # 0.00005 exactly: half up
        (1, 20_001, "0.0000"),  # just under the half
        (3, 3, "1.0000"),
        (0, 5, "0.0000"),
    ],
)
def test_a_rate_has_four_places_rounded_half_up(numerator: int, denominator: int, shown: str) -> None:
    assert rate(numerator, denominator) == shown


def test_no_rate_without_a_denominator() -> None:
    assert rate(0, 0) is None


@given(st.integers(0, 10**12), st.integers(1, 10**12))
def test_the_rate_is_the_decimal_quotient_rounded_once(numerator: int, denominator: int) -> None:
    exact = Decimal(numerator) / Decimal(denominator)  # 28 significant digits: far below the 4th place
    assert rate(numerator, denominator) == str(exact.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


FULLWIDTH_2026 = "\uff12\uff10\uff12\uff16"  # digits to str.isdigit, not to a month


@pytest.mark.parametrize(
    "text", ["2026-13", "2026-00", "0000-01", "26-09", "2026-9", "2026/09", f"{FULLWIDTH_2026}-09", ""]
)
def test_what_is_not_a_month_is_refused(text: str) -> None:
    with pytest.raises(InvalidMonth):
        parse_month(text)


def test_a_past_month_runs_from_its_first_instant_to_the_next_months() -> None:
    span = window(parse_month("2025-12"), NOW)
    assert (span.start, span.end, span.label) == (
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        "2025-12",
    )


def test_the_current_month_ends_now_and_the_next_has_not_begun() -> None:
    span = window(date(2026, 12, 1), NOW)
    assert (span.start, span.end) == (datetime(2026, 12, 1, tzinfo=UTC), NOW)
    for month in (date(2027, 1, 1), date(9999, 12, 1)):
        with pytest.raises(MonthInFuture):
            window(month, NOW)


def test_adopters_are_the_active_tenants_with_a_plugin_and_each_plugin_counts_every_tenant() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    active, inactive, idle = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    figures = adoption(
        window(date(2026, 11, 1), NOW),
        plugins=[(a, "alpha"), (b, "beta")],
        installed=[(active, a), (active, b), (inactive, a)],
        steps={(a, "installed"): 3, (a, "uninstalled"): 1, (b, "trial_started"): 2, (b, "trial_converted"): 1},
        active_tenants=frozenset({active, idle}),
    )
    assert (figures.month, figures.tenants_with_plugins, figures.active_tenants, figures.adoption_rate) == (
        "2026-11",
        1,
        2,
        "0.5000",
    )
    alpha, beta = figures.plugins
    assert (alpha.installed_tenants, alpha.installs, alpha.uninstalls, alpha.trials_started) == (2, 3, 1, 0)
    assert (beta.installed_tenants, beta.installs, beta.trials_started, beta.trials_converted) == (1, 0, 2, 1)
