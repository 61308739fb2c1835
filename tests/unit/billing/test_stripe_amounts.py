"""ISO minor units against Stripe's own currency table (its zero-decimal, three-decimal and special cases)."""

from __future__ import annotations

import pytest

from billing.errors import AmountNotChargeable
from billing.money import exponent
from billing.payments.stripe_amounts import (
    cash_rounding,
    chargeable_step,
    from_stripe,
    payable_in_steps,
    require_chargeable,
    require_credit_chargeable,
    to_stripe,
)


@pytest.mark.parametrize(
    ("currency", "iso_minor", "stripe_amount"),
    [
        ("EUR", 3190, 3190),
        ("JPY", 500, 500),  # zero-decimal in both
        ("ISK", 500, 50000),  # ISO: no decimals; Stripe: two, which must be 00
        ("HUF", 150000, 150000),  # two decimals in both, whole forints only
        ("KWD", 1010, 1010),  # three decimals, ending in 0
    ],
)
def test_amounts_go_to_stripe_in_its_units_and_come_back(currency: str, iso_minor: int, stripe_amount: int) -> None:
    assert to_stripe(iso_minor, currency, exponent(currency)) == stripe_amount
    assert from_stripe(stripe_amount, currency, exponent(currency)) == iso_minor


def test_ugx_and_mga_follow_stripes_table_not_isos() -> None:
    assert to_stripe(7, "UGX", 0) == 700  # zero-decimal, sent as two decimals
    assert to_stripe(300, "MGA", 2) == 3  # Stripe: zero-decimal
    assert chargeable_step("MGA", 2) == 100 and chargeable_step("TWD", 2) == 100


@pytest.mark.parametrize(("currency", "iso_minor"), [("HUF", 150050), ("KWD", 1005), ("TND", 1), ("TWD", 99)])
def test_an_amount_stripe_cannot_charge_is_refused(currency: str, iso_minor: int) -> None:
    with pytest.raises(AmountNotChargeable):
        to_stripe(iso_minor, currency, 2 if currency in ("HUF", "TWD") else 3)


# Worked by hand: the nearest multiple of the step, a tie (exactly half a step) upwards.
@pytest.mark.parametrize(
    ("currency", "amount", "adjustment"),
    [
        ("HUF", 5484, 16),  # 54.84 Ft -> 55 Ft
        ("HUF", 5450, 50),  # a tie: half up, 55 Ft
        ("HUF", 5449, -49),  # 54 Ft
        ("HUF", 5500, 0),  # already whole
        ("HUF", 1, -1),  # 0.01 Ft -> 0 Ft
        ("KWD", 8833, -3),  # 8.833 -> 8.830
        ("KWD", 8835, 5),  # a tie: 8.840
        ("BHD", 10009, 1),  # 10.009 -> 10.010
        ("EUR", 5484, 0),  # any cent is chargeable
        ("ISK", 5484, 0),  # ISO has no decimals: every krona is a multiple of Stripe's hundredths
        ("JPY", 913, 0),
        ("HUF", 0, 0),
        ("HUF", -5484, 0),  # nothing is due on a credit: nothing to charge, nothing to round
    ],
)
def test_cash_rounding_takes_an_amount_due_to_the_nearest_chargeable_step_half_up(
    currency: str, amount: int, adjustment: int
) -> None:
    step = chargeable_step(currency, exponent(currency))
    assert cash_rounding(amount, step) == adjustment
    if amount > 0:
        assert (amount + adjustment) % step == 0
        assert abs(adjustment) * 2 <= step


@pytest.mark.parametrize(
    ("currency", "amount", "sent"),
    [("HUF", 5484, 5400), ("HUF", 99, 0), ("KWD", 8839, 8830), ("KWD", 8830, 8830), ("EUR", 5484, 5484)],
)
def test_a_payout_is_rounded_down_to_the_chargeable_step_and_the_rest_stays_owed(
    currency: str, amount: int, sent: int
) -> None:
    step = chargeable_step(currency, exponent(currency))
    assert payable_in_steps(amount, step) == sent
    assert to_stripe(sent, currency, exponent(currency)) >= 0  # Stripe takes it


def test_require_chargeable_refuses_an_amount_off_the_step_and_names_the_step() -> None:
    require_chargeable(1000, "HUF", 2)
    with pytest.raises(AmountNotChargeable) as refused:
        require_chargeable(1050, "HUF", 2)
    assert refused.value.extra == {"step_minor": 100}


def test_a_credit_on_an_unpaid_invoice_must_leave_a_chargeable_amount_due() -> None:
    # An unpaid HUF invoice issued before cash rounding: 123.45 Ft due, which Stripe cannot charge. Crediting
    # the 45 fillér brings it onto the step; 40 would leave 123.05 Ft, still off it.
    require_credit_chargeable(45, 12345, False, "HUF", 2)
    with pytest.raises(AmountNotChargeable):
        require_credit_chargeable(40, 12345, False, "HUF", 2)
    # On an invoice already rounded (7000 due), a credit keeps to the step as before: 150 would leave 68.50 Ft.
    require_credit_chargeable(1000, 7000, False, "HUF", 2)
    with pytest.raises(AmountNotChargeable):
        require_credit_chargeable(150, 7000, False, "HUF", 2)


def test_a_credit_on_a_paid_invoice_frees_a_chargeable_amount() -> None:
    # Paid: what the note frees goes back by card, so the note itself is a whole step (nothing is due).
    require_credit_chargeable(1000, 0, True, "HUF", 2)
    with pytest.raises(AmountNotChargeable):
        require_credit_chargeable(45, 0, True, "HUF", 2)
