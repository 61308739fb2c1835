"""Usage events: stored once per tenant and key, aggregated per metric over a window."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.catalogue.rules import Charge
from controlplane.core.db import fetch


async def insert_usage_events(tenant_id: uuid.UUID, events: Sequence[tuple[Any, ...]]) -> int:
    """Insert (key, metric_code, occurred_at, value, properties_json) rows; keys already stored are skipped.
    Returns how many were new."""
    if not events:
        return 0
    keys, codes, times, values, properties = (list(column) for column in zip(*events, strict=True))
    rows = await fetch(
        "with inserted as ("
        " insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at, value, properties)"
        " select {}, k, m, t, v, p::jsonb"
        " from unnest({}::text[], {}::text[], {}::timestamptz[], {}::numeric[], {}::text[]) as e(k, m, t, v, p)"
        " on conflict (tenant_id, idempotency_key) do nothing returning 1"
        ") select count(*) as n from inserted",
        tenant_id,
        keys,
        codes,
        times,
        values,
        properties,
    )
    return int(rows[0]["n"])


# Ingestion holds it per tenant and bounded metric, exclusively, while it checks the open window's aggregate
# against the metric's bound and stores the batch: two batches never both fit under the bound on their own.
USAGE_TOTALS_LOCK = 7_302


async def lock_usage_totals(tenant_id: uuid.UUID, metric_codes: Sequence[str]) -> None:
    """Taken in the codes' order, so that two batches never wait for each other in a circle."""
    for code in sorted(set(metric_codes)):
        await fetch(f"select pg_advisory_xact_lock({USAGE_TOTALS_LOCK}, hashtext({{}}))", f"{tenant_id}:{code}")


async def stored_keys(tenant_id: uuid.UUID, keys: Sequence[str]) -> set[str]:
    rows = await fetch(
        "select idempotency_key from usage_events where tenant_id = {} and idempotency_key = any({}::text[])",
        tenant_id,
        list(keys),
    )
    return {row["idempotency_key"] for row in rows}


def _measure(metric: dict[str, Any]) -> tuple[str, list[Any]]:
    """One metric's aggregate over the events of its code (the field is bound, never spliced)."""
    aggregation, field = metric["aggregation"], metric["field"]
    number = "(properties ->> {})::numeric" if field else "value"
    number_args = [field] if field else []
    only = " filter (where metric_code = {})"
    if aggregation == "count":
        return f"(count(*){only})::numeric", [metric["code"]]
    if aggregation == "sum":
        return f"coalesce(sum({number}){only}, 0)", [*number_args, metric["code"]]
    if aggregation == "max":
        return f"coalesce(max({number}){only}, 0)", [*number_args, metric["code"]]
    if aggregation == "unique_count":
        return f"(count(distinct properties ->> {{}}){only})::numeric", [field, metric["code"]]
    latest = f"(array_agg({number} order by occurred_at desc, id desc){only})[1]"
    return f"coalesce({latest}, 0)", [*number_args, metric["code"]]


async def aggregate_usage(
    tenant_id: uuid.UUID, metrics: Sequence[dict[str, Any]], start: datetime, end: datetime
) -> dict[str, Decimal]:
    """Each metric's aggregate over events with start <= occurred_at < end, in one query."""
    if not metrics:
        return {}
    selects: list[str] = []
    args: list[Any] = []
    for index, metric in enumerate(metrics):
        expression, expression_args = _measure(metric)
        selects.append(f"{expression} as m{index}")  # distinct names: rows become dicts
        args += expression_args
    rows = await fetch(
        f"select {', '.join(selects)} from usage_events "
        f"where tenant_id = {{}} and metric_code = any({{}}::text[]) and occurred_at >= {{}} and occurred_at < {{}}",
        *args,
        tenant_id,
        [m["code"] for m in metrics],
        start,
        end,
    )
    return {metric["code"]: Decimal(rows[0][f"m{index}"] or 0) for index, metric in enumerate(metrics)}


async def percentage_fees(
    tenant_id: uuid.UUID,
    metric: dict[str, Any],
    charge: Charge,
    start: datetime,
    end: datetime,
    *,
    period_start: datetime,
) -> tuple[Decimal, int, Decimal]:
    """(sum of the values, number of events, exact sum of the paying events' clamped fees) of a percentage
    `charge` over the events of its `sum` metric with start <= occurred_at < end.

    Computed in PostgreSQL in exact `numeric` (products and sums only; the rate arrives already divided by 100),
    one pass over the window's events: their fees never leave the database. `row_number()` in occurrence order
    (id breaks ties, as `latest` does) tells the free events apart, counted from the billing period's start
    (`period_start`): the period's events before the window (a mid-period plan change billed them) used up
    free events first, as `billing.rating.percentage_usage`'s `earlier_events`. `greatest`/`least` skip a NULL
    bound."""
    number = "(properties ->> {})::numeric" if metric["field"] else "value"
    number_args = [metric["field"]] if metric["field"] else []
    ordered = "row_number() over (order by occurred_at, id)" if charge.free_events else "1"
    counted_from = min(period_start, start) if charge.free_events else start
    rows = await fetch(
        f"select coalesce(sum(v) filter (where billed), 0) as units, count(*) filter (where billed) as events,"
        f" coalesce(sum(least(greatest(v * {{}}::numeric + {{}}::numeric, {{}}::numeric), {{}}::numeric))"
        f" filter (where billed and n > {{}}), 0) as fees"
        f" from (select {number} as v, {ordered} as n, occurred_at >= {{}} as billed from usage_events"
        f" where tenant_id = {{}} and metric_code = {{}} and occurred_at >= {{}} and occurred_at < {{}}) as e",
        charge.rate.scaleb(-2),
        charge.fixed_amount,
        charge.per_event_min,
        charge.per_event_max,
        charge.free_events,
        *number_args,
        start,
        tenant_id,
        metric["code"],
        counted_from,
        end,
    )
    row = rows[0]
    return Decimal(row["units"]), int(row["events"]), Decimal(row["fees"])
