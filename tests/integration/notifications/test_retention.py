"""Neither outbox grows without limit: finished notification rows go after 90 days, finished webhook events
(and events no endpoint will ever take) after 30; anything still on its way stays, however old."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.core.db import SystemReason, fetch, system_tx, tenant_tx
from tenants import service, webhook_outbox
from tenants.notifications import retention
from tests.integration.conftest import staff_principal
from tests.integration.notifications._support import people, queue, rows
from workers.schedule import BEAT_SCHEDULE

ENDPOINT = "http://127.0.0.1:9/hooks"


_AGE = {
    table: f"update {table} set created_at = now() - make_interval(days => {{}}) where id = any({{}})"  # noqa: S608
    for table in ("notifications", "webhook_outbox")
}


async def _age(table: str, ids: list[int], days: int) -> None:
    """The rows were made `days` ago."""
    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch(_AGE[table], days, ids)


async def _notification_ids() -> dict[str, int]:
    return {f"{row['event_type']}/{row['recipient'].split(':')[0]}": row["id"] for row in await rows()}


async def test_finished_notifications_are_purged_after_90_days_and_pending_ones_kept(client: Any) -> None:
    who = await people()
    for event in ("invoice.paid", "tenant.reactivated", "tenant.suspended", "partner.checkpoint_approved"):
        await queue(who, event)
    ids = await _notification_ids()
    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch(
            "update notifications set status = case event_type when 'invoice.paid' then 'sent' "
            "when 'tenant.reactivated' then 'failed' when 'tenant.suspended' then 'skipped' else status end"
        )
    await _age("notifications", list(ids.values()), retention.NOTIFICATIONS_KEPT_DAYS + 1)
    await _age("notifications", [ids["tenant.suspended/user"]], retention.NOTIFICATIONS_KEPT_DAYS - 1)

    purged = await retention.purge_notifications(batch=2)  # more than one batch

    assert purged == 5
    assert [(row["event_type"], row["status"]) for row in await rows()] == [
        ("tenant.suspended", "skipped"),  # finished, but younger than the retention
        ("partner.checkpoint_approved", "pending"),  # old, but still to be sent
    ]
    assert await retention.purge_notifications() == 0


async def _webhook_rows(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    async with system_tx(SystemReason.STAFF_VIEW):
        return await fetch(
            "select id, event_key, delivered_at is not null as delivered, failed_at is not null as failed "
            "from webhook_outbox where tenant_id = {} order by id",
            tenant_id,
        )


async def test_finished_webhook_events_are_purged_after_30_days_and_pending_ones_kept(client: Any) -> None:
    staff = staff_principal()
    tenants = []
    for name in ("kept", "gone"):
        slug = f"purge-{name}-{uuid.uuid4().hex[:6]}"
        tenant = await service.create_tenant(staff, service.NewTenant(name=slug, slug=slug, currency="EUR"))
        await service.set_webhook_endpoint(staff, tenant.id, ENDPOINT, production=False)
        tenants.append(tenant.id)
    kept, gone = tenants
    for tenant_id in tenants:
        async with tenant_tx(tenant_id):
            for key in ("delivered", "failed", "pending", "recent"):
                await webhook_outbox.enqueue(tenant_id, "plugin.installed", {"slug": key}, key=key)
    await service.remove_webhook_endpoint(staff, gone)  # its pending event will never be delivered
    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch("update webhook_outbox set delivered_at = now() where event_key in ('delivered', 'recent')")
        await fetch("update webhook_outbox set failed_at = now() where event_key = 'failed'")
        old = await fetch("select id from webhook_outbox where event_key <> 'recent'")
    await _age("webhook_outbox", [row["id"] for row in old], retention.WEBHOOK_EVENTS_KEPT_DAYS + 1)

    purged = await retention.purge_webhook_events(batch=2)

    assert purged == 5
    assert [row["event_key"] for row in await _webhook_rows(kept)] == ["pending", "recent"]
    assert [row["event_key"] for row in await _webhook_rows(gone)] == ["recent"]


def test_the_purge_runs_daily() -> None:
    (entry,) = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == "controlplane.notifications.purge"]
    assert len(entry["schedule"].hour) == 1 and len(entry["schedule"].minute) == 1
