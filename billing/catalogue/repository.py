"""Metrics and plan versions: a platform-wide catalogue the app role may read and add to, never change."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

METRIC_COLUMNS = "id, code, name, aggregation, field, created_at"
PLAN_COLUMNS = (
    "id, code, version, name, currency, interval, trial_days, charges, proration_upgrade, proration_downgrade, "
    "rate_limit_percent, created_at"
)


async def insert_metric(values: dict[str, Any]) -> dict[str, Any] | None:
    """The new metric, or None when the code is taken."""
    rows = await fetch(
        f"insert into billable_metrics (id, code, name, aggregation, field) values ({{}}, {{}}, {{}}, {{}}, {{}}) "
        f"on conflict (code) do nothing returning {METRIC_COLUMNS}",
        uuid.uuid4(),
        values["code"],
        values["name"],
        values["aggregation"],
        values.get("field"),
    )
    return rows[0] if rows else None


async def get_metric(code: str) -> dict[str, Any] | None:
    rows = await fetch(f"select {METRIC_COLUMNS} from billable_metrics where code = {{}}", code)
    return rows[0] if rows else None


async def metrics_by_code(codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    rows = await fetch(f"select {METRIC_COLUMNS} from billable_metrics where code = any({{}}::text[])", list(codes))
    return {row["code"]: row for row in rows}


async def list_metrics(page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {METRIC_COLUMNS} from billable_metrics where true{clause} order by created_at, id limit {{}}",
        *args,
        page.limit + 1,
    )


def _plan(row: dict[str, Any]) -> dict[str, Any]:
    # asyncpg hands jsonb back as text.
    return {**row, "charges": json.loads(row["charges"]) if isinstance(row["charges"], str) else row["charges"]}


async def latest_plan(code: str) -> dict[str, Any] | None:
    rows = await fetch(f"select {PLAN_COLUMNS} from plans where code = {{}} order by version desc limit 1", code)
    return _plan(rows[0]) if rows else None


async def plan_version(code: str, version: int) -> dict[str, Any] | None:
    rows = await fetch(f"select {PLAN_COLUMNS} from plans where code = {{}} and version = {{}}", code, version)
    return _plan(rows[0]) if rows else None


async def plans_by_id(ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    rows = await fetch(f"select {PLAN_COLUMNS} from plans where id = any({{}}::uuid[])", list(ids))
    return {row["id"]: _plan(row) for row in rows}


async def insert_plan_version(values: dict[str, Any]) -> dict[str, Any] | None:
    """The plan as the next version of its code, or None if another version was added meanwhile."""
    try:
        rows = await fetch(
            f"insert into plans (id, code, version, name, currency, interval, trial_days, charges, "
            f"proration_upgrade, proration_downgrade, rate_limit_percent) "
            f"select {{}}, {{}}, coalesce(max(version), 0) + 1, {{}}, {{}}, {{}}, {{}}, {{}}::jsonb, {{}}, {{}}, {{}} "
            f"from plans where code = {{}} returning {PLAN_COLUMNS}",
            uuid.uuid4(),
            values["code"],
            values["name"],
            values["currency"],
            values["interval"],
            values["trial_days"],
            json.dumps(values["charges"]),
            values["proration_upgrade"],
            values["proration_downgrade"],
            values["rate_limit_percent"],
            values["code"],
        )
    except asyncpg.UniqueViolationError:
        return None
    return _plan(rows[0])


async def list_latest_plans(page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page, alias="p.")
    rows = await fetch(
        f"select {', '.join('p.' + c.strip() for c in PLAN_COLUMNS.split(','))} from plans p "
        f"where p.version = (select max(version) from plans q where q.code = p.code){clause} "
        f"order by p.created_at, p.id limit {{}}",
        *args,
        page.limit + 1,
    )
    return [_plan(row) for row in rows]
