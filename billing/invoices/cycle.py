"""The billing cycle: bill every boundary that has passed, each subscription in its own tenant's context.

Exactly once: a subscription row is locked while its boundary is billed, the invoice and the advanced
period commit together, and `invoices (subscription_id, cycle_boundary)` is unique with
`ON CONFLICT DO NOTHING`. A rerun, a second beat or a redelivered task finds nothing left to bill.

Failures are isolated per subscription: whatever one raises (an amount beyond billing.limits, a plan that
cannot be read, a database error) rolls back only its own transaction, is recorded on the subscription
(`billing_error`, `billing_error_at`, `billing_attempts`, `billing_retry_at`, shown by GET subscription) and
counted in `controlplane_billing_subscription_failures_total{reason}`; the run goes on. A failed subscription
is retried on a back-off (1 h, doubling, at most a day), after the healthy ones of the same run.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billing.addons import service as _addons
from billing.addons.rules import Addon
from billing.analytics import history as mrr_history
from billing.invoices import repository
from billing.invoices.service import boundary_invoice, finalize, settle_if_paid_by_credits
from billing.notices import service as notices
from billing.subscriptions import repository as subscriptions_repository
from billing.subscriptions import state as _state
from billing.subscriptions.states import Status
from controlplane.core import metrics
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.errors import DomainError

log = logging.getLogger("controlplane.billing")
BILLABLE = (Status.TRIALING, Status.ACTIVE, Status.PAST_DUE)
# A subscription imported years in the past is caught up over several cycles, this many boundaries each.
MAX_BOUNDARIES_PER_RUN = 60
# A subscription whose billing failed is retried this long after the run's cutoff, doubling per attempt.
RETRY_FIRST = timedelta(hours=1)
RETRY_MAX = timedelta(hours=24)
MAX_REASON = 1000


def retry_delay(attempts: int) -> timedelta:
    """How long after a run's cutoff a subscription that has failed `attempts` times is tried again."""
    return min(RETRY_FIRST * 2 ** min(max(attempts - 1, 0), 16), RETRY_MAX)


def failure_reason(error: BaseException) -> tuple[str, str]:
    """A bounded label (a domain error's code, or `unexpected`) and the text recorded on the subscription."""
    code = error.code if isinstance(error, DomainError) else "unexpected"
    return code, f"{code}: {type(error).__name__}: {error}"[:MAX_REASON]


def boundary_due(row: dict[str, Any], cutoff: datetime) -> bool:
    """Whether the subscription `row` has a boundary to bill at or before `cutoff` (what `catch_up` bills)."""
    return row["status"] in BILLABLE and row["current_period_end"] <= cutoff


async def catch_up(
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    now: datetime,
    *,
    grace: timedelta = timedelta(0),
    limit: int = MAX_BOUNDARIES_PER_RUN,
) -> int:
    """Inside the caller's tenant transaction: bill each boundary at or before `now - grace`.

    Returns how many invoices were written (0 when another run got there first).
    """
    written = 0
    cutoff = now - grace
    await subscriptions_repository.lock_usage_window(tenant_id, shared=False)
    addons: list[Addon] | None = None  # read once, at the first boundary due
    for _ in range(limit):
        row = await subscriptions_repository.get_subscription(subscription_id, lock="update")
        if row is None or not boundary_due(row, cutoff):
            break
        sub = await _state.load(row)
        if addons is None:
            addons = await _addons.billable(tenant_id, subscription_id, sub.current_period.start)
        # The upcoming invoice is computed from the same arguments (`upcoming_invoice`), so it shows this one.
        step, draft = await boundary_invoice(tenant_id, subscription_id, sub, addons)
        invoice_id = await draft.write(now=now, boundary=sub.current_period.end, settle=False)
        if invoice_id is None:
            break
        changes = _state.columns(step.subscription)
        if step.subscription.status == Status.CANCELED:
            changes["canceled_at"] = sub.current_period.end
        await subscriptions_repository.update_subscription(subscription_id, changes)
        # The trial converted, a scheduled change applied, a scheduled cancel ended it: told as of the boundary.
        crossed = await subscriptions_repository.get_subscription(subscription_id)
        assert crossed is not None
        await notices.subscription_written(tenant_id, row, crossed, sub.current_period.end)
        await mrr_history.subscription_written(tenant_id, row, crossed, sub.current_period.end)
        # Paid by the wallet's credits: settled on the advanced subscription (its licenses renewed to the new
        # period's end, a past_due one active again), not on the period just billed.
        await settle_if_paid_by_credits(tenant_id, invoice_id)
        written += 1
    return written


