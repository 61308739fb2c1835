"""Queries of the tenants domain. They run inside the caller's transaction and know nothing of HTTP.

Row-level security decides which rows a query can see; these queries never filter by tenant for
safety, only for meaning.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from controlplane.core import invalidation
from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

TENANT_COLUMNS = (
    "id, name, slug, status, billing_email, currency, reseller_id, reseller_since, tax_rate_bps, invoice_grace_hours, "
    "created_at, updated_at, erasure_requested_at, billing_suspended_at, staff_suspended_at, rate_limit_percent"
)


async def insert_tenant(values: dict[str, Any]) -> dict[str, Any] | None:
    """The new row, or None when the slug is taken."""
    try:
        rows = await fetch(
            f"insert into tenants (id, name, slug, billing_email, billing_email_key_version, currency, reseller_id, "
            f"reseller_since, tax_rate_bps, invoice_grace_hours) values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, "
            f"case when {{}}::uuid is null then null else now() end, {{}}, {{}}) returning {TENANT_COLUMNS}",
            values["id"],
            values["name"],
            values["slug"],
            values.get("billing_email"),
            values.get("billing_email_key_version"),
            values["currency"],
            values.get("reseller_id"),
            values.get("reseller_id"),
            values.get("tax_rate_bps", 0),
            values.get("invoice_grace_hours", 0),
        )
    except asyncpg.UniqueViolationError:
        return None
    return rows[0]


ROW_LOCKS = {None: "", "share": " for share", "update": " for update"}


async def get_tenant(tenant_id: uuid.UUID, *, lock: str | None = None) -> dict[str, Any] | None:
    rows = await fetch(f"select {TENANT_COLUMNS} from tenants where id = {{}}{ROW_LOCKS[lock]}", tenant_id)
    return rows[0] if rows else None


async def rate_limit_override(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """The tenant's override of the rate-limit percentage and its status (None: no such tenant is visible)."""
    rows = await fetch("select rate_limit_percent, status from tenants where id = {}", tenant_id)
    return rows[0] if rows else None


