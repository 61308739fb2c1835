"""Invoices and their lines; numbers; routing an id to its tenant."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from billing.disputes.repository import DISPUTE_COLUMNS
from billing.locks import ROW_LOCKS
from billing.rating import Line
from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

INVOICE_COLUMNS = (
    "id, number, tenant_id, subscription_id, kind, status, currency, period_start, period_end, subtotal_minor, "
    "tax_rate_bps, tax_minor, total_minor, credited_minor, amount_due_minor, finalize_at, issued_at, voided_at, "
    "created_at, discount_minor, credits_applied_minor, taxes"
)
LINE_COLUMNS = (
    "description, charge_kind, charge_index, metric_code, quantity, unit_amount_minor, precise_amount_minor, "
    "amount_minor, period_start, period_end"
)
# Invoices with their lines and disputes, by one statement (one snapshot, one round trip): both as arrays of
# anonymous records in the invoice's row, named again by `_in_full`.
_IN_FULL = (
    f"{INVOICE_COLUMNS}, "
    f"array(select row({LINE_COLUMNS}) from invoice_lines where invoice_id = invoices.id order by position) as lines, "
    f"array(select row({DISPUTE_COLUMNS}) from disputes where invoice_id = invoices.id order by created_at, id) "
    "as disputes"
)
_LINE_NAMES = LINE_COLUMNS.split(", ")
_DISPUTE_NAMES = DISPUTE_COLUMNS.split(", ")


async def insert_invoice(values: dict[str, Any]) -> bool:
    """False when this subscription's boundary already has its invoice (the exactly-once rule)."""
    rows = await fetch(
        "insert into invoices (id, tenant_id, subscription_id, kind, cycle_boundary, status, currency, period_start, "
        "period_end, subtotal_minor, discount_minor, tax_rate_bps, tax_minor, taxes, total_minor, amount_due_minor, "
        "finalize_at) values ({}, {}, {}, {}, {}, 'draft', {}, {}, {}, {}, {}, {}, {}, {}::jsonb, {}, {}, {}) "
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
        values.get("discount_minor", 0),
        values["tax_rate_bps"],
        values["tax_minor"],
        json.dumps([dataclasses.asdict(tax) for tax in values.get("taxes", ())]),
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


def _in_full(row: dict[str, Any]) -> dict[str, Any]:
    row["lines"] = [dict(zip(_LINE_NAMES, line, strict=True)) for line in row["lines"]]
    row["disputes"] = [dict(zip(_DISPUTE_NAMES, dispute, strict=True)) for dispute in row["disputes"]]
    return row


async def list_invoices(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    """A page of the tenant's invoices, each with its `lines` and `disputes` (rows, in their order)."""
    clause, args = keyset_clause(page)
    rows = await fetch(
        f"select {_IN_FULL} from invoices where tenant_id = {{}}{clause} order by created_at, id limit {{}}",
        tenant_id,
        *args,
        page.limit + 1,
    )
    return [_in_full(row) for row in rows]


async def get_invoice_in_full(invoice_id: uuid.UUID) -> dict[str, Any] | None:
    """The invoice with its `lines` and `disputes`, as `list_invoices` gives them."""
    rows = await fetch(f"select {_IN_FULL} from invoices where id = {{}}", invoice_id)
    return _in_full(rows[0]) if rows else None


async def set_invoice_status(invoice_id: uuid.UUID, status: str, **changes: Any) -> dict[str, Any]:
    allowed = {"credited_minor", "amount_due_minor", "voided_at", "credits_applied_minor"}
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
        "select id, tenant_id from invoices where status = 'draft' and finalize_at <= {} "
        "order by finalize_attempts, finalize_at limit {}",  # drafts that failed before come after the others
        cutoff,
        limit,
    )


async def record_finalize_failure(invoice_id: uuid.UUID, reason: str) -> int:
    """Note why the draft could not be finalized; the attempts so far, this one included (0: not a draft)."""
    rows = await fetch(
        "update invoices set finalize_error = {}, finalize_attempts = finalize_attempts + 1 "
        "where id = {} and status = 'draft' returning finalize_attempts",
        reason,
        invoice_id,
    )
    return int(rows[0]["finalize_attempts"]) if rows else 0


async def defer_finalize(invoice_id: uuid.UUID, retry_at: datetime) -> None:
    await fetch("update invoices set finalize_at = {} where id = {} and status = 'draft'", retry_at, invoice_id)


async def clear_finalize_failure(invoice_id: uuid.UUID) -> None:
    await fetch(
        "update invoices set finalize_error = null, finalize_attempts = 0 where id = {} and finalize_attempts > 0",
        invoice_id,
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


async def resource_tenant(table: str, resource_id: uuid.UUID) -> uuid.UUID | None:
    """Which tenant an id-addressed subscription, invoice or escrow belongs to (system context, for routing only)."""
    if table not in ("subscriptions", "invoices", "escrows"):
        raise ValueError(table)
    rows = await fetch(f"select tenant_id from {table} where id = {{}}", resource_id)
    return rows[0]["tenant_id"] if rows else None


async def has_unpaid_invoices(tenant_id: uuid.UUID) -> bool:
    """Whether the tenant has an invoice still owed or not yet final (a draft, or an amount due)."""
    rows = await fetch(
        "select 1 from invoices where tenant_id = {} and (status = 'draft' "
        "or (status in ('finalized', 'uncollectible') and amount_due_minor > 0)) limit 1",
        tenant_id,
    )
    return bool(rows)


async def tenant_billing_settings(tenant_id: uuid.UUID) -> dict[str, Any]:
    rows = await fetch("select slug, tax_rate_bps, invoice_grace_hours from tenants where id = {}", tenant_id)
    return rows[0]
