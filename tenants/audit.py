"""Audit events: every state change records who did what to which target, before and after.

Summaries hold ids, statuses and roles, never personal data, so an erasure does not have to rewrite
the (append-only) audit trail.
"""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.core import context
from controlplane.core.auth.principal import Principal
from tenants import repository


async def record(
    actor: Principal | None,
    tenant_id: uuid.UUID,
    action: str,
    target_type: str,
    target_id: uuid.UUID | str,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    """Write one audit event inside the caller's transaction, so it commits with the change."""
    await repository.insert_audit_event(
        {
            "tenant_id": tenant_id,
            "actor_type": actor.kind if actor else "system",
            "actor_id": actor.id if actor else None,
            "action": action,
            "target_type": target_type,
            "target_id": str(target_id),
            "before": before,
            "after": after,
            "request_id": context.request_id.get(),
        }
    )


def tenant_summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "slug": row["slug"],
        "status": row["status"],
        "currency": row["currency"],
        "reseller_id": str(row["reseller_id"]) if row["reseller_id"] else None,
    }
