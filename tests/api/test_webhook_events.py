"""A billing or tenant event told through `notify` reaches the tenant's webhook endpoint like a plugin event:
signed with the tenant's secret, once per occurrence, listed in its webhook events, and only its own."""

from __future__ import annotations

import json
import time
import uuid

from httpx import AsyncClient

from controlplane.core.db import tenant_tx
from controlplane.core.tenant_vault import TenantVault
from tenants import service, webhook_secrets
from tenants.notifications import notify
from tests.api._helpers import assert_problem
from tests.api._webhooks import Receiver, receivers, tenant_with_endpoint
from tests.factories import Factory
from tests.unit.notifications.samples import SAMPLES

__all__ = ["receivers"]  # the fixture, shared

PAID = {
    "invoice_id": "0b8e5a9e-61a4-4d5e-8f0e-5c3b2a1d9e77",
    "number": "ACME-000042",
    "currency": "EUR",
    "amount_paid_minor": 123450,
    "amount_paid": "1,234.50 EUR",
    "paid_at": "2026-12-04T10:15:01Z",
}


async def _paid(tenant_id: str) -> None:
    async with tenant_tx(uuid.UUID(tenant_id)):
        await notify("invoice.paid", PAID["invoice_id"], PAID, tenant_id=uuid.UUID(tenant_id))


async def test_a_notified_event_is_delivered_signed_to_its_own_tenant_once(
    client: AsyncClient, factory: Factory, tenant_vault: TenantVault, receivers: list[Receiver]
) -> None:
    staff = await factory.staff()
    (tenant, admin, secret), (other, other_admin, other_secret) = [
        await tenant_with_endpoint(client, factory, staff, receiver.url) for receiver in receivers
    ]
    await _paid(tenant["id"])
    await _paid(tenant["id"])  # the same occurrence told again: still one event

    first = await service.deliver_webhooks(tenant_vault, production=False)
    assert (first.claimed, first.delivered) == (1, 1)
    await _paid(tenant["id"])  # and again after its delivery: nothing more to send
    assert (await service.deliver_webhooks(tenant_vault, production=False)).claimed == 0

    ((headers, body),) = receivers[0].received
    assert receivers[1].received == []  # the other tenant's endpoint hears nothing of it
    now = int(time.time())
    assert webhook_secrets.verify(headers["Webhook-Signature"], body, secret, now=now)
    assert not webhook_secrets.verify(headers["Webhook-Signature"], body, other_secret, now=now)
    event = json.loads(body)
    assert (event["id"], event["type"]) == (headers["Webhook-Id"], "invoice.paid")
    assert event["data"] == {"tenant_id": tenant["id"], **PAID}

    listed = await client.get(f"/v1/tenants/{tenant['id']}/webhook-events", headers=admin.headers)
    assert [(item["id"], item["type"], item["status"]) for item in listed.json()["items"]] == [
        (event["id"], "invoice.paid", "delivered")
    ]
    # Another tenant's admin is told the tenant does not exist, and sees nothing of it in its own list.
    outsider = await client.get(f"/v1/tenants/{tenant['id']}/webhook-events", headers=other_admin.headers)
    assert_problem(outsider, 404, "tenant_not_found")
    own = await client.get(f"/v1/tenants/{other['id']}/webhook-events", headers=other_admin.headers)
    assert own.json()["items"] == []


async def test_an_email_only_event_sends_no_webhook(
    client: AsyncClient, factory: Factory, tenant_vault: TenantVault, receivers: list[Receiver]
) -> None:
    staff = await factory.staff()
    tenant, _admin, _secret = await tenant_with_endpoint(client, factory, staff, receivers[0].url)
    async with tenant_tx(uuid.UUID(tenant["id"])):
        await notify(
            "payment_method.expiring",
            "pm-1:2027-1",
            SAMPLES["payment_method.expiring"],
            tenant_id=uuid.UUID(tenant["id"]),
        )
    assert (await service.deliver_webhooks(tenant_vault, production=False)).claimed == 0
    assert receivers[0].received == []
