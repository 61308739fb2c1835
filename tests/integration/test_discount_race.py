"""Two seat changes at once (each a `change` invoice written under a shared lock of the subscription) never give
a `once` amount twice: the discounts are locked while an invoice is written, so the second waits and sees what
the first used."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from httpx import AsyncClient

from billing import service
from billing.addons.service import attach_addon, set_addon_quantity
from billing.invoices import repository as invoices_repository
from controlplane.core.db import fetch, tenant_tx
from tests.api.billing._support import plan, subscribe
from tests.factories import Factory

SEAT = {"type": "per_seat", "name": "Seats", "unit_amount_minor": 100_000}


async def _raise(tenant_id: uuid.UUID, source_id: uuid.UUID) -> uuid.UUID | None:
    async with tenant_tx(tenant_id):
        return await set_addon_quantity(tenant_id, source_id, 5)


async def test_two_concurrent_change_invoices_never_use_a_once_amount_twice(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "base", [{"type": "flat", "name": "Base", "amount_minor": 1000}])
    tenant = await factory.tenant(staff)
    tenant_id = uuid.UUID(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "base")
    body = {"code": "welcome", "name": "Welcome", "duration": "once", "amount_off_minor": 1000, "currency": "EUR"}
    assert (await client.post("/v1/coupons", json=body, headers=staff.headers)).status_code == 201
    redeemed = await client.post(
        f"/v1/subscriptions/{subscription['id']}/discounts", json={"coupon_code": "welcome"}, headers=staff.headers
    )
    assert redeemed.status_code == 201, redeemed.text
    sources = [uuid.uuid4(), uuid.uuid4()]
    now = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        for source in sources:
            await attach_addon(
                tenant_id=tenant_id,
                source_id=source,
                name=f"Plugin {source.hex[:6]}",
                charge=SEAT,
                currency="EUR",
                quantity=1,
                billable_from=now,
            )

    # Each raise bills 4 seats x 1000.00 EUR prorated (at least a day: far more than the 10.00 EUR coupon).
    invoice_ids = await asyncio.gather(*(_raise(tenant_id, source) for source in sources))
    assert all(invoice_ids)
    async with tenant_tx(tenant_id):
        rows = [await invoices_repository.get_invoice(invoice_id) for invoice_id in invoice_ids if invoice_id]
        applied = await fetch("select coalesce(sum(amount_minor), 0) as taken from discount_applications")
    discounts = sorted(row["discount_minor"] for row in rows if row is not None)
    assert discounts == [-1000, 0]
    assert applied[0]["taken"] == 1000
    [discount] = (await client.get(f"/v1/subscriptions/{subscription['id']}/discounts", headers=staff.headers)).json()[
        "items"
    ]
    assert (discount["status"], discount["amount_remaining_minor"]) == ("ended", 0)
    assert (await service.verify_ledger()).ok
