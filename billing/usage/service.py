"""Usage metering: ingest a batch of events, and read the current period's aggregates."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.addons import repository as addons_repository
from billing.catalogue.rules import Charge, parse_charge
from billing.errors import AmountOutOfRange, MetricNotFound, SubscriptionNotFound
from billing.limits import LATEST, MAX_LINE_MINOR
from billing.rating import PercentageUsage, Usage
from billing.subscriptions import lifecycle
from billing.subscriptions import repository as subscriptions_repository
from billing.subscriptions import state as _state
from billing.usage import repository
from billing.usage import rules as usage
from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from tenants.roles import Permission
from tenants.service import check_access


@dataclass(frozen=True, slots=True)
class UsageBatchReport:
    """What became of a batch of usage events: how many were stored, how many were stored before, and each
    rejected event by its index in the batch (in index order)."""

    accepted: int
    duplicates: int
    rejected: list[usage.Rejection]


@dataclass(frozen=True, slots=True)
class MetricUsageView:
    """A metric's aggregate over the unbilled window, and what the plan bills for it (None: the plan does not
    meter it)."""

    metric_code: str
    aggregation: str
    value: Decimal
    amount_minor: int | None


@dataclass(frozen=True, slots=True)
class CurrentUsage:
    """The live subscription's unbilled usage window, metric by metric."""

    subscription_id: uuid.UUID
    currency: str
    period_start: datetime
    period_end: datetime
    metrics: tuple[MetricUsageView, ...]


async def ingest(
    principal: Principal, tenant_id: uuid.UUID, decoded: list[usage.EventIn | usage.Rejection]
) -> UsageBatchReport:
    """Store the valid events of a batch once each; report duplicates and each rejection by index.

    An event before the subscription's unbilled window (its period is already invoiced) is rejected as
    `period_closed`, unless its key is already stored (a retry of an accepted event is a duplicate).
    The tenant's usage window is locked shared, so a billing run cannot close it mid-batch. An event that
    would take its metric's aggregate over the open window past what the plan can bill in one line is
    rejected as `usage_limit_exceeded` (billing.limits): the bound is the strictest of the plan's, a scheduled
    plan's and the live add-ons' charges metering the metric.
    The principal is authorized in the same transaction, after the window is locked (see the lock order below).

    The batch is inserted first, side by side with other batches; then each of its metrics is locked, the
    events it stored are checked in batch order against the metric's running total (`usage_totals`, which
    the lock's previous holder committed), the refused ones are removed again and the total moves on, all
    before the commit that releases the locks (see `_within_bounds`).
    """
    now = datetime.now(UTC)
    codes = {item.metric_code for item in decoded if isinstance(item, usage.EventIn)}
    known = await _state.metrics(codes)
    events, rejected = await _check_batch(decoded, known, now)
    accepted, duplicates, refused = await _store(principal, tenant_id, events, known)
    rejected += refused
    metrics.USAGE_EVENTS_TOTAL.labels(outcome="accepted").inc(accepted)
    metrics.USAGE_EVENTS_TOTAL.labels(outcome="duplicate").inc(duplicates)
    metrics.USAGE_EVENTS_TOTAL.labels(outcome="rejected").inc(len(rejected))
    return UsageBatchReport(
        accepted=accepted, duplicates=duplicates, rejected=sorted(rejected, key=lambda rejection: rejection.index)
    )


# Events checked between two turns of the event loop (about a millisecond's work).
CHECK_SLICE = 200


async def _check_batch(
    decoded: list[usage.EventIn | usage.Rejection], known: dict[str, dict[str, Any]], now: datetime
) -> tuple[list[usage.Event], list[usage.Rejection]]:
    """`usage.check_batch`, a slice at a time, letting the event loop run in between: a batch that holds a metric's
    totals lock goes on to its commit without waiting behind another batch's thousand checks."""
    events: list[usage.Event] = []
    rejected: list[usage.Rejection] = []
    seen: set[str] = set()
    for start in range(0, len(decoded), CHECK_SLICE):
        if start:
            await asyncio.sleep(0)
        usage.check_slice(decoded, start, min(start + CHECK_SLICE, len(decoded)), known, now, seen, events, rejected)
    return events, rejected


