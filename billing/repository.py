"""Queries of the billing domain. They run inside the caller's transaction and know nothing of HTTP.

Row-level security confines subscriptions, usage, invoices and credit notes to the tenant in context;
metrics and plans are a platform-wide catalogue that the app role may read and add to, never change.

Queries over many rows also name the tenant: the policies combine as `tenant = … OR system scope`, which
the planner cannot match to an index, so without `tenant_id = {}` they would scan every tenant's rows.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from billing.rating import Line
from controlplane.db import fetch
from controlplane.pagination import PageRequest, keyset_clause

ROW_LOCKS = {None: "", "share": " for share", "update": " for update"}

# -- catalogue ----------------------------------------------------------------------------------------

METRIC_COLUMNS = "id, code, name, aggregation, field, created_at"
PLAN_COLUMNS = (
    "id, code, version, name, currency, interval, trial_days, charges, proration_upgrade, proration_downgrade, "
    "created_at"
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
            f"proration_upgrade, proration_downgrade) "
            f"select {{}}, {{}}, coalesce(max(version), 0) + 1, {{}}, {{}}, {{}}, {{}}, {{}}::jsonb, {{}}, {{}} "
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


# -- subscriptions ------------------------------------------------------------------------------------

SUBSCRIPTION_COLUMNS = (
    "s.id, s.tenant_id, s.plan_id, p.code as plan_code, p.version as plan_version, s.seats, s.status, "
    "s.billing_anchor, s.anchor_date, s.started_at, s.trial_end, s.current_period_start, s.current_period_end, "
    "s.usage_from, s.cancel_at_period_end, s.canceled_at, s.pending_plan_id, pp.code as pending_plan_code, "
    "s.pending_seats, s.created_at, s.updated_at"
)
SUBSCRIPTION_FROM = "subscriptions s join plans p on p.id = s.plan_id left join plans pp on pp.id = s.pending_plan_id"
WRITABLE_SUBSCRIPTION = {
    "plan_id",
    "seats",
    "status",
    "anchor_date",
    "current_period_start",
    "current_period_end",
    "usage_from",
    "cancel_at_period_end",
    "canceled_at",
    "pending_plan_id",
    "pending_seats",
    "trial_end",
}


async def insert_subscription(values: dict[str, Any]) -> bool:
    """False when the tenant already has a live subscription."""
    rows = await fetch(
        "insert into subscriptions (id, tenant_id, plan_id, seats, status, billing_anchor, anchor_date, started_at, "
        "trial_end, current_period_start, current_period_end, usage_from) "
        "values ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
        "on conflict (tenant_id) where status <> 'canceled' do nothing returning id",
        values["id"],
        values["tenant_id"],
        values["plan_id"],
        values["seats"],
        values["status"],
        values["billing_anchor"],
        values["anchor_date"],
        values["started_at"],
        values["trial_end"],
        values["current_period_start"],
        values["current_period_end"],
        values["usage_from"],
    )
    return bool(rows)


async def get_subscription(subscription_id: uuid.UUID, *, lock: str | None = None) -> dict[str, Any] | None:
    of = " of s" if lock else ""
    rows = await fetch(
        f"select {SUBSCRIPTION_COLUMNS} from {SUBSCRIPTION_FROM} where s.id = {{}}{ROW_LOCKS[lock]}{of}",
        subscription_id,
    )
    return rows[0] if rows else None


async def live_subscription(tenant_id: uuid.UUID, *, lock: str | None = None) -> dict[str, Any] | None:
    """The tenant's subscription that is not canceled, if any."""
    of = " of s" if lock else ""
    rows = await fetch(
        f"select {SUBSCRIPTION_COLUMNS} from {SUBSCRIPTION_FROM} "
        f"where s.tenant_id = {{}} and s.status <> 'canceled'{ROW_LOCKS[lock]}{of}",
        tenant_id,
    )
    return rows[0] if rows else None


async def list_subscriptions(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page, alias="s.")
    return await fetch(
        f"select {SUBSCRIPTION_COLUMNS} from {SUBSCRIPTION_FROM} where s.tenant_id = {{}}{clause} "
        f"order by s.created_at, s.id limit {{}}",
        tenant_id,
        *args,
        page.limit + 1,
    )


async def update_subscription(subscription_id: uuid.UUID, changes: dict[str, Any]) -> None:
    unknown = set(changes) - WRITABLE_SUBSCRIPTION
    if unknown:
        raise ValueError(f"columns {sorted(unknown)} cannot be updated")
    assignments = [f"{column} = {{}}" for column in changes] + ["updated_at = now()"]
    await fetch(
        f"update subscriptions set {', '.join(assignments)} where id = {{}}", *changes.values(), subscription_id
    )


DUE = "status in ('trialing', 'active', 'past_due') and current_period_end <= {}"


