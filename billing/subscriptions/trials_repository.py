"""Trials used and granted. "Once" is decided by two partial unique indexes, so these never check-then-write."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch

TRIAL_COLUMNS = "id, tenant_id, kind, subject, granted_by, granted_at, used_by, used_at, created_at"


async def use_own_trial(tenant_id: uuid.UUID, kind: str, subject: str, used_by: uuid.UUID, at: datetime) -> bool:
    """Record the tenant's own trial of `subject` as used; False when it was used before (or is being used by
    a concurrent transaction, which then wins once it commits)."""
    rows = await fetch(
        "insert into trials (id, tenant_id, kind, subject, used_by, used_at) values ({}, {}, {}, {}, {}, {}) "
        "on conflict (tenant_id, kind, subject) where granted_by is null do nothing returning id",
        uuid.uuid4(),
        tenant_id,
        kind,
        subject,
        used_by,
        at,
    )
    return bool(rows)


async def use_granted_trial(tenant_id: uuid.UUID, kind: str, subject: str, used_by: uuid.UUID, at: datetime) -> bool:
    """Use the open staff grant, if any. A concurrent use waits for this row and then finds it used."""
    rows = await fetch(
        "update trials set used_by = {}, used_at = {} where tenant_id = {} and kind = {} and subject = {} "
        "and granted_by is not null and used_at is null returning id",
        used_by,
        at,
        tenant_id,
        kind,
        subject,
    )
    return bool(rows)


async def insert_grant(
    tenant_id: uuid.UUID, kind: str, subject: str, granted_by: uuid.UUID, at: datetime
) -> dict[str, Any] | None:
    """A new open grant; None when one is open already (nothing is written)."""
    rows = await fetch(
        f"insert into trials (id, tenant_id, kind, subject, granted_by, granted_at) values ({{}}, {{}}, {{}}, {{}}, "
        "{}, {}) on conflict (tenant_id, kind, subject) where granted_by is not null and used_at is null "
        f"do nothing returning {TRIAL_COLUMNS}",
        uuid.uuid4(),
        tenant_id,
        kind,
        subject,
        granted_by,
        at,
    )
    return rows[0] if rows else None


async def open_grant(tenant_id: uuid.UUID, kind: str, subject: str) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {TRIAL_COLUMNS} from trials where tenant_id = {{}} and kind = {{}} and subject = {{}} "
        "and granted_by is not null and used_at is null",
        tenant_id,
        kind,
        subject,
    )
    return rows[0] if rows else None
