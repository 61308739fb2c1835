"""The collection run (Celery beat, hourly): first attempts on newly finalized invoices, retries on the
dunning schedule, and giving up after the last one."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from billing import dunning, payments_repository
from billing.payments_gateway import PaymentProviderUnavailable, StripeGateway
from billing.service._payments import NoPaymentMethod, collect_invoice, give_up
from controlplane import metrics
from controlplane.db import SystemReason, system_tx

log = logging.getLogger("controlplane.billing")


@dataclass
class CollectionReport:
    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    uncollectible: int = 0
    without_payment_method: int = 0
    unreachable: list[str] = field(default_factory=list)  # invoice ids whose attempt stays pending


async def collect_due_invoices(
    gateway: StripeGateway, as_of: datetime, schedule: Sequence[int], limit: int = 10_000
) -> CollectionReport:
    report = CollectionReport()
    async with system_tx(SystemReason.PLATFORM_JOB):
        candidates = await payments_repository.collectable_invoices(limit)
    for row in candidates:
        attempts = int(row["attempts"])
        if attempts and not row["has_pending"]:
            due = dunning.next_attempt_at(row["first_failure"], attempts, schedule)
            if due is None or due > as_of:
                continue
            metrics.DUNNING_STEPS_TOTAL.labels(step="retry").inc()
        report.attempted += 1
        try:
            payment = await collect_invoice(gateway, row["tenant_id"], row["id"])
        except NoPaymentMethod:
            report.without_payment_method += 1
            continue
        except PaymentProviderUnavailable:
            report.unreachable.append(str(row["id"]))  # pending: retried next run with the same key
            continue
        if payment["status"] == "succeeded":
            report.succeeded += 1
            continue
        report.failed += 1
        if dunning.exhausted(payment["attempt"], schedule):
            await give_up(row["tenant_id"], row["id"], as_of)
            report.uncollectible += 1
    return report
