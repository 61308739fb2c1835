"""What was emailed, as a tenant's admins (and a partner's) see it: newest first, paged, filtered by state,
with recipients named by role or user id and never by address; nobody else sees it."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from controlplane.core.db import partner_tx, tenant_tx
from controlplane.core.settings import Settings
from controlplane.devstack.mail_store import MailStore
from tenants.notifications import notify
from tests.api._helpers import all_items, assert_problem
from tests.factories import Factory
from tests.integration.notifications._support import send
from tests.unit.notifications.samples import SAMPLES

FIELDS = {
    "id",
    "event_type",
    "event_key",
    "recipient",
    "status",
    "attempts",
    "last_error",
    "next_attempt_at",
    "sent_at",
    "failed_at",
    "created_at",
}


async def _queue(tenant_id: str, event: str) -> None:
    async with tenant_tx(uuid.UUID(tenant_id)):
        await notify(event, f"{event}:{tenant_id}", SAMPLES[event], tenant_id=uuid.UUID(tenant_id))


async def test_a_tenants_admins_list_its_notifications_and_nobody_else_does(
    client: AsyncClient, factory: Factory, settings: Settings, mailbox: MailStore
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="billing@listed.example")
    admin = await factory.member(tenant["id"], "tenant_admin")
    member = await factory.member(tenant["id"], "tenant_member")
    other = await factory.tenant(staff, billing_email="billing@other.example")
    other_admin = await factory.member(other["id"], "tenant_admin")
    for event in ("invoice.paid", "tenant.reactivated", "invoice.payment_failed"):
        await _queue(tenant["id"], event)
    await _queue(other["id"], "invoice.paid")
    assert (await send(settings)).sent == 8
    await _queue(tenant["id"], "tenant.suspended")
    url = f"/v1/tenants/{tenant['id']}/notifications"

    listed = await client.get(url, headers=admin.headers)

    assert listed.status_code == 200, listed.text
    items = listed.json()["items"]
    assert [item["id"] for item in items] == sorted((item["id"] for item in items), reverse=True)
    assert [(item["event_type"], item["status"]) for item in items[:2]] == [("tenant.suspended", "pending")] * 2
    assert {item["recipient"] for item in items} == {"billing_contact", f"user:{admin.user_id}"}
    assert all(set(item) == FIELDS for item in items)
    assert "@" not in listed.text  # no address, ever
    sent = items[2]
    assert (sent["status"], sent["attempts"], sent["last_error"]) == ("sent", 1, None) and sent["sent_at"]
    assert len(items) == 8
    paged = await all_items(client, url, admin.headers, limit=3)
    assert [item["id"] for item in paged] == [item["id"] for item in items]
    pending = (await client.get(url, params={"status": "pending"}, headers=admin.headers)).json()["items"]
    assert {item["event_type"] for item in pending} == {"tenant.suspended"} and len(pending) == 2
    assert (await client.get(url, headers=staff.headers)).status_code == 200

    assert_problem(await client.get(url, headers=other_admin.headers), 404, "tenant_not_found")
    assert_problem(await client.get(url, headers=member.headers), 403, "forbidden_for_role")
    assert_problem(await client.get(url, params={"cursor": "bm90IGEgY3Vyc29y"}, headers=admin.headers), 422)
    assert_problem(await client.get(url, params={"status": "lost"}, headers=admin.headers), 400)
    assert_problem(await client.get(url, params={"limit": 0}, headers=admin.headers), 400)
    others = (await client.get(f"/v1/tenants/{other['id']}/notifications", headers=other_admin.headers)).json()
    assert [item["event_type"] for item in others["items"]] == ["invoice.paid"] * 2


async def test_a_partners_admins_list_its_notifications(client: AsyncClient, factory: Factory) -> None:
    founder = await factory.user()
    body = {"name": "Northwind Resale", "email": "sales@northwind.test"}
    reseller = (await client.post("/v1/resellers", json=body, headers=founder.headers)).json()
    viewer = await factory.user()
    added = await client.post(
        f"/v1/partners/{reseller['id']}/members",
        json={"email": viewer.email, "role": "reseller_viewer"},
        headers=founder.headers,
    )
    assert added.status_code == 201, added.text
    outsider = await factory.user()
    async with partner_tx(uuid.UUID(reseller["id"])):
        event = "partner.checkpoint_rejected"
        await notify(event, f"{event}:{reseller['id']}", SAMPLES[event], partner_id=uuid.UUID(reseller["id"]))
    url = f"/v1/partners/{reseller['id']}/notifications"

    listed = await client.get(url, headers=founder.headers)

    assert listed.status_code == 200, listed.text
    assert [(item["event_type"], item["recipient"], item["status"]) for item in listed.json()["items"]] == [
        ("partner.checkpoint_rejected", f"user:{founder.user_id}", "pending")
    ]
    assert "@" not in listed.text
    assert_problem(await client.get(url, headers=viewer.headers), 403, "forbidden_for_role")
    assert_problem(await client.get(url, headers=outsider.headers), 404, "partner_not_found")
    staff = await factory.staff()
    assert len((await client.get(url, headers=staff.headers)).json()["items"]) == 1
    assert (await client.get(url, params={"status": "sent"}, headers=founder.headers)).json()["items"] == []
