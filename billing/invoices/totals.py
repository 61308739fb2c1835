"""An invoice's totals from its rounded lines. Pure.

subtotal = sum of rounded lines (discount lines included); each tax rate's amount = ROUND_HALF_UP(subtotal x
bps / 10 000), rounded once per rate; tax = the sum of those amounts; total = subtotal + tax.
In a currency Stripe charges only in steps (`billing.stripe_amounts`: whole forints, fils ending in 0), the
total is then cash-rounded to the nearest step (half up, once, after tax) by a `rounding` line of its own,
which is not taxed: it joins the subtotal (and revenue), the tax stays that of the other lines, and
total = subtotal + tax still holds.
An invoice that mixes charges and credits never goes below zero: the credit beyond the charges is carried
to the next invoice (a line here, a pending credit there), so only an all-credit invoice can have a negative
total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from billing.errors import AmountOutOfRange
from billing.limits import MAX_INVOICE_MINOR, MAX_TAX_BPS
from billing.money import round_minor
from billing.payments.stripe_amounts import cash_rounding

BPS = Decimal(10_000)


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A rate an invoice is taxed at. A tenant with only the single `tax_rate_bps` of old has one, `tax`."""

    code: str
    name: str
    rate_bps: int


@dataclass(frozen=True, slots=True)
class TaxAmount:
    code: str
    name: str
    rate_bps: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal_minor: int
    tax_minor: int
    total_minor: int
    taxes: tuple[TaxAmount, ...] = ()

    @property
    def tax_rate_bps(self) -> int:
        """The rates together (what the invoice's `tax_rate_bps` column keeps)."""
        return sum((tax.rate_bps for tax in self.taxes), 0)


def single_rate(tax_rate_bps: int) -> list[TaxRate]:
    """A tenant's single rate of old as a list (empty at 0)."""
    return [TaxRate("tax", "Tax", tax_rate_bps)] if tax_rate_bps else []


def tax_of(subtotal_minor: int, tax_rate_bps: int) -> int:
    return round_minor(Decimal(subtotal_minor) * tax_rate_bps / BPS)


def totals(line_amounts: list[int], rates: Sequence[TaxRate]) -> Totals:
    """Raises AmountOutOfRange beyond the bounds of billing.limits (then the total could not be stored)."""
    subtotal = sum(line_amounts, 0)
    if abs(subtotal) > MAX_INVOICE_MINOR:
        raise AmountOutOfRange(
            f"the invoice's subtotal is beyond {MAX_INVOICE_MINOR} minor units", limit_minor=MAX_INVOICE_MINOR
        )
    if not 0 <= sum((rate.rate_bps for rate in rates), 0) <= MAX_TAX_BPS or any(rate.rate_bps < 0 for rate in rates):
        raise AmountOutOfRange(f"the tax rates together must be 0 to {MAX_TAX_BPS} basis points")
    taxes = tuple(TaxAmount(rate.code, rate.name, rate.rate_bps, tax_of(subtotal, rate.rate_bps)) for rate in rates)
    tax = sum((item.amount_minor for item in taxes), 0)
    return Totals(subtotal, tax, subtotal + tax, taxes)


def cash_rounded(figures: Totals, step: int) -> tuple[Totals, int]:
    """The totals once the amount due is a multiple of `step` (1: unchanged), and the rounding line's amount."""
    adjustment = cash_rounding(figures.total_minor, step)
    rounded = Totals(
        figures.subtotal_minor + adjustment, figures.tax_minor, figures.total_minor + adjustment, figures.taxes
    )
    return rounded, adjustment


def credit_to_carry(line_amounts: list[int]) -> int:
    """How much credit to move to the next invoice so this one's subtotal is not negative (0 if none).

    An invoice of credits only keeps its negative total: there is nothing on it to offset.
    """
    subtotal = sum(line_amounts, 0)
    if subtotal >= 0 or all(amount <= 0 for amount in line_amounts):
        return 0
    return -subtotal


def amount_due(total_minor: int, credited_minor: int, paid_minor: int = 0, credits_applied_minor: int = 0) -> int:
    return max(total_minor - credited_minor - credits_applied_minor - paid_minor, 0)
