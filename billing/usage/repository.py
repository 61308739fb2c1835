"""Usage events: stored once per tenant and key, aggregated per metric over a window."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from billing.catalogue.rules import Charge
from billing.limits import LATEST
from controlplane.core.db import fetch


@dataclass(frozen=True, slots=True)
class Tally:
    """Events of one metric: how many, and what they add to its running total (`units`: 1 each for a `count`,
    the number for a `sum`; 0 for the aggregations that keep no total)."""

    events: int
    units: Decimal


@dataclass(frozen=True, slots=True)
class Stored:
    """What `insert_usage_events` stored: `count` new rows, tallied per metric, and the keys stored before
    (skipped)."""

    count: int
    tallies: dict[str, Tally]
    skipped: frozenset[str]


# Running totals are kept for these aggregations (see `window_totals`); the others are checked per event
# (`max`, `latest`) or on the window's aggregate (`unique_count`).
RUNNING = frozenset({"count", "sum"})


def _number(metric: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """A `sum` metric's number of a stored event, as `_measure` reads it (the field is bound, never spliced)."""
    return ("(properties ->> {})::numeric", [metric["field"]]) if metric["field"] else ("value", [])


def _units(metrics: Iterable[Mapping[str, Any]]) -> tuple[str, list[Any]]:
    """What one stored event adds to its metric's running total: 1 for a `count`, its number for a `sum`, NULL
    for the other aggregations."""
    branches: list[str] = []
    args: list[Any] = []
    for metric in metrics:
        if metric["aggregation"] == "count":
            branches.append("when {} then 1::numeric")
            args.append(metric["code"])
        elif metric["aggregation"] == "sum":
            number, number_args = _number(metric)
            branches.append(f"when {{}} then {number}")
            args += [metric["code"], *number_args]
    if not branches:
        return "null::numeric", []
    return f"case metric_code {' '.join(branches)} end", args


def _tallies(codes: list[str] | None, events: list[int] | None, units: list[Decimal] | None) -> dict[str, Tally]:
    return {code: Tally(int(n), Decimal(u)) for code, n, u in zip(codes or [], events or [], units or [], strict=True)}


class _Row(msgspec.Struct, gc=False):
    """One event as `insert_usage_events` sends it: the batch goes as one JSON document (a few hundred
    microseconds to encode, against milliseconds for five arrays of a thousand values each)."""

    k: str
    m: str
    t: datetime
    v: Decimal | None  # encoded as a string: read back by `numeric` exactly
    p: msgspec.Raw | None  # the client's JSON object, as it came (checked by `billing.usage.rules.check`)


_ROWS = msgspec.json.Encoder()


async def insert_usage_events(
    tenant_id: uuid.UUID, events: Sequence[tuple[Any, ...]], metrics: Iterable[Mapping[str, Any]]
) -> Stored:
    """Insert (key, metric_code, occurred_at, value, properties_json) rows; keys already stored are skipped. What
    was stored is tallied per metric in the same statement (`metrics`: the rows' metrics).

    Rows go in in key order: two batches sharing keys then wait for each other's uncommitted keys one way only,
    never in a circle (a deadlock, which PostgreSQL would break by failing one of them)."""
    if not events:
        return Stored(0, {}, frozenset())
    document = _ROWS.encode([_Row(k, m, t, v, None if p is None else msgspec.Raw(p)) for k, m, t, v, p in events])
    units, units_args = _units(metrics)
    rows = await fetch(
        "with e as materialized ("
        " select * from json_to_recordset({}::json) as e(k text, m text, t timestamptz, v numeric, p jsonb)"
        "), inserted as ("
        " insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at, value, properties)"
        " select {}, k, m, t, v, p from e order by k"
        " on conflict (tenant_id, idempotency_key) do nothing"
        f" returning idempotency_key, metric_code, {units} as x"
        "), tallies as ("
        " select metric_code, count(*) as events, coalesce(sum(x), 0) as units from inserted group by metric_code"
        ") select coalesce(sum(events), 0)::bigint as n, array_agg(metric_code) as codes, array_agg(events) as events,"
        " array_agg(units) as units,"
        " (select array_agg(k) from e where k not in (select idempotency_key from inserted)) as skipped"
        " from tallies",
        document.decode(),
        tenant_id,
        *units_args,
    )
    row = rows[0]
    return Stored(int(row["n"]), _tallies(row["codes"], row["events"], row["units"]), frozenset(row["skipped"] or ()))