async def count_due_subscriptions(cutoff: datetime) -> int:
    rows = await fetch(f"select count(*) as n from subscriptions where {DUE}", cutoff)
    return int(rows[0]["n"])


async def due_subscriptions(cutoff: datetime, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
    """Across tenants (system context): live subscriptions with a boundary at or before `cutoff`."""
    return await fetch(
        f"select id, tenant_id from subscriptions where {DUE} and id > {{}} order by id limit {{}}",
        cutoff,
        after or uuid.UUID(int=0),
        limit,
    )


# A tenant's open usage window (its live subscription's `usage_from`): ingestion holds this lock shared while
# it checks and stores events, billing and plan changes hold it exclusively while they move the window. An
# advisory lock, unlike FOR SHARE on the row, writes nothing, so concurrent batches do not contend.
USAGE_WINDOW_LOCK = 7_301


async def lock_usage_window(tenant_id: uuid.UUID, *, shared: bool) -> None:
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await fetch(f"select {function}({USAGE_WINDOW_LOCK}, hashtext({{}}::text))", str(tenant_id))


# -- usage --------------------------------------------------------------------------------------------


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


# -- invoices -----------------------------------------------------------------------------------------

INVOICE_COLUMNS = (
    "id, number, tenant_id, subscription_id, kind, status, currency, period_start, period_end, subtotal_minor, "
    "tax_rate_bps, tax_minor, total_minor, credited_minor, amount_due_minor, finalize_at, issued_at, voided_at, "
    "created_at"
)
LINE_COLUMNS = (
    "description, charge_kind, charge_index, metric_code, quantity, unit_amount_minor, precise_amount_minor, "
    "amount_minor, period_start, period_end"
)


async def insert_invoice(values: dict[str, Any]) -> bool:
    """False when this subscription's boundary already has its invoice (the exactly-once rule)."""
    rows = await fetch(
        "insert into invoices (id, tenant_id, subscription_id, kind, cycle_boundary, status, currency, period_start, "
        "period_end, subtotal_minor, tax_rate_bps, tax_minor, total_minor, amount_due_minor, finalize_at) "
        "values ({}, {}, {}, {}, {}, 'draft', {}, {}, {}, {}, {}, {}, {}, {}, {}) "
        "on conflict (subscription_id, cycle_boundary) do nothing returning id",
        values["id"],
        values["tenant_id"],
        values["subscription_id"],
        values["kind"],
        values.get("cycle_boundary"),
        values["currency"],
        values["period_start"],
        values["period_end"],
        values["subtotal_minor"],
        values["tax_rate_bps"],
        values["tax_minor"],
        values["total_minor"],
        values["amount_due_minor"],
        values["finalize_at"],
    )
    return bool(rows)


async def insert_lines(tenant_id: uuid.UUID, invoice_id: uuid.UUID, lines: Sequence[Line]) -> None:
    if not lines:
        return
    columns: list[list[Any]] = [[] for _ in range(10)]
    for line in lines:
        for column, value in zip(
            columns,
            (
                line.description,
                line.charge_kind,
                line.charge_index,
                line.metric_code,
                line.quantity,
                line.unit_amount,
                line.precise_amount,
                line.amount_minor,
                line.period.start,
                line.period.end,
            ),
            strict=True,
        ):
            column.append(value)
    await fetch(
        f"insert into invoice_lines (tenant_id, invoice_id, position, {LINE_COLUMNS}) "
        "select {}, {}, ordinality, d, k, ci, m, q, u, pr, a, ps, pe "
        "from unnest({}::text[], {}::text[], {}::int[], {}::text[], {}::numeric[], {}::numeric[], {}::numeric[], "
        "{}::bigint[], {}::timestamptz[], {}::timestamptz[]) with ordinality as l(d, k, ci, m, q, u, pr, a, ps, pe)",
        tenant_id,
        invoice_id,
        *columns,
    )


async def take_invoice_number(tenant_id: uuid.UUID) -> str:
    """The tenant's next number. Taken inside the finalizing transaction, so a rollback leaves no gap;
    the row lock makes concurrent finalizations wait their turn."""
    rows = await fetch(
        "update tenants set invoice_sequence = invoice_sequence + 1 where id = {} returning slug, invoice_sequence",
        tenant_id,
    )
    return f"{rows[0]['slug'].upper()}-{rows[0]['invoice_sequence']:06d}"


async def finalize_invoice(invoice_id: uuid.UUID, number: str, issued_at: datetime) -> dict[str, Any]:
    rows = await fetch(
        "update invoices set status = 'finalized', number = {}, issued_at = {}, finalize_at = null "
        f"where id = {{}} and status = 'draft' returning {INVOICE_COLUMNS}",
        number,
        issued_at,
        invoice_id,
    )
    return rows[0]


async def get_invoice(invoice_id: uuid.UUID, *, lock: str | None = None) -> dict[str, Any] | None:
    rows = await fetch(f"select {INVOICE_COLUMNS} from invoices where id = {{}}{ROW_LOCKS[lock]}", invoice_id)
    return rows[0] if rows else None


async def invoice_lines(invoice_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    rows = await fetch(
        f"select invoice_id, {LINE_COLUMNS} from invoice_lines where invoice_id = any({{}}::uuid[]) "
        "order by invoice_id, position",
        list(invoice_ids),
    )
    grouped: dict[uuid.UUID, list[dict[str, Any]]] = {invoice_id: [] for invoice_id in invoice_ids}
    for row in rows:
        grouped[row.pop("invoice_id")].append(row)
    return grouped


async def list_invoices(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {INVOICE_COLUMNS} from invoices where tenant_id = {{}}{clause} order by created_at, id limit {{}}",
        tenant_id,
        *args,
        page.limit + 1,
    )


async def set_invoice_status(invoice_id: uuid.UUID, status: str, **changes: Any) -> dict[str, Any]:
    allowed = {"credited_minor", "amount_due_minor", "voided_at"}
    if set(changes) - allowed:
        raise ValueError(f"columns {sorted(set(changes) - allowed)} cannot be updated")
    assignments = ["status = {}"] + [f"{column} = {{}}" for column in changes]
    rows = await fetch(
        f"update invoices set {', '.join(assignments)} where id = {{}} returning {INVOICE_COLUMNS}",
        status,
        *changes.values(),
        invoice_id,
    )
    return rows[0]


async def due_drafts(cutoff: datetime, limit: int) -> list[dict[str, Any]]:
    """Across tenants (system context): drafts whose grace has passed."""
    return await fetch(
        "select id, tenant_id from invoices where status = 'draft' and finalize_at <= {} order by finalize_at limit {}",
        cutoff,
        limit,
    )


async def invoices_billing_period(subscription_id: uuid.UUID, period_end: datetime) -> list[dict[str, Any]]:
    """The cycle and change invoices that billed advance charges for the period ending at `period_end`,
    newest first, locked (a cancellation credits them)."""
    return await fetch(
        f"select {INVOICE_COLUMNS} from invoices where subscription_id = {{}} and kind in ('cycle', 'change') "
        "and period_end = {} and status in ('draft', 'finalized', 'paid') order by created_at desc for update",
        subscription_id,
        period_end,
    )


# -- pending items and credit notes -------------------------------------------------------------------


async def open_pending_items(subscription_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        "select id, description, charge_kind, metric_code, quantity, unit_amount_minor, precise_amount_minor, "
        "amount_minor, period_start, period_end from pending_invoice_items "
        "where subscription_id = {} and invoice_id is null order by created_at, id for update",
        subscription_id,
    )


async def insert_pending_items(tenant_id: uuid.UUID, subscription_id: uuid.UUID, lines: Sequence[Line]) -> None:
    for line in lines:
        await fetch(
            "insert into pending_invoice_items (id, tenant_id, subscription_id, description, charge_kind, metric_code, "
            "quantity, unit_amount_minor, precise_amount_minor, amount_minor, period_start, period_end) "
            "values ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
            uuid.uuid4(),
            tenant_id,
            subscription_id,
            line.description,
            line.charge_kind,
            line.metric_code,
            line.quantity,
            line.unit_amount,
            line.precise_amount,
            line.amount_minor,
            line.period.start,
            line.period.end,
        )


async def consume_pending_items(item_ids: Sequence[uuid.UUID], invoice_id: uuid.UUID) -> None:
    if item_ids:
        await fetch(
            "update pending_invoice_items set invoice_id = {} where id = any({}::uuid[])", invoice_id, list(item_ids)
        )


CREDIT_NOTE_COLUMNS = "id, tenant_id, invoice_id, amount_minor, currency, reason, created_at"


async def insert_credit_note(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into credit_notes (id, tenant_id, invoice_id, amount_minor, currency, reason) "
        f"values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}) returning {CREDIT_NOTE_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["invoice_id"],
        values["amount_minor"],
        values["currency"],
        values["reason"],
    )
    return rows[0]


async def credit_notes_of(invoice_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {CREDIT_NOTE_COLUMNS} from credit_notes where invoice_id = {{}} order by created_at, id",
        invoice_id,
    )


async def resource_tenant(table: str, resource_id: uuid.UUID) -> uuid.UUID | None:
    """Which tenant an id-addressed subscription, invoice or escrow belongs to (system context, for routing only)."""
    if table not in ("subscriptions", "invoices", "escrows"):
        raise ValueError(table)
    rows = await fetch(f"select tenant_id from {table} where id = {{}}", resource_id)
    return rows[0]["tenant_id"] if rows else None


async def tenant_billing_settings(tenant_id: uuid.UUID) -> dict[str, Any]:
    rows = await fetch("select slug, tax_rate_bps, invoice_grace_hours from tenants where id = {}", tenant_id)
    return rows[0]
