"""ISO minor units against Stripe's own currency table (its zero-decimal, three-decimal and special cases)."""

from __future__ import annotations

import pytest

from billing.errors import AmountNotChargeable
from billing.money import exponent
from billing.stripe_amounts import chargeable_step, from_stripe, to_stripe


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