async def bill_subscription(tenant_id: uuid.UUID, subscription_id: uuid.UUID, as_of: datetime, grace: timedelta) -> int:
    async with tenant_tx(tenant_id):
        written = await catch_up(tenant_id, subscription_id, as_of, grace=grace)
        # Billed (or nothing due): no longer failing.
        await subscriptions_repository.clear_billing_failure(subscription_id)
        return written


async def record_failure(
    tenant_id: uuid.UUID, subscription_id: uuid.UUID, reason: str, as_of: datetime, grace: timedelta
) -> int:
    """In a transaction of its own (the billing one has rolled back): the reason, the attempt and the next
    retry on the subscription. Returns the attempts before this one (0: a new failure)."""
    async with tenant_tx(tenant_id):
        row = await subscriptions_repository.get_subscription(subscription_id, lock="update")
        if row is None:
            return 0
        before = int(row["billing_attempts"])
        await subscriptions_repository.record_billing_failure(
            subscription_id, reason, as_of, as_of - grace + retry_delay(before + 1)
        )
        return before


@dataclass(frozen=True, slots=True)
class DueSubscription:
    """A subscription with a boundary to bill, and its tenant (whose context bills it)."""

    tenant_id: uuid.UUID
    subscription_id: uuid.UUID


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What a billing run (or one batch of it) did."""

    seen: int = 0
    invoices_created: int = 0
    already_billed: int = 0
    drafts_finalized: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (subscription id, reason)
    new_failures: int = 0  # failures of subscriptions that were not failing already (retries excluded)
    duration: timedelta = timedelta(0)


@dataclass
class _Tally:
    """A run's counts as its subscriptions are billed (concurrently, in one event loop)."""

    seen: int = 0
    invoices_created: int = 0
    already_billed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    new_failures: int = 0

    def report(self, drafts_finalized: int = 0, duration: timedelta = timedelta(0)) -> CycleReport:
        return CycleReport(
            seen=self.seen,
            invoices_created=self.invoices_created,
            already_billed=self.already_billed,
            drafts_finalized=drafts_finalized,
            failed=list(self.failed),
            new_failures=self.new_failures,
            duration=duration,
        )


async def finalize_due_drafts(as_of: datetime) -> int:
    """Drafts kept for a tenant's invoice grace hours are numbered and finalized once it has passed; how many.

    Each draft in its own transaction: one that fails is recorded on the invoice (`finalize_error`,
    `finalize_attempts`), counted in `controlplane_billing_finalize_failures_total{reason}` and retried on the
    same back-off as subscriptions (its `finalize_at` moves), after the drafts that never failed.
    """
    async with system_tx(SystemReason.PLATFORM_JOB):
        drafts = await repository.due_drafts(as_of, 10_000)
    finalized = 0
    for draft in drafts:
        try:
            async with tenant_tx(draft["tenant_id"]):
                row = await repository.get_invoice(draft["id"], lock="update")
                if row is not None and row["status"] == "draft":
                    await finalize(draft["tenant_id"], draft["id"], as_of)
                    await repository.clear_finalize_failure(draft["id"])
                    finalized += 1
        except Exception as error:
            metrics.stop_batch_on_outage("finalize_drafts", error)
            log.exception("finalizing draft invoice %s failed", draft["id"])
            code, reason = failure_reason(error)
            metrics.BILLING_FINALIZE_FAILURES_TOTAL.labels(reason=code).inc()
            try:
                async with tenant_tx(draft["tenant_id"]):
                    attempts = await repository.record_finalize_failure(draft["id"], reason)
                    if attempts:
                        await repository.defer_finalize(draft["id"], as_of + retry_delay(attempts))
            except Exception:  # the database itself may be what failed: the draft stays due for the next run
                log.exception("recording the failure of draft invoice %s failed", draft["id"])
    return finalized


