"""Which percentage of the default API rate limits a tenant gets (the composition root's limiter asks).

Staff's override on the tenant (tenants domain) wins; else the plan of the tenant's live subscription (trialing,
active, past_due or paused: not canceled, as everywhere in billing); else the defaults (100). A change to any of
them is published on `tenants.service.RATE_LIMIT_TOPIC` with the tenant id, in the changing transaction (the
override by the tenants domain, a subscription's plan or status by `billing.subscriptions.repository`).
"""

from __future__ import annotations

import uuid

from billing import limits
from billing.subscriptions import repository
from controlplane.core.db import tenant_tx
from tenants import service as tenants


async def tenant_rate_limit_percent(tenant_id: uuid.UUID) -> int:
    """The tenant's rate-limit percentage (100 = the defaults), in its own `tenant_tx`: call it outside any
    transaction. An unknown tenant, or one being erased (its override ignored, its subscription ended), gets
    100; never raises for one."""
    async with tenant_tx(tenant_id):
        override = await tenants.rate_limit_override(tenant_id)
        if override is not None:
            return override
        plan_percent = await repository.live_plan_rate_limit_percent(tenant_id)
    return plan_percent if plan_percent is not None else limits.DEFAULT_RATE_LIMIT_PERCENT
