"""Queries of the notification outbox. Knows SQL, nothing of HTTP or SMTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch
from tenants.roles import Role


async def tenant_recipients(tenant_id: uuid.UUID) -> tuple[bool, list[uuid.UUID]]:
    """Whether the tenant has a billing contact, and its admins' user ids (oldest membership first)."""
    contact = await fetch("select billing_email is not null as has from tenants where id = {}", tenant_id)
    admins = await fetch(
        "select user_id from memberships where tenant_id = {} and role = {} order by created_at, user_id",
        tenant_id,
        Role.TENANT_ADMIN.value,
    )
    return bool(contact and contact[0]["has"]), [row["user_id"] for row in admins]


async def partner_admins(partner_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await fetch(
        "select user_id from partner_members where partner_id = {} and role = {} order by created_at, user_id",
        partner_id,
        Role.RESELLER_ADMIN.value,
    )
    return [row["user_id"] for row in rows]


async def queue(
    *,
    tenant_id: uuid.UUID | None,
    partner_id: uuid.UUID | None,
    event_type: str,
    event_key: str,
    recipients: Sequence[tuple[str, uuid.UUID | None]],
    data: Mapping[str, Any],
    attachment_id: uuid.UUID | None,
) -> int:
    """One row per recipient; a recipient already queued for this event keeps its row. Answers how many
    rows are new."""
    if not recipients:
        return 0
    rows = await fetch(
        "insert into notifications (tenant_id, partner_id, event_type, event_key, recipient, user_id, data, "
        "attachment_id) select {}, {}, {}, {}, r.recipient, r.user_id, {}::jsonb, {} "
        "from unnest({}::text[], {}::uuid[]) as r(recipient, user_id) "
        "on conflict (tenant_id, partner_id, event_type, event_key, recipient) do nothing returning id",
        tenant_id,
        partner_id,
        event_type,
        event_key,
        json.dumps(data, default=str, sort_keys=True),
        attachment_id,
        [recipient for recipient, _user in recipients],
        [user for _recipient, user in recipients],
    )
    return len(rows)


# The sender's side (tenants/notifications/sender.py): claims, look-ups at send time, outcomes.

# Every claimer takes this lock first, so two claims never split one event's rows between them (which would
# hide from each that the other is sending the same address the same event).
_CLAIM_LOCK = "select pg_advisory_xact_lock(hashtext('notifications.claim'))"
_DUE = "status = 'pending' and (next_attempt_at is null or next_attempt_at <= now())"
OUTBOX_COLUMNS = (
    "id, tenant_id, partner_id, event_type, event_key, recipient, user_id, data, attachment_id, status, attempts, "
    "next_attempt_at, last_error, sent_at, failed_at, created_at"
)


async def abandon_exhausted(max_attempts: int) -> list[str]:
    """Inside a system transaction: due rows already taken `max_attempts` times or more are `failed`
    (`abandoned`). Only a pass that died with the row leased leaves one so (a recorded failure after the last
    attempt fails it): a row whose processing kills the worker is given up rather than taken every lease
    forever. Answers their event types (for the metric)."""
    rows = await fetch(
        f"update notifications set status = 'failed', last_error = 'abandoned', failed_at = now(), "
        f"next_attempt_at = null where {_DUE} and attempts >= {{}} returning event_type",
        max_attempts,
    )
    return [row["event_type"] for row in rows]


# The ids of the rows of the events in `e` (tenant_id, partner_id, event_type, event_key): the same type and key
# within the same tenant or partner (keys are unique only there). One branch per owner, so each reads the unique
# index (tenant_id, partner_id, event_type, event_key, recipient) by all four columns.
_ROWS_OF_EVENTS = (
    "select n.id from e join notifications n on n.tenant_id = e.tenant_id and n.partner_id is null "
    "and n.event_type = e.event_type and n.event_key = e.event_key "
    "union all select n.id from e join notifications n on n.tenant_id is null and n.partner_id = e.partner_id "
    "and n.event_type = e.event_type and n.event_key = e.event_key"
)


async def claim_due(batch: int, lease_seconds: int, most: int) -> list[dict[str, Any]]:
    """Inside a system transaction: up to `batch` due rows, with the other due rows of the same events (up to
    `most` rows in all, so a pass stays bounded however many admins an event has), each with an attempt counted
    and a lease (next_attempt_at pushed past it) so no other pass takes them meanwhile. A pass that dies gives
    its rows back when the lease ends."""
    await fetch(_CLAIM_LOCK)
    rows = await fetch(
        f"with due as (select tenant_id, partner_id, event_type, event_key from notifications where {_DUE} "
        "order by next_attempt_at nulls first, id limit {}), "
        "e as (select distinct tenant_id, partner_id, event_type, event_key from due), "
        f"claimed as (select n.id from notifications n where n.id in ({_ROWS_OF_EVENTS}) "
        "and n.status = 'pending' and (n.next_attempt_at is null or n.next_attempt_at <= now()) "
        "order by n.id limit {} for update of n skip locked) "
        "update notifications n set attempts = n.attempts + 1, "
        "next_attempt_at = now() + make_interval(secs => {}) from claimed c where n.id = c.id "
        f"returning {', '.join('n.' + column.strip() for column in OUTBOX_COLUMNS.split(','))}",
        batch,
        most,
        lease_seconds,
    )
    for row in rows:
        if isinstance(row["data"], str):
            row["data"] = json.loads(row["data"])
    return sorted(rows, key=lambda row: row["id"])


EventOf = tuple[uuid.UUID | None, uuid.UUID | None, str, str]  # tenant_id, partner_id, event_type, event_key


async def sent_siblings(events: Sequence[EventOf]) -> list[dict[str, Any]]:
    """Rows already sent for these events (tenant id, partner id, type, key): id and the same four."""
    if not events:
        return []
    return await fetch(
        "with e as (select * from unnest({}::uuid[], {}::uuid[], {}::text[], {}::text[]) "
        "as e(tenant_id, partner_id, event_type, event_key)) "
        "select n.id, n.tenant_id, n.partner_id, n.event_type, n.event_key from notifications n "
        f"where n.id in ({_ROWS_OF_EVENTS}) and n.status = 'sent'",
        [tenant for tenant, _partner, _event, _key in events],
        [partner for _tenant, partner, _event, _key in events],
        [event for _tenant, _partner, event, _key in events],
        [key for _tenant, _partner, _event, key in events],
    )


async def oldest_pending_seconds() -> float:
    """Across tenants and partners (system context): how long the oldest pending row has waited since it was
    queued (0 with none pending)."""
    rows = await fetch(
        "select coalesce(extract(epoch from now() - min(created_at)), 0)::float8 as age "
        "from notifications where status = 'pending'"
    )
    return float(rows[0]["age"])


async def recipients_of(ids: Sequence[int]) -> list[dict[str, Any]]:
    """For each row: its recipient as it stands now. A member's address, account status and whether it is still
    an admin where the row was queued; the tenant's sealed billing email; the tenant's or partner's name."""
    if not ids:
        return []
    return await fetch(
        "select n.id, n.tenant_id, n.partner_id, n.recipient, u.email as user_email, u.status as user_status, "
        "case when n.user_id is null then false "
        "when n.tenant_id is not null then exists (select 1 from memberships m where m.tenant_id = n.tenant_id "
        "and m.user_id = n.user_id and m.role = {}) "
        "else exists (select 1 from partner_members pm where pm.partner_id = n.partner_id "
        "and pm.user_id = n.user_id and pm.role = {}) end as is_admin, "
        "t.name as tenant_name, t.billing_email, p.name as partner_name "
        "from notifications n left join users u on u.id = n.user_id left join tenants t on t.id = n.tenant_id "
        "left join partners p on p.id = n.partner_id where n.id = any({}::bigint[])",
        Role.TENANT_ADMIN.value,
        Role.RESELLER_ADMIN.value,
        list(ids),
    )


async def record_outcome(
    notification_id: int,
    attempts: int,
    *,
    status: str,
    error: str | None = None,
    retry_in_seconds: int | None = None,
) -> bool:
    """Write one attempt's outcome: `sent`, `pending` (tried again in `retry_in_seconds`), `failed` or `skipped`.
    Only while the attempt's lease holds (the row is still pending at `attempts`): a pass whose lease ran out and
    whose row another pass took again writes nothing. Answers whether it wrote."""
    rows = await fetch(
        "update notifications set status = {}, last_error = {}, "
        "sent_at = case when {} = 'sent' then now() end, failed_at = case when {} = 'failed' then now() end, "
        "next_attempt_at = case when {}::int is null then null else now() + make_interval(secs => {}::int) end "
        "where id = {} and status = 'pending' and attempts = {} returning id",
        status,
        error,
        status,
        status,
        retry_in_seconds,
        retry_in_seconds,
        notification_id,
        attempts,
    )
    return bool(rows)


async def release(claims: Sequence[tuple[int, int]]) -> None:
    """Give claimed rows back unattempted, each (id, attempts as claimed): an outage stopped the pass before
    them, so the attempt is not counted and they are due again at once."""
    if claims:
        await fetch(
            "update notifications n set attempts = n.attempts - 1, next_attempt_at = now() "
            "from unnest({}::bigint[], {}::int[]) as c(id, attempts) "
            "where n.id = c.id and n.attempts = c.attempts and n.status = 'pending'",
            [notification_id for notification_id, _attempts in claims],
            [attempts for _id, attempts in claims],
        )


async def purge_finished(before: datetime, limit: int) -> int:
    """Across tenants and partners (system context): delete up to `limit` rows made before `before` that are done
    with (sent, failed or skipped), oldest first; answers how many went. Pending rows stay, however old."""
    rows = await fetch(
        "with gone as (delete from notifications where id in (select id from notifications "
        "where created_at < {} and status in ('sent', 'failed', 'skipped') order by id limit {}) returning 1) "
        "select count(*) as n from gone",
        before,
        limit,
    )
    return int(rows[0]["n"])


async def outbox_page(
    *,
    tenant_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    status: str | None,
    before_id: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    """A tenant's (or partner's) rows, newest first, `limit` of them after the cursor (`before_id`)."""
    owner, owner_id = ("tenant_id", tenant_id) if tenant_id is not None else ("partner_id", partner_id)
    clauses: list[str] = [f"{owner} = {{}}"]
    args: list[Any] = [owner_id]
    if status is not None:
        clauses.append("status = {}")
        args.append(status)
    if before_id is not None:
        clauses.append("id < {}")
        args.append(before_id)
    return await fetch(
        f"select {OUTBOX_COLUMNS} from notifications where {' and '.join(clauses)} order by id desc limit {{}}",
        *args,
        limit,
    )
