"""Tax rates and a tenant's list of them: what is a valid rate, what is a valid list. Pure.

A tenant's invoices are taxed at each rate of its list, in order, every rate on the same subtotal (after
discounts) and rounded once (`billing.invoices.totals`). The rates together stay within MAX_TAX_BPS (100 %),
the bound every invoice total is sized on (`billing.limits`). An archived rate may not be given to a tenant,
but a tenant that already has it keeps it: archiving stops new assignment, not the invoices of those taxed
at it (the list is the tenant's own terms, changed only by staff).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from billing.errors import (
    DuplicateTaxRate,
    InvalidTaxRate,
    TaxRateArchived,
    TaxRatesTooHigh,
    TooManyTaxRates,
    UnknownTaxRate,
)
from billing.invoices.totals import TaxRate
from billing.limits import MAX_TAX_BPS

MAX_RATES_PER_TENANT = 10


@dataclass(frozen=True, slots=True)
class CatalogueRate:
    """A rate as the catalogue keeps it."""

    code: str
    name: str
    rate_bps: int
    archived: bool = False


def check_rate_bps(rate_bps: int) -> int:
    if isinstance(rate_bps, bool) or not isinstance(rate_bps, int) or not 0 <= rate_bps <= MAX_TAX_BPS:
        raise InvalidTaxRate(f"a tax rate is 0 to {MAX_TAX_BPS} basis points")
    return rate_bps


def tenant_rates(
    codes: Sequence[str], catalogue: Mapping[str, CatalogueRate], kept: Sequence[str] = ()
) -> list[TaxRate]:
    """The rates `codes` name, in order, once the list is valid for a tenant: at most MAX_RATES_PER_TENANT,
    no code twice, every code in the catalogue and not archived (unless in `kept`, the tenant's current list:
    re-sending the list it has is allowed), the rates together at most MAX_TAX_BPS."""
    if len(codes) > MAX_RATES_PER_TENANT:
        raise TooManyTaxRates(f"a tenant has at most {MAX_RATES_PER_TENANT} tax rates, not {len(codes)}")
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise DuplicateTaxRate(f"the tax rate {code!r} appears more than once")
        seen.add(code)
    unknown = [code for code in codes if code not in catalogue]
    if unknown:
        raise UnknownTaxRate(f"no tax rate has the code(s) {', '.join(unknown)}")
    archived = [code for code in codes if catalogue[code].archived and code not in kept]
    if archived:
        raise TaxRateArchived(f"the tax rate(s) {', '.join(archived)} are archived")
    total = sum((catalogue[code].rate_bps for code in codes), 0)
    if total > MAX_TAX_BPS:
        raise TaxRatesTooHigh(f"the tax rates together are {total} basis points, more than {MAX_TAX_BPS}")
    return [TaxRate(code, catalogue[code].name, catalogue[code].rate_bps) for code in codes]