async def _store(
    principal: Principal, tenant_id: uuid.UUID, events: list[usage.Event], known: dict[str, dict[str, Any]]
) -> tuple[int, int, list[usage.Rejection]]:
    """`ingest`'s unit of work on the checked events: (accepted, duplicates, rejections)."""
    duplicates = 0
    accepted = 0
    rejected: list[usage.Rejection] = []
    async with tenant_tx(tenant_id):
        # The window first, then the tenant row (check_access share-locks it for a member's write): the billing
        # cycle holds the window exclusively and then updates the tenant row (its next invoice number), so the
        # opposite order would deadlock with it. The lock's key is the tenant id alone; an unauthorized caller
        # holds it shared only until check_access refuses it.
        await subscriptions_repository.lock_usage_window(tenant_id, shared=True)
        await check_access(principal, tenant_id, Permission.REPORT_USAGE, method="POST")
        subscription = await subscriptions_repository.live_subscription(tenant_id)
        open_from = subscription["usage_from"] if subscription else None
        closed = [event for event in events if open_from is None or event.occurred_at < open_from]
        if closed:
            stored_before = await repository.stored_keys(tenant_id, [event.idempotency_key for event in closed])
            for event in closed:
                if event.idempotency_key in stored_before:
                    duplicates += 1
                elif open_from is None:
                    rejected.append(
                        usage.Rejection(
                            event.index, "no_subscription", "the tenant has no live subscription to bill this usage"
                        )
                    )
                else:
                    rejected.append(
                        usage.Rejection(
                            event.index,
                            "period_closed",
                            f"usage before {open_from.isoformat()} is already invoiced; the event was not stored",
                        )
                    )
        fresh = (
            events
            if not closed
            else [event for event in events if open_from is not None and event.occurred_at >= open_from]
        )
        if subscription is not None and fresh:
            batch_metrics = [known[code] for code in sorted({event.metric_code for event in fresh})]
            stored = await repository.insert_usage_events(
                tenant_id,
                [(e.idempotency_key, e.metric_code, e.occurred_at, e.value, e.properties_json) for e in fresh],
                batch_metrics,
            )
            duplicates += len(stored.skipped)
            new = fresh if not stored.skipped else [e for e in fresh if e.idempotency_key not in stored.skipped]
            refused = await _within_bounds(tenant_id, subscription, new, known, stored) if stored.count else []
            rejected += refused
            accepted = stored.count - len(refused)
    return accepted, duplicates, rejected


