"""`notify` enqueues a tenant's webhook event (catalogue `webhook=True`) once per occurrence, in the caller's
transaction; the renamed outbox keeps its row-level security."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from controlplane.core.db import SystemReason, fetch, system_tx, tenant_tx
from tenants import service, webhook_outbox
from tenants.notifications import notify
from tenants.notifications.events import EVENTS, Audience
from tests.api._webhooks import webhook_outbox_events
from tests.integration.conftest import staff_principal
from tests.unit.notifications.samples import SAMPLES

REACTIVATED = SAMPLES["tenant.reactivated"]


async def _outbox() -> list[dict[str, Any]]:
    async with system_tx(SystemReason.STAFF_VIEW):
        return await fetch("select tenant_id, event_type, event_key, payload::text as payload from webhook_outbox")


ENDPOINT = "http://127.0.0.1:9/hooks"  # never posted to here: these tests read the outbox


async def _tenant(slug: str, *, endpoint: bool = True) -> uuid.UUID:
    """A tenant with a billing contact and an admin, and (unless told otherwise) a webhook endpoint."""
    staff = staff_principal()
    tenant = await service.create_tenant(
        staff, service.NewTenant(name=slug, slug=slug, currency="EUR", billing_email=f"billing@{slug}.example")
    )
    await service.add_member(staff, tenant.id, f"admin@{slug}.example", "tenant_admin")
    if endpoint:
        await service.set_webhook_endpoint(staff, tenant.id, ENDPOINT, production=False)
    return tenant.id


async def test_a_webhook_event_is_enqueued_once_per_key_beside_its_emails(client: Any) -> None:
    tenant_id = await _tenant("hook-once")
    data = {**SAMPLES["invoice.paid"], "invoice_id": "inv-1"}

    async with tenant_tx(tenant_id):
        first = await notify("invoice.paid", "inv-1", data, tenant_id=tenant_id)
        same_transaction = await notify("invoice.paid", "inv-1", data, tenant_id=tenant_id)
    async with tenant_tx(tenant_id):
        later = await notify("invoice.paid", "inv-1", data, tenant_id=tenant_id)
        other_key = await notify("invoice.paid", "inv-2", {**data, "invoice_id": "inv-2"}, tenant_id=tenant_id)

    # Still the count of new emails: the billing contact and the admin, once.
    assert (first, same_transaction, later, other_key) == (2, 0, 0, 2)
    rows = await _outbox()
    assert sorted((row["tenant_id"], row["event_type"], row["event_key"]) for row in rows) == [
        (tenant_id, "invoice.paid", "inv-1"),
        (tenant_id, "invoice.paid", "inv-2"),
    ]
    events = await webhook_outbox_events(tenant_id)
    assert events[0].payload == {"tenant_id": str(tenant_id), **data}


async def test_events_are_queued_for_the_endpoint_that_is_set_when_they_happen(client: Any) -> None:
    tenant_id = await _tenant("hook-later", endpoint=False)
    staff = staff_principal()
    async with tenant_tx(tenant_id):
        emails = await notify("tenant.reactivated", "r-1", REACTIVATED, tenant_id=tenant_id)
        plugin = await webhook_outbox.enqueue(tenant_id, "plugin.installed", {"slug": "x"})
    assert (emails, plugin) == (2, False)  # the emails are queued all the same
    assert await _outbox() == []

    await service.set_webhook_endpoint(staff, tenant_id, ENDPOINT, production=False)
    async with tenant_tx(tenant_id):
        await notify("tenant.reactivated", "r-2", REACTIVATED, tenant_id=tenant_id)
        await webhook_outbox.enqueue(tenant_id, "plugin.installed", {"slug": "x"})
    await service.remove_webhook_endpoint(staff, tenant_id)
    async with tenant_tx(tenant_id):
        await notify("tenant.reactivated", "r-3", REACTIVATED, tenant_id=tenant_id)

    # Only what happened while the endpoint was set: nothing from before waits for it, nothing after is kept.
    assert sorted((row["event_type"], row["event_key"]) for row in await _outbox()) == [
        ("plugin.installed", None),
        ("tenant.reactivated", "r-2"),
    ]


async def test_an_email_only_or_partner_event_enqueues_no_webhook(client: Any) -> None:
    tenant_id = await _tenant("hook-none")
    email_only = [e.name for e in EVENTS.values() if e.audience == Audience.TENANT and not e.webhook]
    assert email_only  # not vacuous: the catalogue has such events
    async with tenant_tx(tenant_id):
        for name in email_only:
            assert await notify(name, "pm-1:2027-1", SAMPLES[name], tenant_id=tenant_id) == 2
    assert await _outbox() == []


async def test_a_rolled_back_change_leaves_no_webhook_event(client: Any) -> None:
    tenant_id = await _tenant("hook-rollback")
    with pytest.raises(RuntimeError):
        async with tenant_tx(tenant_id):
            await notify("tenant.suspended", "s-1", SAMPLES["tenant.suspended"], tenant_id=tenant_id)
            raise RuntimeError("the change failed")
    assert await _outbox() == []
    # The occurrence was not spent: the change made again enqueues it.
    async with tenant_tx(tenant_id):
        await notify("tenant.suspended", "s-1", SAMPLES["tenant.suspended"], tenant_id=tenant_id)
    assert [row["event_key"] for row in await _outbox()] == ["s-1"]


async def test_enqueue_without_a_key_is_a_new_event_each_time(client: Any) -> None:
    tenant_id = await _tenant("hook-nokey")
    async with tenant_tx(tenant_id):
        added = [await webhook_outbox.enqueue(tenant_id, "plugin.installed", {"slug": "x"}) for _ in range(2)]
        keyed = [await webhook_outbox.enqueue(tenant_id, "plugin.installed", {}, key="k") for _ in range(2)]
    assert (added, keyed) == ([True, True], [True, False])
    assert len(await _outbox()) == 3


async def test_another_tenants_webhook_events_are_invisible_and_unwritable(
    client: Any, app_connection: asyncpg.Connection
) -> None:
    a, b = await _tenant("hook-rls-a"), await _tenant("hook-rls-b")
    for tenant_id in (a, b):
        async with tenant_tx(tenant_id):
            await notify("tenant.reactivated", f"r-{tenant_id}", REACTIVATED, tenant_id=tenant_id)

    async with app_connection.transaction():
        await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(a))
        seen = await app_connection.fetch("select tenant_id, event_key from webhook_outbox")
        assert [(row["tenant_id"], row["event_key"]) for row in seen] == [(a, f"r-{a}")]
        assert await app_connection.fetchval("select count(*) from webhook_outbox where tenant_id = $1", b) == 0
        assert (
            await app_connection.execute("update webhook_outbox set attempts = 9 where tenant_id = $1", b) == "UPDATE 0"
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with app_connection.transaction():
            await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(a))
            await app_connection.execute(
                "insert into webhook_outbox (tenant_id, event_type, payload) values ($1, 'tenant.suspended', '{}')", b
            )
    # Without a context the app role sees none at all.
    assert await app_connection.fetchval("select count(*) from webhook_outbox") == 0
    # Through the service, each tenant reads only its own.
    assert [event.event_key for event in await webhook_outbox_events(b)] == [f"r-{b}"]


async def test_the_rename_left_no_plugin_outbox_name_behind(app_connection: asyncpg.Connection) -> None:
    table = await app_connection.fetchrow(
        "select relrowsecurity, relforcerowsecurity from pg_class where relname = 'webhook_outbox'"
    )
    assert table is not None and table["relrowsecurity"] and table["relforcerowsecurity"]
    policies = await app_connection.fetch(
        "select polname from pg_policy where polrelid = 'webhook_outbox'::regclass order by polname"
    )
    assert [row["polname"] for row in policies] == ["platform_access", "tenant_isolation"]
    leftovers = await app_connection.fetch(
        "select relname as name from pg_class where relname like 'plugin\\_outbox%' "
        "union all select conname from pg_constraint where conname like 'plugin\\_outbox%'"
    )
    assert leftovers == []


async def test_the_delivery_claims_index_is_in_the_claims_order(app_connection: asyncpg.Connection) -> None:
    # The claim orders `next_attempt_at nulls first, id` (never tried first); an index built nulls last would
    # have to be read to its end to find those.
    definition = await app_connection.fetchval("select pg_get_indexdef('webhook_outbox_due_idx'::regclass)")
    assert "(next_attempt_at NULLS FIRST, id)" in definition
