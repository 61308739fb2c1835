"""Delivering the webhook outbox (plugin, billing and tenant events) to each tenant's endpoint, signed with the
tenant's secret.

At least once: an event is claimed (an attempt counted, a lease taken) in one transaction, posted outside
any transaction, and its outcome recorded in another; a worker that dies in between gives the event back
when the lease ends. Receivers deduplicate on the `Webhook-Id` header (the event's id). A failed attempt is
tried again after a growing pause; after the last one the event is marked failed and kept (30 days:
tenants/notifications/retention.py). An event is queued only for the endpoint set when it happens
(`webhook_outbox.enqueue`): a tenant without one gets none, and one set later receives what happens from then
on. Order is by id, but a retried event may arrive after later ones.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from controlplane.core import metrics
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.errors import DomainError
from controlplane.core.tenant_vault import TenantVault
from tenants import webhook_endpoints, webhook_outbox, webhook_secrets

BATCH = 100
JOB = "deliver_webhooks"  # the batch_job label of its failure metrics (kept from the plugin outbox)
INTERNAL_ERROR = "internal_error"  # what the tenant sees when delivering failed on our side
LEASE_SECONDS = 300
# Pause after the n-th failed attempt; one more failure after the last gives up (about a day and a half).
BACKOFF_SECONDS = (60, 300, 1800, 7200, 21600, 43200, 86400)


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    claimed: int
    delivered: int
    retrying: int
    failed: int


@dataclass(frozen=True, slots=True)
class WebhookEventView:
    """Where the delivery of one outbox event stands."""

    id: str  # the event's id as its receiver sees it (the `Webhook-Id` header)
    type: str
    status: Literal["pending", "delivered", "failed"]
    created_at: datetime
    attempts: int
    delivered_at: datetime | None
    next_attempt_at: datetime | None
    last_error: str | None


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "id": str(event["id"]),
            "type": event["event_type"],
            "created_at": event["created_at"].isoformat(),
            "data": event["payload"],
        },
        separators=(",", ":"),
    ).encode()


def retry_in(attempts: int) -> int | None:
    """Seconds until the next try after `attempts` failed ones, or None: give up."""
    return BACKOFF_SECONDS[attempts - 1] if attempts <= len(BACKOFF_SECONDS) else None


async def deliver_webhooks(vault: TenantVault, *, production: bool, batch: int = BATCH) -> DeliveryReport:
    """One pass: claim up to `batch` due events, post them (a few at once), record each outcome."""
    async with system_tx(SystemReason.WEBHOOK_DELIVERY):
        events = await webhook_outbox.claim(batch, LEASE_SECONDS)
    signing: dict[uuid.UUID, tuple[str, ...] | None] = {}
    for tenant_id in {event["tenant_id"] for event in events}:
        try:
            _state, in_force = await asyncio.to_thread(webhook_secrets.current, vault, tenant_id)
            signing[tenant_id] = in_force
        except Exception as error:  # one tenant's secret never stops the others' deliveries
            metrics.stop_batch_on_outage(JOB, error)  # OpenBao away: the leases expire, retried
            if not isinstance(error, DomainError):
                metrics.batch_item_failed(JOB, error)
            signing[tenant_id] = None  # no secret yet: not sent unsigned
    limit = asyncio.Semaphore(8)

    async def attempt(event: dict[str, Any]) -> webhook_endpoints.Sent:
        secrets = signing[event["tenant_id"]]
        if secrets is None:
            return webhook_endpoints.Sent(False, "no webhook signing secret: rotate one to start deliveries")
        try:
            body = body_of(event)
            headers = {
                "Content-Type": "application/json",
                "Webhook-Id": str(event["id"]),
                "Webhook-Signature": webhook_secrets.signature_header(secrets, body, int(time.time())),
            }
            async with limit:
                return await asyncio.to_thread(
                    webhook_endpoints.post, event["url"], body, headers, production=production
                )
        except Exception as error:
            metrics.stop_batch_on_outage(JOB, error)
            metrics.batch_item_failed(JOB, error)
            return webhook_endpoints.Sent(False, INTERNAL_ERROR)

    outcomes = await asyncio.gather(*map(attempt, events))
    delivered = retrying = failed = 0
    for event, sent in zip(events, outcomes, strict=True):
        pause = None if sent.delivered else retry_in(event["attempts"])
        try:  # each outcome on its own: one that cannot be written (its lease expires, it is sent again) stops none
            async with system_tx(SystemReason.WEBHOOK_DELIVERY):
                if sent.delivered:
                    await webhook_outbox.delivered(event["id"])
                else:
                    await webhook_outbox.failed(event["id"], sent.error or "not delivered", pause)
        except Exception as error:
            metrics.stop_batch_on_outage(JOB, error)
            metrics.batch_item_failed(JOB, error)
            continue
        if sent.delivered:
            delivered += 1
        elif pause is not None:
            retrying += 1
        else:
            failed += 1
    for outcome, count in (("delivered", delivered), ("retrying", retrying), ("failed", failed)):
        metrics.WEBHOOK_DELIVERIES_TOTAL.labels(outcome=outcome).inc(count)
    return DeliveryReport(len(events), delivered, retrying, failed)


async def recent_webhook_events(tenant_id: uuid.UUID, limit: int) -> list[WebhookEventView]:
    """The tenant's latest events, newest first, with where each delivery stands."""
    async with tenant_tx(tenant_id):
        rows = await webhook_outbox.recent(tenant_id, limit)
    return [
        WebhookEventView(
            id=str(row["id"]),
            type=row["event_type"],
            status="delivered" if row["delivered_at"] else "failed" if row["failed_at"] else "pending",
            created_at=row["created_at"],
            attempts=row["attempts"],
            delivered_at=row["delivered_at"],
            next_attempt_at=row["next_attempt_at"],
            last_error=row["last_error"],
        )
        for row in rows
    ]
