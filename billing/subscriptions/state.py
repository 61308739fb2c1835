"""Between subscription rows and the pure `lifecycle.Subscription`; plans are cached (they never change)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from billing.catalogue import repository as catalogue_repository
from billing.catalogue.rules import Charge, Plan, plan_from_row
from billing.periods import Period
from billing.rating import PercentageUsage
from billing.subscriptions.lifecycle import Subscription
from billing.subscriptions.states import Status
from billing.usage import repository as usage_repository

# Plan versions are immutable rows, so a cached one is never stale.
_PLANS: dict[uuid.UUID, Plan] = {}
# So are metrics; only ones that exist are remembered.
_METRICS: dict[str, dict[str, Any]] = {}


def forget_catalogue() -> None:
    """Drop the cached plans and metrics (tests empty the tables between cases)."""
    _PLANS.clear()
    _METRICS.clear()


async def metrics(codes: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = set(codes)
    missing = [code for code in wanted if code not in _METRICS]
    if missing:
        _METRICS.update(await catalogue_repository.metrics_by_code(missing))
    return {code: _METRICS[code] for code in wanted if code in _METRICS}


async def plans(ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, Plan]:
    wanted = {plan_id for plan_id in ids if plan_id is not None}
    missing = [plan_id for plan_id in wanted if plan_id not in _PLANS]
    if missing:
        for plan_id, row in (await catalogue_repository.plans_by_id(missing)).items():
            _PLANS[plan_id] = plan_from_row(row, row["charges"])
    return {plan_id: _PLANS[plan_id] for plan_id in wanted}


def plan_of(row: dict[str, Any]) -> Plan:
    """A plan from its row, remembered by id."""
    plan = _PLANS.get(row["id"])
    if plan is None:
        plan = _PLANS[row["id"]] = plan_from_row(row, row["charges"])
    return plan


async def load(row: dict[str, Any]) -> Subscription:
    found = await plans([row["plan_id"], row["pending_plan_id"]])
    return Subscription(
        status=Status(row["status"]),
        plan=found[row["plan_id"]],
        seats=row["seats"],
        anchor=row["billing_anchor"],
        anchor_date=row["anchor_date"],
        current_period=Period(row["current_period_start"], row["current_period_end"]),
        usage_from=row["usage_from"],
        trial_end=row["trial_end"],
        cancel_at_period_end=row["cancel_at_period_end"],
        pending_plan=found.get(row["pending_plan_id"]) if row["pending_plan_id"] else None,
        pending_seats=row["pending_seats"],
    )


def columns(sub: Subscription) -> dict[str, Any]:
    """What `subscriptions_repository.update_subscription` writes for a lifecycle step's result."""
    return {
        "plan_id": sub.plan.id,
        "seats": sub.seats,
        "status": sub.status.value,
        "anchor_date": sub.anchor_date,
        "current_period_start": sub.current_period.start,
        "current_period_end": sub.current_period.end,
        "usage_from": sub.usage_from,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "pending_plan_id": sub.pending_plan.id if sub.pending_plan else None,
        "pending_seats": sub.pending_seats,
        "trial_end": sub.trial_end,
    }


async def usage_for(tenant_id: uuid.UUID, plan: Plan, start: Any, end: Any, *, period_start: Any) -> dict[str, Any]:
    """The plan's metered metrics aggregated over [start, end), a window of the billing period beginning at
    `period_start` (a percentage charge's free events are counted from there)."""
    if not plan.metric_codes or start >= end:
        return {}
    found = await metrics(plan.metric_codes)
    usage: dict[str, Any] = await usage_repository.aggregate_usage(
        tenant_id, [found[code] for code in sorted(found)], start, end
    )
    return await with_percentage_fees(tenant_id, plan.charges, found, usage, start, end, period_start=period_start)


async def with_percentage_fees(
    tenant_id: uuid.UUID,
    charges: Iterable[Charge],
    found: dict[str, dict[str, Any]],
    usage: dict[str, Any],
    start: Any,
    end: Any,
    *,
    period_start: Any,
) -> dict[str, Any]:
    """`usage` with each percentage charge's metric rated by its events' fees (`rating.PercentageUsage`), one
    query per percentage charge: a percentage is not rated from its metric's sum alone. Its free events are
    counted from `period_start`, the start of the billing period the window [start, end) belongs to."""
    for charge in charges:
        code = charge.metric_code
        if charge.model == "percentage" and code in found:
            units, events, fees = await usage_repository.percentage_fees(
                tenant_id, found[code], charge, start, end, period_start=period_start
            )
            usage[code] = PercentageUsage(units=units, events=events, fees=fees)
    return usage