async def _within_bounds(
    tenant_id: uuid.UUID,
    subscription: dict[str, Any],
    new: list[usage.Event],
    known: dict[str, dict[str, Any]],
    stored: repository.Stored,
) -> list[usage.Rejection]:
    """Inside `ingest`'s transaction, once the batch's `new` events are inserted (`stored`): the rejections of
    those that would take a bounded metric past its bound over the open window; they are removed again, and
    every metric's running total of the window moves by what stays. O(batch): the window's events are not
    read again, except once per metric and window to compute a missing total, and for a bounded `unique_count`.

    Exact under concurrency: each metric stored is locked (in code order, so batches never wait in a circle)
    until the commit, after this batch's insert. A batch reads the total and the charges only once it holds
    the lock, so it sees every event its predecessors on that lock committed, and the events of batches still
    inserting are invisible until they, in turn, hold the lock: the checks run one batch at a time, each on
    what the ones before it kept. Attaching a metered add-on takes the same lock, so an add-on and the usage it
    would bill are never checked against each other's absence. A refused event is removed before the commit:
    no other transaction ever sees it."""
    codes = sorted(stored.tallies)
    await repository.lock_usage_totals(tenant_id, codes)
    start = subscription["usage_from"]
    running = [known[code] for code in codes if known[code]["aggregation"] in repository.RUNNING]
    added = {metric["code"]: stored.tallies[metric["code"]] for metric in running}
    # One statement once the locks are held: every count / sum total moves on by the whole batch (the totals as
    # they were before it come back), and the add-ons' charges are read. What the check refuses comes off again.
    moved, addon_charges = await repository.advance_totals(
        tenant_id,
        running,
        start,
        added,
        addons_repository.billable_charges_query(tenant_id, subscription["id"], start),
    )
    charges = await _rating_charges(subscription, addons_repository.charges_of(addon_charges))
    limits, fees = usage.bounds(charges), usage.fee_bounds(charges)
    bounded = {code for code in codes if code in limits or code in fees}
    refused: list[usage.Rejection] = []
    before = {code: tally for code, tally in moved.items() if code in bounded}
    unmoved = [metric for metric in running if metric["code"] in bounded and metric["code"] not in moved]
    if unmoved:
        before |= await repository.compute_totals(tenant_id, unmoved, start, added)
    if bounded:
        totals = {code: tally.units for code, tally in before.items()}
        counts = {code: tally.events for code, tally in before.items()}
        # A bounded `unique_count` (and, were one possible, a fee-bounded metric keeping no total) is measured
        # on the window's events stored before this batch.
        others = sorted(code for code in bounded if code not in before)
        if others:
            mine = [event.idempotency_key for event in new if event.metric_code in others]
            summed = [known[code] for code in others if known[code]["aggregation"] not in usage.PER_EVENT]
            totals |= await repository.aggregate_usage(tenant_id, summed, start, LATEST, excluding=mine)
            counted = [dict(known[code], aggregation="count") for code in others if code in fees]
            for code, n in (
                await repository.aggregate_usage(tenant_id, counted, start, LATEST, excluding=mine)
            ).items():
                counts[code] = int(n)
        _, refused = usage.within_bounds(
            [event for event in new if event.metric_code in bounded], known, limits, totals, fees, counts
        )
    if refused:
        removed = await repository.discard_usage_events(
            tenant_id, [new_event.idempotency_key for new_event in _by_index(new, refused)], running
        )
        running_codes = {metric["code"] for metric in running}
        await repository.take_from_totals(
            tenant_id, start, {code: tally for code, tally in removed.items() if code in running_codes}
        )
    return refused


def _by_index(events: list[usage.Event], rejections: list[usage.Rejection]) -> list[usage.Event]:
    out = {rejection.index for rejection in rejections}
    return [event for event in events if event.index in out]


async def _event_counts(tenant_id: uuid.UUID, metrics: list[dict[str, Any]], start: datetime) -> dict[str, int]:
    """How many events of each metric are stored from `start` on (a percentage's per-event fees grow with it)."""
    counted = [dict(metric, aggregation="count") for metric in metrics]
    return {code: int(n) for code, n in (await repository.aggregate_usage(tenant_id, counted, start, LATEST)).items()}


async def _rating_charges(subscription: dict[str, Any], addon_charges: list[dict[str, Any]]) -> list[Charge]:
    """Every charge that may rate usage stored in the open window: the plan's, a scheduled plan's, and the
    metered charges of the add-ons not ended before the window (`addon_charges`, a paid plugin's, billed at its
    own price)."""
    plans = await _state.plans([subscription["plan_id"], subscription["pending_plan_id"]])
    metered = [charge for charge in (parse_charge(row, 0) for row in addon_charges) if charge.metric_code is not None]
    return usage.charges_of(plans.values()) + metered