async def discard_usage_events(
    tenant_id: uuid.UUID, keys: Sequence[str], metrics: Iterable[Mapping[str, Any]]
) -> dict[str, Tally]:
    """Remove events this transaction inserted (a batch's refused ones), tallied per metric as they were stored.
    The app role may delete only rows its own transaction inserted (a restrictive policy): stored usage is never
    removed."""
    units, units_args = _units(metrics)
    rows = await fetch(
        f"with removed as (delete from usage_events where tenant_id = {{}} and idempotency_key = any({{}}::text[])"
        f" returning metric_code, {units} as x)"
        " select metric_code, count(*) as events, coalesce(sum(x), 0) as units from removed group by metric_code",
        tenant_id,
        list(keys),
        *units_args,
    )
    removed = {row["metric_code"]: Tally(int(row["events"]), Decimal(row["units"])) for row in rows}
    if sum(tally.events for tally in removed.values()) != len(keys):
        raise RuntimeError(f"discarded {sum(t.events for t in removed.values())} of {len(keys)} refused usage events")
    return removed


# Ingestion holds it per tenant and metric, exclusively, from after it inserted its batch to its commit, while it
# checks the batch against the window's total and writes the total: two batches never both fit under the bound
# on their own (the one that takes the lock second reads the total the first committed).
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


async def daily_usage(
    tenant_id: uuid.UUID, metric: dict[str, Any], start: datetime, end: datetime
) -> list[tuple[datetime, Decimal]]:
    """The metric's own aggregate over each UTC day with events, start <= occurred_at < end, in day order."""
    expression, expression_args = _measure(metric)
    rows = await fetch(
        f"select date_trunc('day', occurred_at, 'UTC') as day, {expression} as value from usage_events "
        "where tenant_id = {} and metric_code = {} and occurred_at >= {} and occurred_at < {} "
        "group by 1 order by 1",
        *expression_args,
        tenant_id,
        metric["code"],
        start,
        end,
    )
    return [(row["day"], Decimal(row["value"] or 0)) for row in rows]


async def aggregate_usage(
    tenant_id: uuid.UUID,
    metrics: Sequence[dict[str, Any]],
    start: datetime,
    end: datetime,
    *,
    excluding: Sequence[str] = (),
) -> dict[str, Decimal]:
    """Each metric's aggregate over events with start <= occurred_at < end, in one query; events whose key is
    in `excluding` left out."""
    if not metrics:
        return {}
    selects: list[str] = []
    args: list[Any] = []
    for index, metric in enumerate(metrics):
        expression, expression_args = _measure(metric)
        selects.append(f"{expression} as m{index}")  # distinct names: rows become dicts
        args += expression_args
    without, without_args = (
        (" and idempotency_key not in (select unnest({}::text[]))", [list(excluding)]) if excluding else ("", [])
    )
    rows = await fetch(
        f"select {', '.join(selects)} from usage_events "
        f"where tenant_id = {{}} and metric_code = any({{}}::text[]) and occurred_at >= {{}} and occurred_at < {{}}"
        f"{without}",
        *args,
        tenant_id,
        [m["code"] for m in metrics],
        start,
        end,
        *without_args,
    )
    return {metric["code"]: Decimal(rows[0][f"m{index}"] or 0) for index, metric in enumerate(metrics)}


