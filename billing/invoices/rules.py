"""One-off invoices: checking the lines staff write by hand and rating them. Pure.

A line is `quantity x unit_amount_minor`, rounded once. Unit amounts are whole minor units and never negative:
a one-off invoice bills, and what is owed back goes through a credit note (so its total is never below zero and
nothing is carried to an invoice that does not exist: a one-off invoice has no subscription).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from billing import limits
from billing.errors import InvalidOneOffInvoice
from billing.periods import Period
from billing.rating import Line

MAX_LINES = 100
MAX_DESCRIPTION = 500
MAX_QUANTITY = Decimal(10**9)
MAX_QUANTITY_TEXT = 40  # characters of a quantity's decimal string


@dataclass(frozen=True, slots=True)
class OneOffLine:
    """A line as staff sent it: the quantity as a decimal string or an int."""

    description: str
    quantity: str | int
    unit_amount_minor: int


def check_description(text: str, where: str) -> str:
    if not isinstance(text, str) or not 1 <= len(text) <= MAX_DESCRIPTION or not text.strip():
        raise InvalidOneOffInvoice(f"{where}.description is 1 to {MAX_DESCRIPTION} characters, not only spaces")
    # Control characters (C0, DEL, C1) and lone surrogates would break statements, PDFs and terminals.
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise InvalidOneOffInvoice(f"{where}.description may not hold control characters")
    return text


def check_quantity(raw: str | int, where: str) -> Decimal:
    if (
        isinstance(raw, bool)
        or not isinstance(raw, str | int)
        or (isinstance(raw, str) and len(raw) > MAX_QUANTITY_TEXT)
    ):
        raise InvalidOneOffInvoice(f"{where}.quantity is a decimal string or a whole number")
    try:
        quantity = Decimal(raw.strip() if isinstance(raw, str) else raw)
    except InvalidOperation:
        raise InvalidOneOffInvoice(f"{where}.quantity is not a decimal number") from None
    if not quantity.is_finite() or not 0 < quantity <= MAX_QUANTITY:
        raise InvalidOneOffInvoice(f"{where}.quantity is greater than 0 and at most {MAX_QUANTITY}")
    if quantity.as_tuple().exponent < -limits.MAX_PLACES:  # type: ignore[operator]
        raise InvalidOneOffInvoice(f"{where}.quantity has at most {limits.MAX_PLACES} decimal places")
    return quantity


def check_unit_amount(raw: int, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= limits.MAX_AMOUNT_MINOR:
        raise InvalidOneOffInvoice(f"{where}.unit_amount_minor is a whole number from 0 to {limits.MAX_AMOUNT_MINOR}")
    return raw


def one_off_lines(items: Sequence[OneOffLine], period: Period) -> list[Line]:
    """The invoice lines of a one-off invoice, in the order sent; each within MAX_LINE_MINOR before rounding,
    so their sum (at most 100 lines) stays within MAX_INVOICE_MINOR."""
    if not 1 <= len(items) <= MAX_LINES:
        raise InvalidOneOffInvoice(f"a one-off invoice has 1 to {MAX_LINES} lines")
    lines = []
    for index, item in enumerate(items):
        where = f"lines[{index}]"
        description = check_description(item.description, where)
        quantity = check_quantity(item.quantity, where)
        unit = Decimal(check_unit_amount(item.unit_amount_minor, where))
        precise = quantity * unit
        if precise > limits.MAX_LINE_MINOR:
            raise InvalidOneOffInvoice(f"{where}: quantity x unit_amount_minor is beyond {limits.MAX_LINE_MINOR}")
        lines.append(Line(description, "one_off", quantity, unit, precise, period))
    return lines
