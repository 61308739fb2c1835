"""Proration items waiting for an invoice, and credit notes."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Sequence
from typing import Any

from billing.rating import Line
from controlplane.core.db import fetch


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


CREDIT_NOTE_COLUMNS = "id, tenant_id, invoice_id, number, amount_minor, currency, reason, taxes, created_at"


async def credit_note_count(invoice_id: uuid.UUID) -> int:
    rows = await fetch("select count(*) as notes from credit_notes where invoice_id = {}", invoice_id)
    return int(rows[0]["notes"])


async def insert_credit_note(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into credit_notes (id, tenant_id, invoice_id, number, amount_minor, currency, reason, taxes) "
        f"values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}::jsonb) returning {CREDIT_NOTE_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["invoice_id"],
        values["number"],
        values["amount_minor"],
        values["currency"],
        values["reason"],
        json.dumps([dataclasses.asdict(tax) for tax in values.get("taxes", ())]),
    )
    return rows[0]


async def credit_notes_of(invoice_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {CREDIT_NOTE_COLUMNS} from credit_notes where invoice_id = {{}} order by created_at, id",
        invoice_id,
    )