async def count_due(as_of: datetime, grace: timedelta) -> int:
    async with system_tx(SystemReason.PLATFORM_JOB):
        return await subscriptions_repository.count_due_subscriptions(as_of - grace)


async def due_batches(cutoff: datetime, size: int = 500) -> AsyncIterator[list[DueSubscription]]:
    """Due subscriptions across tenants, a page at a time: every healthy one first, then those whose billing
    failed and whose retry moment has come, so a failing subscription never delays others."""
    for retries in (False, True):
        after: uuid.UUID | None = None
        while True:
            async with system_tx(SystemReason.PLATFORM_JOB):
                rows = await subscriptions_repository.due_subscriptions(cutoff, after, size, retries=retries)
            if not rows:
                break
            after = rows[-1]["id"]
            yield [DueSubscription(row["tenant_id"], row["id"]) for row in rows]


async def bill_many(
    due: list[DueSubscription],
    as_of: datetime,
    grace: timedelta,
    *,
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> CycleReport:
    """Bill each subscription in its own transaction; one failing never stops the others."""
    tally = _Tally()
    await _bill(due, as_of, grace, tally, concurrency=concurrency, progress=progress)
    return tally.report()


async def _bill(
    due: list[DueSubscription],
    as_of: datetime,
    grace: timedelta,
    tally: _Tally,
    *,
    concurrency: int,
    progress: Callable[[int], None] | None,
) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> None:
        async with gate:
            try:
                written = await bill_subscription(tenant_id, subscription_id, as_of, grace)
            except Exception as error:  # recorded on the subscription, retried on its back-off
                metrics.stop_batch_on_outage("bill_subscriptions", error)
                log.exception("billing subscription %s failed", subscription_id)
                code, reason = failure_reason(error)
                metrics.BILLING_FAILURES_TOTAL.inc()
                metrics.BILLING_SUBSCRIPTION_FAILURES_TOTAL.labels(reason=code).inc()
                tally.failed.append((str(subscription_id), reason))
                try:
                    if await record_failure(tenant_id, subscription_id, reason, as_of, grace) == 0:
                        tally.new_failures += 1
                except Exception:  # the database itself may be what failed: the next run finds it due again
                    log.exception("recording the billing failure of subscription %s failed", subscription_id)
                    tally.new_failures += 1
                written = -1
            tally.seen += 1
            if written > 0:
                tally.invoices_created += written
            elif written == 0:
                tally.already_billed += 1
            if progress:
                progress(1)

    await asyncio.gather(*(one(item.tenant_id, item.subscription_id) for item in due))


async def run_cycle(
    as_of: datetime | None = None,
    *,
    grace: timedelta = timedelta(hours=1),
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> CycleReport:
    """Bill every subscription with a boundary at or before `as_of - grace`, then finalize due drafts."""
    as_of = as_of or datetime.now(UTC)
    started = time.perf_counter()
    tally = _Tally()
    async for due in due_batches(as_of - grace):
        await _bill(due, as_of, grace, tally, concurrency=concurrency, progress=progress)
    drafts_finalized = await finalize_due_drafts(as_of)
    report = tally.report(drafts_finalized, timedelta(seconds=time.perf_counter() - started))
    metrics.BILLING_RUN_SECONDS.observe(report.duration.total_seconds())
    metrics.BILLING_RUNS_TOTAL.labels(outcome="partial" if report.failed else "ok").inc()
    # A subscription already failing (and alerted on by its own counter) does not mark every later run failed.
    if not report.new_failures:
        metrics.BILLING_LAST_SUCCESS.set_to_current_time()
    return report
