"""Tax rates: the catalogue staff keep (add, read, archive; never edit) and each tenant's list, set by staff.

`rates_of` is what invoices are taxed at: the tenant's list when it has one, else its single `tax_rate_bps` of
old as a list of one (so tenants from before lists keep working). Setting an empty list returns a tenant to its
single rate. An archived rate stays on the tenants that have it; it can only not be given anew.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.errors import TaxRateExists, TaxRateNotFound
from billing.invoices import repository as invoices_repository
from billing.invoices.totals import TaxRate, single_rate
from billing.taxes import repository
from billing.taxes.rules import CatalogueRate, check_rate_bps, tenant_rates
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import audit
from tenants.errors import TenantNotFound


@dataclass(frozen=True, slots=True)
class TaxRateView:
    id: uuid.UUID
    code: str
    name: str
    rate_bps: int
    jurisdiction: str
    archived_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TenantTaxRatesView:
    """`codes`: the tenant's list (empty: none, it is taxed at its single `tax_rate_bps`); `rates`: what its
    invoices are taxed at now, in order."""

    tenant_id: uuid.UUID
    codes: tuple[str, ...]
    rates: tuple[TaxRate, ...]


def rate_view(row: dict[str, Any]) -> TaxRateView:
    return view_of(TaxRateView, row)


def _catalogue_rate(row: dict[str, Any]) -> CatalogueRate:
    return CatalogueRate(row["code"], row["name"], row["rate_bps"], archived=row["archived_at"] is not None)


async def create_rate(code: str, name: str, rate_bps: int, jurisdiction: str) -> tuple[TaxRateView, bool]:
    """(rate, created). The same figures again answer the stored rate (a retry is safe); other figures under
    a taken code are refused: invoices were taxed at what the code says."""
    check_rate_bps(rate_bps)
    async with system_tx(SystemReason.STAFF_CHANGE):
        row = await repository.insert_rate(code, name, rate_bps, jurisdiction)
        if row is not None:
            return rate_view(row), True
        existing = await repository.get_rate(code)
    assert existing is not None
    if (existing["name"], existing["rate_bps"], existing["jurisdiction"]) != (name, rate_bps, jurisdiction):
        raise TaxRateExists(f"the tax rate {code!r} exists with other figures; tax rates never change")
    return rate_view(existing), False


async def list_rates(page: PageRequest) -> Page[TaxRateView]:
    async with system_tx(SystemReason.STAFF_VIEW):
        return page_of_views(await repository.list_rates(page), page, rate_view)


async def get_rate(code: str) -> TaxRateView:
    async with system_tx(SystemReason.STAFF_VIEW):
        row = await repository.get_rate(code)
    if row is None:
        raise TaxRateNotFound(f"no tax rate has the code {code!r}")
    return rate_view(row)


async def archive_rate(code: str) -> TaxRateView:
    """No tenant may be given the rate from now on; those that have it keep it. Archiving again answers the
    archived rate unchanged."""
    async with system_tx(SystemReason.STAFF_CHANGE):
        row = await repository.get_rate(code, lock=True)
        if row is None:
            raise TaxRateNotFound(f"no tax rate has the code {code!r}")
        if row["archived_at"] is None:
            row = await repository.archive_rate(code)
    return rate_view(row)


async def _tenant_view(tenant_id: uuid.UUID) -> TenantTaxRatesView:
    rows = await repository.tenant_rates(tenant_id)
    return TenantTaxRatesView(
        tenant_id=tenant_id,
        codes=tuple(row["code"] for row in rows),
        rates=tuple(await rates_of(tenant_id, listed=rows)),
    )


async def tenant_tax_rates(tenant_id: uuid.UUID) -> TenantTaxRatesView:
    async with tenant_tx(tenant_id):
        return await _tenant_view(tenant_id)


async def set_tenant_tax_rates(actor: Principal, tenant_id: uuid.UUID, codes: Sequence[str]) -> TenantTaxRatesView:
    """Staff: replace the tenant's list (ordered). Invoices written from now on are taxed at it; those written
    before keep their taxes. Sending the list the tenant has changes nothing and records nothing."""
    async with tenant_tx(tenant_id):
        if not await repository.lock_tenant(tenant_id):
            raise TenantNotFound()
        current = [row["code"] for row in await repository.tenant_rates(tenant_id)]
        # Locked in share mode: a rate cannot be archived between this check and the commit.
        catalogue = {code: _catalogue_rate(row) for code, row in (await repository.rates_by_code(codes)).items()}
        tenant_rates(codes, catalogue, kept=current)
        if list(codes) != current:
            await repository.replace_tenant_rates(tenant_id, codes)
            await audit.record(
                actor,
                tenant_id,
                "tenant.tax_rates_changed",
                "tenant",
                tenant_id,
                before={"codes": current},
                after={"codes": list(codes)},
            )
        return await _tenant_view(tenant_id)


async def rates_of(tenant_id: uuid.UUID, *, listed: list[dict[str, Any]] | None = None) -> list[TaxRate]:
    """Inside the caller's tenant transaction: the tenant's rates, in the order they are shown. Its list when
    it has one (archived rates included: they stay on it), else its single `tax_rate_bps` of old."""
    rows = await repository.tenant_rates(tenant_id) if listed is None else listed
    if rows:
        return [TaxRate(row["code"], row["name"], row["rate_bps"]) for row in rows]
    settings = await invoices_repository.tenant_billing_settings(tenant_id)
    return single_rate(settings["tax_rate_bps"])
