"""The catalogue: billable metrics and versioned plans (platform-wide; staff add, everyone reads)."""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing import limits
from billing.catalogue import repository
from billing.catalogue.rules import charge_to_json, check_chargeable, check_percentage_metrics, parse_charges
from billing.errors import BillingInvalid, InvalidCharge, MetricExists, MetricNotFound, PlanNotFound
from billing.money import exponent
from billing.subscriptions import state as _state
from controlplane.core.db import SystemReason, anonymous_tx, system_tx
from controlplane.core.errors import Conflict
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """What staff define a billable metric with (`field`: the property a unique_count counts)."""

    code: str
    name: str
    aggregation: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class MetricView:
    id: uuid.UUID
    code: str
    name: str
    aggregation: str
    field: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ProrationRules:
    """How a plan prorates a change to it: "immediate" or "next_period"."""

    upgrade: str = "immediate"
    downgrade: str = "next_period"


@dataclass(frozen=True, slots=True)
class PlanDefinition:
    """What staff define a plan (its next version) with; `charges` in the catalogue's JSON form.
    `rate_limit_percent` scales its tenants' API rate limits (100 = the defaults; 1..100000)."""

    code: str
    name: str
    currency: str
    interval: str
    charges: list[dict[str, Any]]
    trial_days: int = 0
    proration: ProrationRules | None = None
    rate_limit_percent: int = limits.DEFAULT_RATE_LIMIT_PERCENT


@dataclass(frozen=True, slots=True)
class PlanView:
    """One version of a plan; `charges` in the catalogue's JSON form, as stored."""

    id: uuid.UUID
    code: str
    version: int
    name: str
    currency: str
    interval: str
    trial_days: int
    charges: list[dict[str, Any]]
    proration: ProrationRules
    rate_limit_percent: int
    created_at: datetime


def metric_view(row: dict[str, Any]) -> MetricView:
    return view_of(MetricView, row)


def plan_view(row: dict[str, Any]) -> PlanView:
    return view_of(PlanView, row, proration=ProrationRules(row["proration_upgrade"], row["proration_downgrade"]))


async def create_metric(definition: MetricDefinition) -> tuple[MetricView, bool]:
    """(metric, created). The same definition again answers with the stored one, so a retry is safe."""
    if definition.aggregation == "unique_count" and not definition.field:
        raise InvalidCharge("a unique_count metric needs the field whose distinct values it counts")
    async with system_tx(SystemReason.STAFF_CHANGE):
        row = await repository.insert_metric(dataclasses.asdict(definition))
        if row is not None:
            return metric_view(row), True
        existing = await repository.get_metric(definition.code)
    assert existing is not None
    if (existing["name"], existing["aggregation"], existing["field"]) != (
        definition.name,
        definition.aggregation,
        definition.field,
    ):
        raise MetricExists("a metric with this code exists with another definition; metrics never change")
    return metric_view(existing), False


async def list_metrics(page: PageRequest) -> Page[MetricView]:
    async with anonymous_tx():
        return page_of_views(await repository.list_metrics(page), page, metric_view)


def _definition(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["name"],
        row["currency"],
        row["interval"],
        row["trial_days"],
        row["charges"],
        row["proration_upgrade"],
        row["proration_downgrade"],
        row["rate_limit_percent"],
    )


async def create_plan(definition: PlanDefinition) -> tuple[PlanView, bool]:
    """(plan, created). A new code makes version 1; a changed definition of an existing code makes the
    next version (subscriptions keep theirs until moved); an unchanged one answers with the latest."""
    exponent(definition.currency)
    if not limits.MIN_RATE_LIMIT_PERCENT <= definition.rate_limit_percent <= limits.MAX_RATE_LIMIT_PERCENT:
        raise BillingInvalid(
            f"rate_limit_percent must be between {limits.MIN_RATE_LIMIT_PERCENT} and {limits.MAX_RATE_LIMIT_PERCENT}"
        )
    charges = parse_charges(definition.charges)
    check_chargeable(charges, definition.currency)
    metric_codes = sorted({c.metric_code for c in charges if c.metric_code})
    proration = definition.proration or ProrationRules()
    row = {
        "code": definition.code,
        "name": definition.name,
        "currency": definition.currency,
        "interval": definition.interval,
        "trial_days": definition.trial_days,
        "charges": [charge_to_json(charge) for charge in charges],
        "proration_upgrade": proration.upgrade,
        "proration_downgrade": proration.downgrade,
        "rate_limit_percent": definition.rate_limit_percent,
    }
    async with system_tx(SystemReason.STAFF_CHANGE):
        missing = set(metric_codes) - set(await _state.metrics(metric_codes))
        if missing:
            raise MetricNotFound(f"no billable metric has the code(s) {', '.join(sorted(missing))}")
        check_percentage_metrics(charges, await _state.metrics(metric_codes))
        latest = await repository.latest_plan(definition.code)
        if latest is not None and _definition(latest) == _definition(row):
            return plan_view(latest), False
        created = await repository.insert_plan_version(row)
    if created is None:
        raise Conflict("another version of this plan was added at the same time; retry")
    return plan_view(created), True


async def list_plans(page: PageRequest) -> Page[PlanView]:
    async with anonymous_tx():
        return page_of_views(await repository.list_latest_plans(page), page, plan_view)


async def get_plan(code: str, version: int | None = None) -> PlanView:
    async with anonymous_tx():
        row = await (repository.latest_plan(code) if version is None else repository.plan_version(code, version))
    if row is None:
        raise PlanNotFound(f"no plan has the code {code!r}" + (f" and version {version}" if version else ""))
    return plan_view(row)
