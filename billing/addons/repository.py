"""Queries of subscription add-ons. They run inside the caller's tenant transaction."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch

ADDON_COLUMNS = (
    "id, tenant_id, subscription_id, source_id, name, charge, currency, quantity, billable_from, ended_at, created_at, "
    "period_end, period_base_quantity, period_paid_quantity"
)


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    if isinstance(row.get("charge"), str):
        row["charge"] = json.loads(row["charge"])
    return row


async def insert_addon(values: dict[str, Any]) -> uuid.UUID | None:
    """The new add-on's id; None when an add-on with this `source_id` exists (nothing is written)."""
    rows = await fetch(
        "insert into subscription_addons (id, tenant_id, subscription_id, source_id, name, charge, currency, "
        "quantity, billable_from) values ({}, {}, {}, {}, {}, {}::jsonb, {}, {}, {}) "
        "on conflict (source_id) do nothing returning id",
        values["id"],
        values["tenant_id"],
        values["subscription_id"],
        values["source_id"],
        values["name"],
        json.dumps(values["charge"]),
        values["currency"],
        values["quantity"],
        values["billable_from"],
    )
    return rows[0]["id"] if rows else None


async def addon_by_source(tenant_id: uuid.UUID, source_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {ADDON_COLUMNS} from subscription_addons where tenant_id = {{}} and source_id = {{}}",
        tenant_id,
        source_id,
    )
    return _decoded(rows[0]) if rows else None


async def set_quantity(
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    quantity: int,
    period_end: datetime | None,
    period_base_quantity: int | None,
    period_paid_quantity: int | None,
) -> bool:
    rows = await fetch(
        "update subscription_addons set quantity = {}, period_end = {}, period_base_quantity = {}, "
        "period_paid_quantity = {} where tenant_id = {} and source_id = {} returning id",
        quantity,
        period_end,
        period_base_quantity,
        period_paid_quantity,
        tenant_id,
        source_id,
    )
    return bool(rows)


async def end_addon(tenant_id: uuid.UUID, source_id: uuid.UUID, at: datetime) -> datetime | None:
    """The add-on's end (the first one stands); None when there is no such add-on."""
    rows = await fetch(
        "update subscription_addons set ended_at = coalesce(ended_at, {}) where tenant_id = {} and source_id = {} "
        "returning ended_at",
        at,
        tenant_id,
        source_id,
    )
    return rows[0]["ended_at"] if rows else None


async def billable_addons(tenant_id: uuid.UUID, subscription_id: uuid.UUID, since: datetime) -> list[dict[str, Any]]:
    """The subscription's add-ons not ended by `since` (the start of the first period still to bill), oldest
    first; one indexed query, empty for the many subscriptions without add-ons."""
    rows = await fetch(
        f"select {ADDON_COLUMNS} from subscription_addons "
        "where subscription_id = {} and tenant_id = {} and (ended_at is null or ended_at > {}) "
        "order by created_at, id",
        subscription_id,
        tenant_id,
        since,
    )
    return [_decoded(row) for row in rows]


def billable_charges_query(tenant_id: uuid.UUID, subscription_id: uuid.UUID, since: datetime) -> tuple[str, list[Any]]:
    """A scalar subquery (`{}` placeholders, and its values): the charges of the add-ons `billable_addons` selects,
    as a JSON array, oldest first, for a statement that reads them together with something else."""
    return (
        "(select coalesce(json_agg(charge order by created_at, id), '[]'::json) from subscription_addons"
        " where subscription_id = {} and tenant_id = {} and (ended_at is null or ended_at > {}))",
        [subscription_id, tenant_id, since],
    )


def charges_of(document: str | list[Any]) -> list[dict[str, Any]]:
    """The charges `billable_charges_query` read (asyncpg hands JSON over as text)."""
    found: list[dict[str, Any]] = json.loads(document) if isinstance(document, str) else document
    return found


async def end_all_addons(tenant_id: uuid.UUID, at: datetime) -> list[dict[str, Any]]:
    """Every add-on of the tenant still running ends at `at` (the tenant's erasure); the ones ended now."""
    return await fetch(
        "update subscription_addons set ended_at = {} where tenant_id = {} and ended_at is null "
        "returning id, subscription_id, ended_at",
        at,
        tenant_id,
    )
