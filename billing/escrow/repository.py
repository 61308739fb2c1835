"""Queries of escrow agreements and their milestones. Inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from billing.escrow.rules import AUTO_ACCEPT_RETRY_HOURS, MAX_AUTO_ACCEPT_ATTEMPTS
from controlplane.core.db import fetch

ESCROW_COLUMNS = (
    "id, tenant_id, payee_type, payee_id, currency, amount_minor, inspection_days, status, funding_attempts, "
    "funding_key, stripe_payment_intent_id, funding_decline_code, funded_at, created_at, updated_at"
)
MILESTONE_COLUMNS = (
    "id, escrow_id, position, title, amount_minor, due_at, status, released_minor, refunded_minor, reason, "
    "submitted_at, updated_at, auto_accept_attempts, auto_accept_error"
)
WRITABLE_ESCROW = {
    "status",
    "funding_attempts",
    "funding_key",
    "stripe_payment_intent_id",
    "funding_decline_code",
    "funded_at",
}
WRITABLE_MILESTONE = {"status", "released_minor", "refunded_minor", "reason", "submitted_at"}


async def insert_escrow(values: dict[str, Any], milestones: Sequence[dict[str, Any]]) -> None:
    await fetch(
        "insert into escrows (id, tenant_id, payee_type, payee_id, currency, amount_minor, inspection_days, status) "
        "values ({}, {}, {}, {}, {}, {}, {}, 'draft')",
        values["id"],
        values["tenant_id"],
        values["payee_type"],
        values["payee_id"],
        values["currency"],
        values["amount_minor"],
        values["inspection_days"],
    )
    await fetch(
        "insert into escrow_milestones (id, tenant_id, escrow_id, position, title, amount_minor, due_at, status) "
        "select gen_random_uuid(), {}, {}, ordinality, t, a, d, 'pending' "
        "from unnest({}::text[], {}::bigint[], {}::timestamptz[]) with ordinality as m(t, a, d)",
        values["tenant_id"],
        values["id"],
        [m["title"] for m in milestones],
        [m["amount_minor"] for m in milestones],
        [m.get("due_at") for m in milestones],
    )


async def get_escrow(escrow_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {ESCROW_COLUMNS} from escrows where id = {{}}{' for update' if lock else ''}", escrow_id
    )
    return rows[0] if rows else None


async def milestones_of(escrow_id: uuid.UUID, *, lock: bool = False) -> list[dict[str, Any]]:
    return await fetch(
        f"select {MILESTONE_COLUMNS} from escrow_milestones where escrow_id = {{}} order by position"
        f"{' for update' if lock else ''}",
        escrow_id,
    )


async def update_escrow(escrow_id: uuid.UUID, changes: dict[str, Any]) -> None:
    if set(changes) - WRITABLE_ESCROW:
        raise ValueError(f"columns {sorted(set(changes) - WRITABLE_ESCROW)} cannot be updated")
    assignments = [f"{column} = {{}}" for column in changes] + ["updated_at = clock_timestamp()"]
    await fetch(f"update escrows set {', '.join(assignments)} where id = {{}}", *changes.values(), escrow_id)


async def update_milestone(milestone_id: uuid.UUID, changes: dict[str, Any]) -> None:
    if set(changes) - WRITABLE_MILESTONE:
        raise ValueError(f"columns {sorted(set(changes) - WRITABLE_MILESTONE)} cannot be updated")
    assignments = [f"{column} = {{}}" for column in changes] + ["updated_at = clock_timestamp()"]
    await fetch(
        f"update escrow_milestones set {', '.join(assignments)} where id = {{}}", *changes.values(), milestone_id
    )


async def overdue_submissions(now: datetime, limit: int) -> list[dict[str, Any]]:
    """Across tenants (system context): submitted milestones whose inspection window has passed; one whose
    release failed comes back after its back-off (AUTO_ACCEPT_RETRY_HOURS), behind fresh ones, at most
    MAX_AUTO_ACCEPT_ATTEMPTS times."""
    return await fetch(
        "select m.id, m.escrow_id, e.tenant_id from escrow_milestones m join escrows e on e.id = m.escrow_id "
        "where m.status = 'submitted' and m.submitted_at + make_interval(days => e.inspection_days) <= {} "
        "and m.auto_accept_attempts < {} and (m.auto_accept_failed_at is null or m.auto_accept_failed_at "
        "+ make_interval(hours => coalesce(({}::int[])[m.auto_accept_attempts], 24)) <= {}) "
        "order by m.auto_accept_attempts, m.submitted_at limit {}",
        now,
        MAX_AUTO_ACCEPT_ATTEMPTS,
        list(AUTO_ACCEPT_RETRY_HOURS),
        now,
        limit,
    )


async def record_auto_accept_failure(milestone_id: uuid.UUID, error: str) -> None:
    """Inside the milestone's tenant transaction: one more failed auto-accept, with its error."""
    await fetch(
        "update escrow_milestones set auto_accept_attempts = auto_accept_attempts + 1, auto_accept_error = {}, "
        "auto_accept_failed_at = clock_timestamp(), updated_at = clock_timestamp() "
        "where id = {} and status = 'submitted'",
        error[:500],
        milestone_id,
    )


async def held_differences() -> list[dict[str, Any]]:
    """Escrows whose held account disagrees with funded - released - refunded on their milestones."""
    return await fetch(
        "with booked as ("
        " select substr(account, 13)::uuid as escrow_id, -sum(amount_minor) as held from ledger_postings"
        " where account like 'escrow_held:%' group by account"
        "), documents as ("
        " select e.id as escrow_id,"
        " case when e.status in ('funded', 'closed', 'canceled') and e.funded_at is not null"
        " then e.amount_minor - coalesce(sum(m.released_minor + m.refunded_minor), 0) else 0 end as held"
        " from escrows e left join escrow_milestones m on m.escrow_id = e.id group by e.id"
        ") select coalesce(b.escrow_id, d.escrow_id) as escrow_id, coalesce(b.held, 0) as ledger,"
        " coalesce(d.held, 0) as documents from booked b full join documents d on d.escrow_id = b.escrow_id"
        " where coalesce(b.held, 0) <> coalesce(d.held, 0)"
    )


async def payee_postings_without_release() -> list[dict[str, Any]]:
    """Postings into a payee's payable balance whose journal is neither a milestone release nor a payout
    taking it out (there must be none)."""
    return await fetch(
        "select p.id, j.source_type from ledger_postings p join ledger_journals j on j.id = p.journal_id "
        "where p.account like 'payee_payable:%' and j.source_type not in ('escrow_release', 'payout')"
    )
