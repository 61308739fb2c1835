"""Amounts as Stripe takes them. Pure.

The platform keeps money in ISO 4217 minor units (`billing.money`). Stripe's API mostly agrees, but keeps its
own table (https://docs.stripe.com/currencies, "Zero-decimal", "Three-decimal" and "Special cases"):

* zero-decimal currencies (JPY, KRW, CLP, VND, ...) are sent in whole units;
* ISK and UGX are zero-decimal in practice (ISO too), yet the API keeps them two-decimal for backwards
  compatibility: an amount is sent in hundredths and must be a multiple of 100;
* HUF and TWD are two-decimal in ISO and in the API, but charges must be whole units (a multiple of 100);
* three-decimal currencies (BHD, JOD, KWD, OMR, TND) are sent in thousandths that must end in 0.

`to_stripe` converts at the gateway, and `chargeable_step` lets the catalogue refuse a price Stripe could
never charge.
"""

from __future__ import annotations

import math

from billing.errors import AmountNotChargeable

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF"}
)
# Sent with two decimals that must be zero.
WHOLE_UNITS_IN_HUNDREDTHS = frozenset({"HUF", "ISK", "TWD", "UGX"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


def stripe_exponent(currency: str) -> int:
    """How many decimals Stripe's API uses for the currency's amounts."""
    if currency in ZERO_DECIMAL:
        return 0
    if currency in THREE_DECIMAL:
        return 3
    return 2


def _stripe_step(currency: str) -> int:
    """The multiple every amount sent to Stripe must be, in Stripe's own units."""
    if currency in WHOLE_UNITS_IN_HUNDREDTHS:
        return 100
    if currency in THREE_DECIMAL:
        return 10
    return 1


def chargeable_step(currency: str, iso_exponent: int) -> int:
    """The multiple, in ISO minor units, that an amount must be for Stripe to charge it (1: any amount)."""
    shift = stripe_exponent(currency) - iso_exponent
    step = _stripe_step(currency)
    if shift >= 0:
        return step // math.gcd(step, 10**shift)
    return step * 10**-shift


def to_stripe(minor: int, currency: str, iso_exponent: int) -> int:
    """The amount Stripe's API takes for `minor` ISO minor units; `AmountNotChargeable` when it has none."""
    step = chargeable_step(currency, iso_exponent)
    if minor % step:
        raise AmountNotChargeable(
            f"Stripe charges {currency} only in multiples of {step} minor units; {minor} is not one",
            step_minor=step,
        )
    shift = stripe_exponent(currency) - iso_exponent
    return minor * 10**shift if shift >= 0 else minor // 10**-shift


def from_stripe(amount: int, currency: str, iso_exponent: int) -> int:
    """ISO minor units for an amount Stripe reports (a refund, a charge); the inverse of `to_stripe`."""
    shift = stripe_exponent(currency) - iso_exponent
    return amount // 10**shift if shift >= 0 else amount * 10**-shift
