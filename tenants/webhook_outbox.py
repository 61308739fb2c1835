"""Queries of the tenant webhook outbox: the events waiting for, or done with, delivery to a tenant's endpoint.

Any domain's change enqueues its event inside its own transaction (`enqueue`), so the event commits or
vanishes with the change; tenants.service delivers them (claim, then delivered or failed). Knows SQL, nothing
of HTTP.

One rule for every event (plugin, billing, tenant): an event is queued for the endpoint that is set when it
happens. A tenant without an endpoint at that moment gets no row, so nothing piles up for it and an endpoint
set later receives only what happens from then on. Finished rows (and rows no endpoint will take any more)
are purged after `tenants.notifications.retention.WEBHOOK_EVENTS_KEPT_DAYS`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    # asyncpg hands jsonb back as text.
    payload = row.get("payload")
    return {**row, "payload": json.loads(payload)} if isinstance(payload, str) else row


async def enqueue(tenant_id: uuid.UUID, event_type: str, payload: Mapping[str, Any], *, key: str | None = None) -> bool:
    """One event for the tenant's endpoint, inside the caller's transaction (its tenant's or a system one), when
    the tenant has an endpoint now (else nothing: False). With a `key` (the occurrence: an invoice id, ...) the
    same tenant, type and key is enqueued once: True when this call added it. Without one, every call is its own
    event."""
    rows = await fetch(
        "insert into webhook_outbox (tenant_id, event_type, event_key, payload) "
        "select {}, {}, {}, {}::jsonb where exists (select 1 from tenant_webhook_endpoints where tenant_id = {}) "
        "on conflict (tenant_id, event_type, event_key) where event_key is not null do nothing returning id",
        tenant_id,
        event_type,
        key,
        json.dumps(payload, default=str),
        tenant_id,
    )
    return bool(rows)


async def recent(tenant_id: uuid.UUID, limit: int) -> list[dict[str, Any]]:
    """The tenant's latest events, newest first, without payloads."""
    return await fetch(
        "select id, event_type, created_at, attempts, delivered_at, next_attempt_at, last_error, failed_at "
        "from webhook_outbox where tenant_id = {} order by id desc limit {}",
        tenant_id,
        limit,
    )


async def claim(limit: int, lease_seconds: int) -> list[dict[str, Any]]:
    """Across tenants (system context): due events of tenants with an endpoint, each counted as an attempt and
    leased (its next try pushed past the lease), so a worker that dies mid-delivery gives it back."""
    rows = await fetch(
        "with due as (select o.id from webhook_outbox o "
        "join tenant_webhook_endpoints e on e.tenant_id = o.tenant_id "
        # In the order of webhook_outbox_due_idx (never tried first, then by due time).
        "where o.delivered_at is null and o.failed_at is null "
        "and (o.next_attempt_at is null or o.next_attempt_at <= now()) "
        "order by o.next_attempt_at nulls first, o.id limit {} for update of o skip locked) "
        "update webhook_outbox o set attempts = o.attempts + 1, "
        "next_attempt_at = now() + make_interval(secs => {}) from due, tenant_webhook_endpoints e "
        "where o.id = due.id and e.tenant_id = o.tenant_id "
        "returning o.id, o.tenant_id, o.event_type, o.payload, o.created_at, o.attempts, e.url",
        limit,
        lease_seconds,
    )
    return [_decoded(row) for row in rows]


async def delivered(event_id: int) -> None:
    await fetch(
        "update webhook_outbox set delivered_at = now(), next_attempt_at = null, last_error = null where id = {}",
        event_id,
    )


async def failed(event_id: int, error: str, retry_in_seconds: int | None) -> None:
    """Tried again in `retry_in_seconds`, or (None) given up."""
    await fetch(
        "update webhook_outbox set last_error = {}, next_attempt_at = case when {}::integer is null then null "
        "else now() + make_interval(secs => {}) end, failed_at = case when {}::integer is null then now() end "
        "where id = {}",
        error,
        retry_in_seconds,
        retry_in_seconds,
        retry_in_seconds,
        event_id,
    )


async def purge(before: datetime, limit: int) -> int:
    """Across tenants (system context): delete up to `limit` events made before `before` that are finished
    (delivered or failed) or that no endpoint will take (the tenant has none now: removed, or the tenant erased).
    Oldest first, so the primary key finds them; answers how many went."""
    rows = await fetch(
        "with gone as (delete from webhook_outbox where id in (select o.id from webhook_outbox o "
        "where o.created_at < {} and (o.delivered_at is not null or o.failed_at is not null "
        "or not exists (select 1 from tenant_webhook_endpoints e where e.tenant_id = o.tenant_id)) "
        "order by o.id limit {}) returning 1) select count(*) as n from gone",
        before,
        limit,
    )
    return int(rows[0]["n"])
