"""How long the two outboxes keep what they are done with (`controlplane.notifications.purge`, daily).

- `notifications`: a row sent, failed or skipped goes `NOTIFICATIONS_KEPT_DAYS` after it was queued (the
  tenant's and partner's history, `GET .../notifications`, reaches that far back). A pending row stays: the
  sender finishes every row within hours (sent, or failed after its last retry or as `abandoned`).
- `webhook_outbox`: an event delivered or failed goes `WEBHOOK_EVENTS_KEPT_DAYS` after it happened, and so does
  one whose tenant has no endpoint any more (removed since, or the tenant erased): nothing will deliver it.

Constants, not settings: they bound storage, and the history shown to tenants says how far back it reaches.
Each batch is its own transaction, so the purge holds no long lock and an interrupted run loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controlplane.core.db import SystemReason, system_tx
from tenants import webhook_outbox
from tenants.notifications import repository

NOTIFICATIONS_KEPT_DAYS = 90
WEBHOOK_EVENTS_KEPT_DAYS = 30
BATCH = 5000


@dataclass(frozen=True, slots=True)
class PurgeReport:
    notifications: int
    webhook_events: int


async def purge_notifications(now: datetime | None = None, *, batch: int = BATCH) -> int:
    before = (now or datetime.now(UTC)) - timedelta(days=NOTIFICATIONS_KEPT_DAYS)
    total = 0
    while True:
        async with system_tx(SystemReason.NOTIFICATION_DELIVERY):
            gone = await repository.purge_finished(before, batch)
        total += gone
        if gone < batch:
            return total


async def purge_webhook_events(now: datetime | None = None, *, batch: int = BATCH) -> int:
    before = (now or datetime.now(UTC)) - timedelta(days=WEBHOOK_EVENTS_KEPT_DAYS)
    total = 0
    while True:
        async with system_tx(SystemReason.WEBHOOK_DELIVERY):
            gone = await webhook_outbox.purge(before, batch)
        total += gone
        if gone < batch:
            return total


async def purge(now: datetime | None = None) -> PurgeReport:
    return PurgeReport(await purge_notifications(now), await purge_webhook_events(now))
