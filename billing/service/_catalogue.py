"""The catalogue: billable metrics and versioned plans (platform-wide; staff add, everyone reads)."""

from __future__ import annotations

from typing import Any

from billing import repository
from billing.catalogue import charge_to_json, check_chargeable, parse_charges
from billing.errors import InvalidCharge, MetricExists, MetricNotFound, PlanNotFound
from billing.money import exponent
from billing.service import _state
from controlplane.core.db import SystemReason, anonymous_tx, system_tx
from controlplane.core.errors import Conflict
from controlplane.core.pagination import PageRequest, page_of

# Rows of a page and the cursor of the next one, as `page_of` hands them back (tenants.service no longer
# lends its alias: services return `controlplane.core.views.Page` of views).
Page = tuple[list[dict[str, Any]], str | None]


async def create_metric(values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(metric, created). The same definition again answers with the stored one, so a retry is safe."""
    if values["aggregation"] == "unique_count" and not values.get("field"):
        raise InvalidCharge("a unique_count metric needs the field whose distinct values it counts")
    async with system_tx(SystemReason.STAFF_CHANGE):
        row = await repository.insert_metric(values)
        if row is not None:
            return row, True
        existing = await repository.get_metric(values["code"])
    assert existing is not None
    if (existing["name"], existing["aggregation"], existing["field"]) != (
        values["name"],
        values["aggregation"],
        values.get("field"),
    ):
        raise MetricExists("a metric with this code exists with another definition; metrics never change")
    return existing, False


async def list_metrics(page: PageRequest) -> Page:
    async with anonymous_tx():
        return page_of(await repository.list_metrics(page), page)


def _definition(row: dict[str, Any]) -> tuple[Any, ...]:
    return (
        row["name"],
        row["currency"],
        row["interval"],
        row["trial_days"],
        row["charges"],
        row["proration_upgrade"],
        row["proration_downgrade"],
    )


async def create_plan(values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(plan, created). A new code makes version 1; a changed definition of an existing code makes the
    next version (subscriptions keep theirs until moved); an unchanged one answers with the latest."""
    exponent(values["currency"])
    charges = parse_charges(values["charges"])
    check_chargeable(charges, values["currency"])
    metric_codes = sorted({c.metric_code for c in charges if c.metric_code})
    proration = values.get("proration") or {}
    row = {
        "code": values["code"],
        "name": values["name"],
        "currency": values["currency"],
        "interval": values["interval"],
        "trial_days": values.get("trial_days", 0),
        "charges": [charge_to_json(charge) for charge in charges],
        "proration_upgrade": proration.get("upgrade", "immediate"),
        "proration_downgrade": proration.get("downgrade", "next_period"),
    }
    async with system_tx(SystemReason.STAFF_CHANGE):
        missing = set(metric_codes) - set(await _state.metrics(metric_codes))
        if missing:
            raise MetricNotFound(f"no billable metric has the code(s) {', '.join(sorted(missing))}")
        latest = await repository.latest_plan(values["code"])
        if latest is not None and _definition(latest) == _definition(row):
            return latest, False
        created = await repository.insert_plan_version(row)
    if created is None:
        raise Conflict("another version of this plan was added at the same time; retry")
    return created, True


async def list_plans(page: PageRequest) -> Page:
    async with anonymous_tx():
        return page_of(await repository.list_latest_plans(page), page)


async def get_plan(code: str, version: int | None = None) -> dict[str, Any]:
    async with anonymous_tx():
        row = await (repository.latest_plan(code) if version is None else repository.plan_version(code, version))
    if row is None:
        raise PlanNotFound(f"no plan has the code {code!r}" + (f" and version {version}" if version else ""))
    return row
