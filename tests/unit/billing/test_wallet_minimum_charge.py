"""Credits never leave less than Stripe's minimum charge due, and a top-up expires at least a minute ahead:
worked examples by hand (EUR, JPY, HUF, KWD) and properties of `creditable`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import InvalidTopUp
from billing.money import CURRENCY_EXPONENTS
from billing.payments.stripe_amounts import chargeable_step, minimum_charge
from billing.wallets.rules import MIN_VALIDITY, check_top_up, creditable
from tests.unit.billing.builders import utc

PROPERTY = settings(max_examples=300, deadline=None)
JAN = utc(2026, 1, 1)


def test_minimum_charges_in_iso_minor_units() -> None:
    """Stripe's table in major units, in ISO minor units: EUR 0.50, GBP 0.30, JPY 50 (zero-decimal), HUF 175.00
    (two-decimal, charged in whole forints), HKD 4.00; KWD has no documented minimum (0)."""
    assert [minimum_charge(c, CURRENCY_EXPONENTS[c]) for c in ("EUR", "USD", "GBP", "JPY", "HUF", "HKD")] == [
        50,
        50,
        30,
        50,
        17_500,
        400,
    ]
    assert minimum_charge("KWD", 3) == 0
    for currency, iso in CURRENCY_EXPONENTS.items():
        least = minimum_charge(currency, iso)
        assert least >= 0 and least % chargeable_step(currency, iso) == 0


def test_eur_one_cent_is_never_left_due() -> None:
    """34.10 EUR due, 34.09 in the wallet: 34.09 would leave 0.01, which Stripe refuses; 33.60 applies and the
    minimum 0.50 stays due. 34.10 or more pays it all."""
    least = minimum_charge("EUR", 2)
    assert creditable(3410, 3409, 1, least) == 3360
    assert creditable(3410, 3360, 1, least) == 3360
    assert creditable(3410, 3000, 1, least) == 3000  # 4.10 stays due: chargeable
    assert creditable(3410, 3410, 1, least) == 3410
    # An amount due below the minimum: no credit can leave the minimum, so none applies (the whole amount
    # can still be paid by credit).
    assert creditable(40, 39, 1, least) == 0
    assert creditable(40, 40, 1, least) == 40


def test_jpy_and_huf_examples() -> None:
    """JPY: ¥1,000 due, ¥990 held: ¥950 applies, ¥50 stays due. HUF (step 100, minimum 175.00 Ft): 500.00 Ft
    due, 450.00 held: 325.00 applies so 175.00 stays."""
    assert creditable(1_000, 990, chargeable_step("JPY", 0), minimum_charge("JPY", 0)) == 950
    assert creditable(50_000, 45_000, chargeable_step("HUF", 2), minimum_charge("HUF", 2)) == 32_500


def test_kwd_without_a_documented_minimum_keeps_only_the_step() -> None:
    assert creditable(20_000, 19_995, 10, minimum_charge("KWD", 3)) == 19_990


@PROPERTY
@given(
    st.integers(-(10**4), 10**7),
    st.integers(-(10**4), 10**7),
    st.sampled_from([1, 10, 100]),
    st.integers(0, 20_000),
)
def test_what_stays_due_is_chargeable_and_at_least_the_minimum(due: int, held: int, step: int, least: int) -> None:
    applied = creditable(due, held, step, least)
    assert 0 <= applied <= max(min(due, held), 0)
    rest = due - applied
    if applied and rest:
        assert rest % step == 0
        assert rest >= least
    # As much as these rules allow: one step more would break one of them.
    more = applied + step
    if 0 < applied and more <= min(due, held) and due - more > 0:
        assert due - more < least


@PROPERTY
@given(st.integers(1, 10**7), st.integers(1, 10**7), st.sampled_from([1, 10, 100]), st.integers(0, 20_000))
def test_the_largest_allowed_credit_is_applied(due: int, held: int, step: int, least: int) -> None:
    """Against a brute force over the candidates: the largest credit within the wallet and the amount due that
    pays all of it or leaves a multiple of the step no smaller than the minimum."""
    applied = creditable(due, held, step, least)
    ceiling = min(due, held)
    if ceiling == due:
        assert applied == due
        return
    rounded_min = -(-least // step) * step
    # Candidates leave a multiple of the step due: due - k * step for k >= 1.
    best = 0
    k = max(1, -(-(due - ceiling) // step), rounded_min // step if rounded_min else 1)
    if due - k * step > 0:
        best = due - k * step
    assert applied == best


def test_a_top_up_expires_at_least_a_minute_ahead() -> None:
    check_top_up(1, JAN + MIN_VALIDITY, JAN)
    for expires in (JAN + timedelta(milliseconds=5), JAN + MIN_VALIDITY - timedelta(microseconds=1)):
        with pytest.raises(InvalidTopUp):
            check_top_up(1, expires, JAN)