async def advance_totals(
    tenant_id: uuid.UUID,
    metrics: Sequence[Mapping[str, Any]],
    start: datetime,
    added: Mapping[str, Tally],
    rider: tuple[str, list[Any]],
) -> tuple[dict[str, Tally], Any]:
    """Under the metrics' totals locks, in the transaction that stored a batch: each `count` / `sum` metric's
    running total of the window from `start` (the open window's start) moves on by what the batch stored
    (`added`); returned: each moved total as it was before the batch, and the value of `rider` (a scalar
    subquery and its values), read in the same statement, so after the locks too.

    A metric's row of another window is dropped, and a metric without a row for `start` is not in the answer:
    `compute_totals` makes its row when it is bounded. What a batch then refuses comes off (`take_from_totals`)."""
    rider_sql, rider_args = rider
    if not metrics:
        rows = await fetch(f"select null::json as moved, {rider_sql} as rider", *rider_args)
        return {}, rows[0]["rider"]
    codes = sorted(metric["code"] for metric in metrics)
    rows = await fetch(
        "with d as (select * from unnest({}::text[], {}::numeric[], {}::bigint[]) as d(code, units, events)"
        "), stale as ("
        " delete from usage_totals t using d"
        " where t.tenant_id = {} and t.metric_code = d.code and t.window_start <> {}"
        "), moved as ("
        " update usage_totals t set units = t.units + d.units, events = t.events + d.events"
        " from d where t.tenant_id = {} and t.metric_code = d.code and t.window_start = {}"
        " returning t.metric_code, t.units - d.units as units, t.events - d.events as events"
        # Units as text: a JSON number would not come back exact.
        ") select (select json_agg(json_build_array(metric_code, units::text, events)) from moved) as moved,"
        f" {rider_sql} as rider",
        codes,
        [added[code].units for code in codes],
        [added[code].events for code in codes],
        tenant_id,
        start,
        tenant_id,
        start,
        *rider_args,
    )
    moved = json.loads(rows[0]["moved"]) if rows[0]["moved"] else []
    return {code: Tally(int(events), Decimal(units)) for code, units, events in moved}, rows[0]["rider"]


async def compute_totals(
    tenant_id: uuid.UUID, metrics: Sequence[Mapping[str, Any]], start: datetime, added: Mapping[str, Tally]
) -> dict[str, Tally]:
    """Under the metrics' totals locks: the row of each metric (without one for `start`) computed from its events,
    every event from `start` on, this transaction's included (`added`, which `advance_totals` would have
    moved it by); returned as it was before them. So existing windows and a window that just moved need no
    backfill."""
    before: dict[str, Tally] = {}
    for metric in metrics:
        code = metric["code"]
        units_args: list[Any] = []
        if metric["aggregation"] == "count":
            units = "count(*)::numeric"
        else:
            number, units_args = _number(metric)
            units = f"coalesce(sum({number}), 0)"
        computed = await fetch(
            "insert into usage_totals (tenant_id, metric_code, window_start, units, events)"
            f" select {{}}, {{}}, {{}}, {units}, count(*) from usage_events"
            " where tenant_id = {} and metric_code = {} and occurred_at >= {} and occurred_at < {}"
            " on conflict (tenant_id, metric_code) do update"
            " set window_start = excluded.window_start, units = excluded.units, events = excluded.events"
            " returning units - {}::numeric as units, events - {}::bigint as events",
            tenant_id,
            code,
            start,
            *units_args,
            tenant_id,
            code,
            start,
            LATEST,
            added[code].units,
            added[code].events,
        )
        before[code] = Tally(int(computed[0]["events"]), Decimal(computed[0]["units"]))
    return before


async def take_from_totals(tenant_id: uuid.UUID, start: datetime, removed: Mapping[str, Tally]) -> None:
    """What a batch stored and then removed (its refused events) comes off its metrics' totals of the window."""
    if not removed:
        return
    codes = sorted(removed)
    await fetch(
        "update usage_totals t set units = t.units - d.units, events = t.events - d.events"
        " from unnest({}::text[], {}::numeric[], {}::bigint[]) as d(code, units, events)"
        " where t.tenant_id = {} and t.metric_code = d.code and t.window_start = {}",
        codes,
        [removed[code].units for code in codes],
        [removed[code].events for code in codes],
        tenant_id,
        start,
    )


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
