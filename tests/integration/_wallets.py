"""Helpers of the integration tests that need a tenant with granted credit and invoices finalized in the
database directly (no HTTP between the write and the finalization)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from httpx import AsyncClient

from billing.invoices import repository as invoices_repository
from billing.invoices.service import write_invoice
from billing.periods import Period
from billing.rating import Line
from controlplane.core.db import tenant_tx
from tests.factories import Factory


async def granted_tenant(client: AsyncClient, factory: Factory, granted: int, **fields: Any) -> uuid.UUID:
    """A new tenant (EUR unless `fields` say otherwise) whose wallet staff granted `granted` minor units."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff, **fields)
    response = await client.post(
        f"/v1/tenants/{tenant['id']}/wallet/top-ups",
        json={"amount_minor": granted, "paid": False},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    return uuid.UUID(tenant["id"])


async def one_off_invoice(tenant_id: uuid.UUID, amount: int) -> dict[str, Any]:
    """A one-off EUR invoice of `amount`, written (and finalized, unless the tenant has a grace) in one
    transaction: its row as stored."""
    now = datetime.now(UTC)
    period = Period(now, now)
    line = Line("Work", "one_off", Decimal(1), Decimal(amount), Decimal(amount), period)
    async with tenant_tx(tenant_id):
        invoice_id = await write_invoice(
            tenant_id=tenant_id,
            subscription_id=None,
            kind="one_off",
            currency="EUR",
            period=period,
            lines=[line],
            now=now,
        )
        assert invoice_id is not None
        row = await invoices_repository.get_invoice(invoice_id)
    assert row is not None
    return row
