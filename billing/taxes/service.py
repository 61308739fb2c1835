"""The tax rates an invoice of a tenant is taxed at."""

from __future__ import annotations

import uuid

from billing.invoices import repository as invoices_repository
from billing.invoices.totals import TaxRate, single_rate


async def rates_of(tenant_id: uuid.UUID) -> list[TaxRate]:
    """Inside the caller's tenant transaction: the tenant's rates, in the order they are shown."""
    settings = await invoices_repository.tenant_billing_settings(tenant_id)
    return single_rate(settings["tax_rate_bps"])
