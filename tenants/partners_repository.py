"""Queries of partners and their qualification, in the caller's transaction. Knows nothing of HTTP."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

PARTNER_COLUMNS = "id, kind, subtype, name, email, stripe_account_id, created_by, created_at"
CHECKPOINT_COLUMNS = "partner_id, code, status, evidence, submitted_at, approved_at, expires_at, reason, updated_at"


async def insert_partner(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into partners (id, kind, subtype, name, email, created_by) values ({}, {}, {}, {}, {}, {}) "
        f"returning {PARTNER_COLUMNS}",
        values["id"],
        values["kind"],
        values["subtype"],
        values["name"],
        values["email"],
        values["created_by"],
    )
    return rows[0]


async def get_partner(partner_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {PARTNER_COLUMNS} from partners where id = {{}}" + (" for update" if lock else ""), partner_id
    )
    return rows[0] if rows else None


async def set_qualification(partner_id: uuid.UUID, qualified: bool, until: datetime | None) -> None:
    await fetch("update partners set qualified = {}, qualified_until = {} where id = {}", qualified, until, partner_id)


async def set_stripe_account(partner_id: uuid.UUID, account_id: str) -> None:
    await fetch("update partners set stripe_account_id = {} where id = {}", account_id, partner_id)


async def insert_member(partner_id: uuid.UUID, user_id: uuid.UUID, role: str) -> dict[str, Any] | None:
    rows = await fetch(
        "insert into partner_members (partner_id, user_id, role) values ({}, {}, {}) on conflict do nothing "
        "returning partner_id, user_id, role, created_at",
        partner_id,
        user_id,
        role,
    )
    return rows[0] if rows else None


async def member_role(partner_id: uuid.UUID, user_id: uuid.UUID) -> str | None:
    rows = await fetch("select role from partner_members where partner_id = {} and user_id = {}", partner_id, user_id)
    return rows[0]["role"] if rows else None


async def administered_by(user_id: uuid.UUID, role: str, limit: int) -> list[dict[str, Any]]:
    """In the user's context: the partners the user holds `role` in, by name."""
    return await fetch(
        "select p.id, p.kind, p.subtype, p.name, m.role from partner_members m join partners p on p.id = m.partner_id "
        "where m.user_id = {} and m.role = {} order by p.name, p.id limit {}",
        user_id,
        role,
        limit,
    )


async def checkpoints(partner_id: uuid.UUID, *, lock: bool = False) -> list[dict[str, Any]]:
    rows = await fetch(
        f"select {CHECKPOINT_COLUMNS} from partner_checkpoints where partner_id = {{}} order by code"
        + (" for update" if lock else ""),
        partner_id,
    )
    return [{**row, "evidence": json.loads(row["evidence"])} for row in rows]


async def save_checkpoint(partner_id: uuid.UUID, state: dict[str, Any]) -> None:
    await fetch(
        "insert into partner_checkpoints (partner_id, code, status, evidence, submitted_at, approved_at, expires_at, "
        "reason) values ({}, {}, {}, {}::jsonb, {}, {}, {}, {}) on conflict (partner_id, code) do update set "
        "status = excluded.status, evidence = excluded.evidence, submitted_at = excluded.submitted_at, "
        "approved_at = excluded.approved_at, expires_at = excluded.expires_at, reason = excluded.reason, "
        "updated_at = clock_timestamp()",
        partner_id,
        state["code"],
        state["status"],
        json.dumps(state["evidence"]),
        state["submitted_at"],
        state["approved_at"],
        state["expires_at"],
        state["reason"],
    )


async def insert_history(partner_id: uuid.UUID, entry: dict[str, Any]) -> None:
    await fetch(
        "insert into partner_checkpoint_history (partner_id, code, from_status, to_status, actor_type, actor_id, "
        "reason, at) values ({}, {}, {}, {}, {}, {}, {}, {})",
        partner_id,
        entry["code"],
        entry["from_status"],
        entry["to_status"],
        entry["actor_type"],
        entry["actor_id"],
        entry["reason"],
        entry["at"],
    )


async def history(partner_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        "select code, from_status, to_status, actor_type, actor_id, reason, at from partner_checkpoint_history "
        "where partner_id = {} order by id",
        partner_id,
    )


async def pending(code: str | None, page: PageRequest) -> list[dict[str, Any]]:
    """Across partners (system context): submitted checkpoints, oldest first."""
    clause, args = keyset_clause(page, "c.")
    clause = clause.replace("c.created_at", "c.updated_at").replace("c.id", "c.partner_id")
    rows = await fetch(
        "select c.partner_id, c.code, c.evidence, c.submitted_at, c.updated_at, c.updated_at as created_at, "
        "c.partner_id as id, p.kind, p.subtype, p.name from partner_checkpoints c "
        "join partners p on p.id = c.partner_id "
        "where c.status = 'submitted' and ({}::text is null or c.code = {})"
        f"{clause} order by c.updated_at, c.partner_id limit {{}}",
        code,
        code,
        *args,
        page.limit + 1,
    )
    return [{**row, "evidence": json.loads(row["evidence"])} for row in rows]


async def lapsed(now: datetime, limit: int) -> list[dict[str, Any]]:
    """Across partners (system context): approvals whose validity ended, those the expiry never failed on
    first."""
    return await fetch(
        "select partner_id, code from partner_checkpoints where status = 'approved' and expires_at <= {} "
        "order by expiry_attempts, expires_at limit {}",
        now,
        limit,
    )


async def record_expiry_failure(partner_id: uuid.UUID, code: str, reason: str, at: datetime) -> None:
    await fetch(
        "update partner_checkpoints set expiry_error = {}, expiry_attempts = expiry_attempts + 1, "
        "expiry_failed_at = {} where partner_id = {} and code = {}",
        reason,
        at,
        partner_id,
        code,
    )


async def owned_tenants(reseller_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    """In the reseller's context: its tenants and, per currency, what their invoices total and what is paid,
    and their MRR now (the latest of the MRR history, in each currency they have one above zero)."""
    clause, args = keyset_clause(page, "t.")
    rows = await fetch(
        "select t.id, t.name, t.slug, t.status, t.currency, t.created_at, coalesce(("
        "  select jsonb_agg(jsonb_build_object('currency', s.currency, 'invoices', s.invoices, "
        "    'invoiced_minor', s.invoiced, 'paid_minor', s.paid, 'outstanding_minor', s.outstanding)) from ("
        "    select i.currency, count(*) as invoices, sum(i.total_minor) as invoiced, "
        "      sum(i.total_minor) filter (where i.status = 'paid') as paid, sum(i.amount_due_minor) as outstanding "
        "    from invoices i where i.tenant_id = t.id and i.status <> 'draft' and i.status <> 'void' "
        "    group by i.currency) s), '[]'::jsonb) as billing, coalesce(("
        "  select jsonb_agg(jsonb_build_object('currency', m.currency, 'mrr_minor', m.mrr_minor) order by m.currency) "
        "  from (select distinct on (c.currency) c.currency, c.mrr_minor from mrr_changes c "
        "    where c.tenant_id = t.id and c.effective_at <= now() "
        "    order by c.currency, c.effective_at desc, c.id desc) m where m.mrr_minor > 0), '[]'::jsonb) as mrr "
        f"from tenants t where t.reseller_id = {{}}{clause} order by t.created_at, t.id limit {{}}",
        reseller_id,
        *args,
        page.limit + 1,
    )
    return [{**row, "billing": json.loads(row["billing"]), "mrr": json.loads(row["mrr"])} for row in rows]