async def ensure_within_bounds(
    tenant_id: uuid.UUID, charges: Sequence[Charge], start: datetime, billed_by: str
) -> None:
    """Inside the caller's transaction, the usage stored from `start` on locked against new events (the usage
    window, or the metrics' totals locks): what is stored (events up to the clock skew ahead) fits what
    `charges` can bill in one line, or `AmountOutOfRange`. A plan change checks the window it opens, and a
    metered add-on the usage it will bill: those events were accepted against other charges' bounds."""
    limits, fees = usage.bounds(charges), usage.fee_bounds(charges)
    if not limits and not fees:
        return
    found = await _state.metrics({*limits, *fees})
    measured = [
        dict(found[code], aggregation="max") if found[code]["aggregation"] in usage.PER_EVENT else found[code]
        for code in sorted(found)
    ]
    totals = await repository.aggregate_usage(tenant_id, measured, start, LATEST)
    counts = await _event_counts(tenant_id, [found[code] for code in sorted(found) if code in fees], start)
    for code, total in totals.items():
        passed = usage.fee_bound_passed(fees.get(code, ()), total, counts.get(code, 0))
        if (code in limits and total > limits[code]) or passed is not None:
            raise AmountOutOfRange(
                f"usage of {code} already stored from {start.isoformat()} is beyond what {billed_by} can bill in "
                "one line",
                limit_minor=MAX_LINE_MINOR,
            )


def _units(usage: Usage) -> Decimal:
    """The metric's own aggregate (a percentage charge's usage carries its metric's sum beside its fees)."""
    return usage.units if isinstance(usage, PercentageUsage) else usage


@dataclass(frozen=True, slots=True)
class MetricDays:
    """A metric's aggregate per UTC day of the unbilled window (days without events left out)."""

    metric_code: str
    aggregation: str
    days: tuple[tuple[datetime, Decimal], ...]


@dataclass(frozen=True, slots=True)
class DailyUsage:
    period_start: datetime
    period_end: datetime
    metrics: tuple[MetricDays, ...]


async def daily_usage(tenant_id: uuid.UUID) -> DailyUsage:
    """Each metered metric of the live subscription, day by day over the unbilled window: the same
    aggregation the invoice uses, per day (a day's maximum, a day's distinct values...)."""
    async with tenant_tx(tenant_id):
        row = await subscriptions_repository.live_subscription(tenant_id)
        if row is None:
            raise SubscriptionNotFound("the tenant has no live subscription")
        sub = await _state.load(row)
        found = await _state.metrics(set(sub.plan.metric_codes))
        window = lifecycle.usage_window(sub)
        metrics = []
        for code in sorted(found):
            days = await repository.daily_usage(tenant_id, found[code], window.start, window.end)
            metrics.append(MetricDays(code, found[code]["aggregation"], tuple(days)))
    return DailyUsage(window.start, window.end, tuple(metrics))


async def current_usage(tenant_id: uuid.UUID, metric_code: str | None = None) -> CurrentUsage:
    """Each metered metric's aggregate over the unbilled window, and what it would bill: the same
    aggregation and rating the invoice uses."""
    async with tenant_tx(tenant_id):
        row = await subscriptions_repository.live_subscription(tenant_id)
        if row is None:
            raise SubscriptionNotFound("the tenant has no live subscription")
        sub = await _state.load(row)
        codes = set(sub.plan.metric_codes)
        if metric_code is not None:
            if not await _state.metrics([metric_code]):
                raise MetricNotFound(f"no billable metric has the code {metric_code!r}")
            codes = {metric_code}
        found = await _state.metrics(codes)
        window = lifecycle.usage_window(sub)
        values = await _state.with_percentage_fees(
            tenant_id,
            sub.plan.charges,
            found,
            await repository.aggregate_usage(tenant_id, [found[c] for c in sorted(found)], window.start, window.end),
            window.start,
            window.end,
            period_start=sub.current_period.start,
        )
    lines = lifecycle.usage_lines(sub.plan, values, window)
    items = []
    for code in sorted(found):
        amount = [line.amount_minor for line in lines if line.metric_code == code]
        items.append(
            MetricUsageView(
                metric_code=code,
                aggregation=found[code]["aggregation"],
                value=_units(values[code]),
                amount_minor=sum(amount) if code in sub.plan.metric_codes else None,
            )
        )
    return CurrentUsage(
        subscription_id=row["id"],
        currency=sub.plan.currency,
        period_start=window.start,
        period_end=window.end,
        metrics=tuple(items),
    )
