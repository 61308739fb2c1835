"""Amounts as Stripe takes them. Pure.

The platform keeps money in ISO 4217 minor units (`billing.money`). Stripe's API mostly agrees, but keeps its
own table (https://docs.stripe.com/currencies, "Zero-decimal", "Three-decimal" and "Special cases"):

* zero-decimal currencies (JPY, KRW, CLP, VND, ...) are sent in whole units;
* ISK and UGX are zero-decimal in practice (ISO too), yet the API keeps them two-decimal for backwards
  compatibility: an amount is sent in hundredths and must be a multiple of 100;
* HUF and TWD are two-decimal in ISO and in the API, but charges must be whole units (a multiple of 100);
* three-decimal currencies (BHD, JOD, KWD, OMR, TND) are sent in thousandths that must end in 0.

Stripe also refuses a charge below a minimum per currency (https://docs.stripe.com/currencies, "Minimum and
maximum charge amounts"): `minimum_charge` gives it in ISO minor units, so what credits leave due is never a
few cents Stripe would refuse (and dunning would suspend the tenant over).

`to_stripe` converts at the gateway, and `chargeable_step` lets the catalogue refuse a price Stripe could
never charge. What is computed (prorated, taxed, metered) is made chargeable here too: an invoice's amount
due by cash rounding to the nearest step (`cash_rounding`), a payout by sending the steps it holds and
leaving the rest owed (`payable_in_steps`); an amount someone asks for (a credit note, a refund, an escrow)
is refused off the step (`require_chargeable`).
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, Decimal

from billing.errors import AmountNotChargeable

ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "VND", "VUV", "XAF", "XOF", "XPF"}
)
# Sent with two decimals that must be zero.
WHOLE_UNITS_IN_HUNDREDTHS = frozenset({"HUF", "ISK", "TWD", "UGX"})
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# Stripe's documented minimum charge, in major units of the currency. Stripe documents it for these currencies
# only; another currency's charge must convert to at least the settlement currency's minimum, which depends on
# the exchange rate, so no fixed minimum is kept for it (`minimum_charge` answers 0 and only the step holds).
MINIMUM_CHARGE: dict[str, Decimal] = {
    "USD": Decimal("0.50"), "AED": Decimal("2.00"), "AUD": Decimal("0.50"), "BGN": Decimal("1.00"),
    "BRL": Decimal("0.50"), "CAD": Decimal("0.50"), "CHF": Decimal("0.50"), "CZK": Decimal("15.00"),
    "DKK": Decimal("2.50"), "EUR": Decimal("0.50"), "GBP": Decimal("0.30"), "HKD": Decimal("4.00"),
    "HUF": Decimal("175.00"), "INR": Decimal("0.50"), "JPY": Decimal("50"), "MXN": Decimal("10.00"),
    "MYR": Decimal("2.00"), "NOK": Decimal("3.00"), "NZD": Decimal("0.50"), "PLN": Decimal("2.00"),
    "RON": Decimal("2.00"), "SEK": Decimal("3.00"), "SGD": Decimal("0.50"), "THB": Decimal("10.00"),
}  # fmt: skip


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


def minimum_charge(currency: str, iso_exponent: int) -> int:
    """The least amount Stripe charges in the currency, in ISO minor units, rounded up to the chargeable step
    (0: no documented minimum)."""
    major = MINIMUM_CHARGE.get(currency)
    if major is None:
        return 0
    step = chargeable_step(currency, iso_exponent)
    minor = int((major.scaleb(iso_exponent) / step).to_integral_value(rounding=ROUND_CEILING)) * step
    return minor


def require_chargeable(minor: int, currency: str, iso_exponent: int) -> None:
    """`AmountNotChargeable` (naming the step) unless `minor` ISO minor units are a multiple of the step."""
    step = chargeable_step(currency, iso_exponent)
    if minor % step:
        raise AmountNotChargeable(
            f"Stripe charges {currency} only in multiples of {step} minor units; {minor} is not one",
            step_minor=step,
        )


def require_credit_chargeable(amount_minor: int, due_minor: int, paid: bool, currency: str, iso_exponent: int) -> None:
    """A credit note on a paid invoice frees an amount that goes back by card, so it is itself chargeable; on
    an unpaid one it lowers the amount due, which must stay chargeable (so an invoice issued before cash
    rounding, its due off the step, can be credited back onto it)."""
    require_chargeable(amount_minor if paid else due_minor - amount_minor, currency, iso_exponent)


def cash_rounding(amount_minor: int, step: int) -> int:
    """What to add to a positive amount due so it is the nearest multiple of `step`, a tie (half a step)
    rounded up (ROUND_HALF_UP, once); 0 for an amount that is not positive (nothing is charged)."""
    if amount_minor <= 0 or step == 1:
        return 0
    below = amount_minor - amount_minor % step
    return (below + step if (amount_minor - below) * 2 >= step else below) - amount_minor


def payable_in_steps(amount_minor: int, step: int) -> int:
    """The part of a positive amount owed that Stripe can send: rounded down to `step` (the rest stays owed)."""
    if amount_minor <= 0:
        return 0
    return amount_minor - amount_minor % step


def to_stripe(minor: int, currency: str, iso_exponent: int) -> int:
    """The amount Stripe's API takes for `minor` ISO minor units; `AmountNotChargeable` when it has none."""
    require_chargeable(minor, currency, iso_exponent)
    shift = stripe_exponent(currency) - iso_exponent
    return minor * 10**shift if shift >= 0 else minor // 10**-shift


def from_stripe(amount: int, currency: str, iso_exponent: int) -> int:
    """ISO minor units for an amount Stripe reports (a refund, a charge); the inverse of `to_stripe`."""
    shift = stripe_exponent(currency) - iso_exponent
    return amount // 10**shift if shift >= 0 else amount * 10**-shift