def _like(text: str) -> str:
    """A LIKE pattern matching `text` anywhere, its own `%`, `_` and `\\` taken literally."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def list_tenants(page: PageRequest, search: str | None = None) -> list[dict[str, Any]]:
    """A page of the tenants the context shows; with `search`, those whose name or slug contains it (any case)."""
    clause, args = keyset_clause(page)
    if search:
        clause = " and (name ilike {} or slug ilike {})" + clause
        args = [_like(search), _like(search), *args]
    return await fetch(
        f"select {TENANT_COLUMNS} from tenants where true{clause} order by created_at, id limit {{}}",
        *args,
        page.limit + 1,
    )


async def active_tenant_ids(created_before: datetime) -> list[uuid.UUID]:
    rows = await fetch("select id from tenants where status = 'active' and created_at < {}", created_before)
    return [row["id"] for row in rows]


async def update_tenant(tenant_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    allowed = {
        "name",
        "billing_email",
        "billing_email_key_version",
        "currency",
        "status",
        "erasure_requested_at",
        "reseller_id",
        "reseller_since",
        "tax_rate_bps",
        "invoice_grace_hours",
        "billing_suspended_at",
        "staff_suspended_at",
        "rate_limit_percent",
    }
    assignments = []
    args: list[Any] = []
    for column, value in changes.items():
        if column not in allowed:
            raise ValueError(f"column {column} cannot be updated")
        assignments.append(f"{column} = {{}}")
        args.append(value)
    assignments.append("updated_at = now()")
    rows = await fetch(
        f"update tenants set {', '.join(assignments)} where id = {{}} returning {TENANT_COLUMNS}",
        *args,
        tenant_id,
    )
    return rows[0]


# Users are platform-wide identities (no tenant_id); their own RLS policies show a tenant context its
# members and a user context that user.

# Published with a user id by every write to a user's status or staff flag: each process keeps the principals
# of active users (`tenants.service._auth`). A trigger publishes it too, for writes made outside this code
# (an operator disabling a user in SQL); the notifications of one transaction that are alike arrive as one.
USER_TOPIC = "user"
USER_COLUMNS = "id, email, password_hash, is_platform_staff, status, session_generation"


async def get_user_by_email(email: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {USER_COLUMNS} from users where email = {{}}" + (" for update" if lock else ""),
        email,
    )
    return rows[0] if rows else None


async def get_user(user_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(f"select {USER_COLUMNS} from users where id = {{}}", user_id)
    return rows[0] if rows else None


async def lock_user(user_id: uuid.UUID) -> None:
    await fetch("select id from users where id = {} for update", user_id)


async def insert_user(
    user_id: uuid.UUID, email: str, password_hash: str | None, is_staff: bool
) -> dict[str, Any] | None:
    """The new row, or None when the email is taken (without aborting the caller's transaction)."""
    rows = await fetch(
        "insert into users (id, email, password_hash, is_platform_staff) values ({}, {}, {}, {}) "
        f"on conflict (email) do nothing returning {USER_COLUMNS}",
        user_id,
        email,
        password_hash,
        is_staff,
    )
    return rows[0] if rows else None


async def set_user_password(user_id: uuid.UUID, password_hash: str, is_staff: bool | None = None) -> int:
    """The user's session generation after the change: a trigger moves it on (their older sessions end)."""
    rows = await fetch(
        "update users set password_hash = {}, is_platform_staff = coalesce({}, is_platform_staff), "
        "updated_at = now() where id = {} returning session_generation",
        password_hash,
        is_staff,
        user_id,
    )
    await invalidation.publish(USER_TOPIC, user_id)
    return int(rows[0]["session_generation"]) if rows else 0


async def end_user_sessions(user_id: uuid.UUID) -> None:
    """Every console session the user started so far ends (see `session_generation`)."""
    await fetch(
        "update users set session_generation = session_generation + 1, updated_at = now() where id = {}", user_id
    )
    await invalidation.publish(USER_TOPIC, user_id)


async def erase_orphaned_users(user_ids: list[uuid.UUID]) -> int:
    """Erase the personal data of users who no longer belong to any tenant and are not staff."""
    rows = await fetch(
        "update users set email = 'erased+' || id::text || '@invalid', password_hash = null, "
        "status = 'erased', updated_at = now() "
        "where id = any({}) and not is_platform_staff "
        "and not exists (select 1 from memberships m where m.user_id = users.id) returning id",
        user_ids,
    )
    for row in rows:
        await invalidation.publish(USER_TOPIC, row["id"])
    return len(rows)


MEMBER_COLUMNS = "m.id, m.tenant_id, m.user_id, u.email, m.role, m.created_at, m.updated_at"


async def insert_membership(tenant_id: uuid.UUID, user_id: uuid.UUID, role: str) -> dict[str, Any] | None:
    try:
        await fetch(
            "insert into memberships (id, tenant_id, user_id, role) values ({}, {}, {}, {})",
            uuid.uuid4(),
            tenant_id,
            user_id,
            role,
        )
    except asyncpg.UniqueViolationError:
        return None
    return await get_membership(tenant_id, user_id)


async def get_membership(tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {MEMBER_COLUMNS} from memberships m join users u on u.id = m.user_id "
        "where m.tenant_id = {} and m.user_id = {}",
        tenant_id,
        user_id,
    )
    return rows[0] if rows else None


async def list_memberships(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page, alias="m.")
    return await fetch(
        f"select {MEMBER_COLUMNS} from memberships m join users u on u.id = m.user_id "
        f"where m.tenant_id = {{}}{clause} order by m.created_at, m.id limit {{}}",
        tenant_id,
        *args,
        page.limit + 1,
    )


async def update_membership_role(tenant_id: uuid.UUID, user_id: uuid.UUID, role: str) -> None:
    await fetch(
        "update memberships set role = {}, updated_at = now() where tenant_id = {} and user_id = {}",
        role,
        tenant_id,
        user_id,
    )


async def delete_membership(tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    await fetch("delete from memberships where tenant_id = {} and user_id = {}", tenant_id, user_id)


async def delete_all_memberships(tenant_id: uuid.UUID) -> list[uuid.UUID]:
    rows = await fetch("delete from memberships where tenant_id = {} returning user_id", tenant_id)
    return [row["user_id"] for row in rows]


async def count_admins(tenant_id: uuid.UUID) -> int:
    rows = await fetch(
        "select count(*) as n from memberships where tenant_id = {} and role = 'tenant_admin'", tenant_id
    )
    return int(rows[0]["n"])


async def memberships_of_user(user_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch("select tenant_id, role from memberships where user_id = {}", user_id)


API_KEY_COLUMNS = "id, tenant_id, name, role, created_by, created_at, last_used_at, revoked_at"


async def insert_api_key(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into api_keys (id, tenant_id, name, role, secret_hash, created_by) "
        f"values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}) returning {API_KEY_COLUMNS}",
        values["id"],
        values["tenant_id"],
        values["name"],
        values["role"],
        values["secret_hash"],
        values["created_by"],
    )
    return rows[0]


async def get_api_key(key_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(f"select {API_KEY_COLUMNS}, secret_hash from api_keys where id = {{}}", key_id)
    return rows[0] if rows else None


async def list_api_keys(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {API_KEY_COLUMNS} from api_keys where tenant_id = {{}}{clause} order by created_at, id limit {{}}",
        tenant_id,
        *args,
        page.limit + 1,
    )


async def revoke_api_key(key_id: uuid.UUID) -> dict[str, Any] | None:
    """The key, if this call revoked it; None when it was already revoked or does not exist."""
    rows = await fetch(
        f"update api_keys set revoked_at = now() where id = {{}} and revoked_at is null returning {API_KEY_COLUMNS}",
        key_id,
    )
    return rows[0] if rows else None


async def revoke_all_api_keys(tenant_id: uuid.UUID) -> None:
    await fetch("update api_keys set revoked_at = now() where tenant_id = {} and revoked_at is null", tenant_id)


async def revoke_api_keys_created_by(tenant_id: uuid.UUID, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Revoke the tenant's live keys that `user_id` created; the ids of those this call revoked."""
    rows = await fetch(
        "update api_keys set revoked_at = now() where tenant_id = {} and created_by = {} and revoked_at is null "
        "returning id",
        tenant_id,
        user_id,
    )
    return sorted(row["id"] for row in rows)


async def touch_api_key(key_id: uuid.UUID) -> None:
    # At most once a minute per key, so machine traffic does not turn every read into a write.
    await fetch(
        "update api_keys set last_used_at = now() where id = {} "
        "and (last_used_at is null or last_used_at < now() - interval '1 minute')",
        key_id,
    )


async def insert_audit_event(values: dict[str, Any]) -> None:
    await fetch(
        "insert into audit_events (id, tenant_id, actor_type, actor_id, action, target_type, target_id, "
        "before, after, request_id) values ({}, {}, {}, {}, {}, {}, {}, {}::jsonb, {}::jsonb, {})",
        uuid.uuid4(),
        values["tenant_id"],
        values["actor_type"],
        values["actor_id"],
        values["action"],
        values["target_type"],
        values["target_id"],
        json.dumps(values["before"], default=str) if values["before"] is not None else None,
        json.dumps(values["after"], default=str) if values["after"] is not None else None,
        values["request_id"],
    )


async def list_audit_events(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        "select id, tenant_id, actor_type, actor_id, action, target_type, target_id, before, after, "
        f"request_id, created_at from audit_events where tenant_id = {{}}{clause} "
        "order by created_at, id limit {}",
        tenant_id,
        *args,
        page.limit + 1,
    )


# Reads with no tenant filter at all, for exports: what they return is exactly what RLS lets through.


async def visible_tenants() -> list[dict[str, Any]]:
    return await fetch(f"select {TENANT_COLUMNS} from tenants order by created_at, id")


async def visible_members() -> list[dict[str, Any]]:
    return await fetch(
        f"select {MEMBER_COLUMNS} from memberships m join users u on u.id = m.user_id order by m.created_at"
    )


async def visible_api_keys() -> list[dict[str, Any]]:
    return await fetch(f"select {API_KEY_COLUMNS} from api_keys order by created_at, id")


async def count_visible_audit_events() -> int:
    rows = await fetch("select count(*) as n from audit_events")
    return int(rows[0]["n"])


# -- webhook endpoints --------------------------------------------------------------------------------------


async def webhook_endpoint(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        "select tenant_id, url, created_at, updated_at from tenant_webhook_endpoints where tenant_id = {}", tenant_id
    )
    return rows[0] if rows else None


async def put_webhook_endpoint(tenant_id: uuid.UUID, url: str) -> dict[str, Any]:
    rows = await fetch(
        "insert into tenant_webhook_endpoints (tenant_id, url) values ({}, {}) on conflict (tenant_id) do update "
        "set url = excluded.url, updated_at = clock_timestamp() returning tenant_id, url, created_at, updated_at",
        tenant_id,
        url,
    )
    return rows[0]


async def delete_webhook_endpoint(tenant_id: uuid.UUID) -> bool:
    return bool(await fetch("delete from tenant_webhook_endpoints where tenant_id = {} returning tenant_id", tenant_id))
