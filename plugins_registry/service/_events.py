"""One lifecycle step = an audit event, an outbox event for delivery, and fresh entitlement answers."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.core import invalidation
from controlplane.core.auth.principal import Principal
from plugins_registry import repository
from tenants import audit

ENTITLEMENTS_TOPIC = "entitlements"


async def record(
    actor: Principal | None,
    tenant_id: uuid.UUID,
    event_type: str,
    target_type: str,
    target_id: uuid.UUID,
    payload: dict[str, Any],
) -> None:
    """Inside the change's tenant transaction, so all three commit (or vanish) with it."""
    await repository.insert_outbox_event(tenant_id, event_type, {"tenant_id": str(tenant_id), **payload})
    await audit.record(actor, tenant_id, event_type, target_type, target_id, after=payload)
    await invalidation.publish(ENTITLEMENTS_TOPIC, tenant_id)
