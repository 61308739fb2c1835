"""Money: integer minor units plus an ISO 4217 currency. Pure: no I/O.

Calculations run in `Decimal`; a figure becomes money exactly once, by `round_minor` (ROUND_HALF_UP to
a whole minor unit). Splitting hands out leftover minor units (`allocate`), so parts always sum to the
whole. Two currencies never meet in one calculation: that raises `CurrencyMismatch`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from billing.errors import CurrencyMismatch, InvalidAmount, UnknownCurrency

# ISO 4217 minor-unit exponents of the currencies the platform bills in.
CURRENCY_EXPONENTS: dict[str, int] = {
    "AUD": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2, "CZK": 2, "DKK": 2,
    "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2, "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3,
    "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PLN": 2, "SEK": 2,
    "SGD": 2, "TND": 3, "TRY": 2, "USD": 2, "VND": 0, "ZAR": 2,
}  # fmt: skip

ONE = Decimal(1)


def exponent(currency: str) -> int:
    try:
        return CURRENCY_EXPONENTS[currency]
    except KeyError:
        raise UnknownCurrency(f"{currency!r} is not a supported currency") from None


def round_minor(amount: Decimal) -> int:
    """The one rounding rule: half up (away from zero on a tie) to a whole minor unit."""
    return int(amount.quantize(ONE, rounding=ROUND_HALF_UP))


def display(minor: int, currency: str) -> str:
    """How people read an amount: the currency's own precision, thousands grouped, the code after it
    ("1,234.50 USD", "1,235 JPY", "-0.125 KWD"). Exact: minor units are shifted, never divided as floats."""
    places = exponent(currency)
    sign = "-" if minor < 0 else ""
    whole, fraction = divmod(abs(minor), 10**places)
    text = f"{whole:,}" + (f".{fraction:0{places}d}" if places else "")
    return f"{sign}{text} {currency}"


def decimal_of(text: str | int | Decimal, *, what: str = "amount") -> Decimal:
    """A finite Decimal from a decimal string or an int; never from a float."""
    if isinstance(text, bool) or isinstance(text, float):
        raise InvalidAmount(f"{what} must be a decimal string or an integer, not {type(text).__name__}")
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError, TypeError):
        raise InvalidAmount(f"{what} {text!r} is not a number") from None
    if not value.is_finite():
        raise InvalidAmount(f"{what} must be finite")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise InvalidAmount("money is a whole number of minor units")
        exponent(self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.minor <= other.minor

    def format(self) -> str:
        """`12.34 USD`, `1235 JPY`, `1.235 KWD`: for descriptions, never for arithmetic."""
        places = exponent(self.currency)
        major = Decimal(self.minor).scaleb(-places)
        return f"{major:.{places}f} {self.currency}"

    def allocate(self, weights: Sequence[int | Decimal]) -> list[Money]:
        return [Money(part, self.currency) for part in allocate(self.minor, weights)]


def total(amounts: Iterable[Money], currency: str) -> Money:
    result = Money(0, currency)
    for amount in amounts:
        result = result + amount
    return result


def allocate(minor: int, weights: Sequence[int | Decimal]) -> list[int]:
    """Split `minor` in proportion to `weights`; the parts always sum to `minor`.

    Each part is first rounded toward zero; the leftover minor units go one each to the parts with the
    largest remainders (ties to the earlier part), so no part is off by more than one unit.
    """
    if not weights:
        raise InvalidAmount("allocate needs at least one weight")
    if any(Decimal(w) < 0 for w in weights):
        raise InvalidAmount("weights must not be negative")
    weight_sum = sum((Decimal(w) for w in weights), Decimal(0))
    if weight_sum == 0:
        raise InvalidAmount("weights must not all be zero")
    sign = -1 if minor < 0 else 1
    magnitude = abs(minor)
    exact = [Decimal(magnitude) * Decimal(w) / weight_sum for w in weights]
    parts = [int(share) for share in exact]  # int() truncates toward zero
    leftover = magnitude - sum(parts)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-(exact[i] - parts[i]), i))
    for index in by_remainder[:leftover]:
        parts[index] += 1
    return [sign * part for part in parts]
