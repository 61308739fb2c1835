"""Queries of the notification outbox. Knows SQL, nothing of HTTP or SMTP."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
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
        "on conflict (event_type, event_key, recipient) do nothing returning id",
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
