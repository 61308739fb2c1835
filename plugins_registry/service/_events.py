"""One lifecycle step = an audit event, a webhook event for the tenant's endpoint (the tenants webhook outbox),
and fresh entitlement answers."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.core import invalidation
from controlplane.core.auth.principal import Principal
from tenants import audit, webhook_outbox

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
    # No key: every lifecycle step is an event of its own. Queued only while the tenant has an endpoint (the one
    # rule of the webhook outbox: an event goes to the endpoint set when it happens).
    await webhook_outbox.enqueue(tenant_id, event_type, {"tenant_id": str(tenant_id), **payload})
    await audit.record(actor, tenant_id, event_type, target_type, target_id, after=payload)
    await invalidation.publish(ENTITLEMENTS_TOPIC, tenant_id)
