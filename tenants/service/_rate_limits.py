"""Staff's override of a tenant's API rate limits.

A tenant's limits are the settings' defaults for each class of route scaled by one integer percentage (100 = the
defaults, 400 = four times, 50 = half). The percentage comes from the tenant's plan (the billing domain) unless
staff set an override here; `billing.service.tenant_rate_limit_percent` resolves which applies. Only staff set
the override (a tenant's own writes cannot name it); every change is audited and published on `RATE_LIMIT_TOPIC`
in its transaction, so the caches of every API process drop the tenant's old percentage when it commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from controlplane.core import invalidation
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.errors import StaffOnly
from controlplane.core.ratelimit.limiter import RATE_LIMIT_TOPIC
from controlplane.core.ratelimit.policy import MAX_PERCENT
from tenants import audit, repository
from tenants.errors import InvalidRateLimitPercent, TenantNotFound
from tenants.status import TenantStatus

# The same bounds as a plan's (billing.limits) and the database's checks.
MIN_RATE_LIMIT_PERCENT = 1
MAX_RATE_LIMIT_PERCENT = MAX_PERCENT


@dataclass(frozen=True, slots=True)
class RateLimitOverrideView:
    """The tenant's override (None: none, its plan's percentage applies)."""

    tenant_id: uuid.UUID
    rate_limit_percent: int | None


async def set_rate_limit_override(
    actor: Principal, tenant_id: uuid.UUID, rate_limit_percent: int | None
) -> RateLimitOverrideView:
    """Staff set (or, with None, remove) the tenant's override. Setting what is already set changes, audits
    and publishes nothing and answers the same."""
    if not actor.is_staff:
        raise StaffOnly("only platform staff set a tenant's rate-limit override")
    if rate_limit_percent is not None and not (MIN_RATE_LIMIT_PERCENT <= rate_limit_percent <= MAX_RATE_LIMIT_PERCENT):
        raise InvalidRateLimitPercent()
    async with tenant_tx(tenant_id):
        before = await repository.get_tenant(tenant_id, lock="update")
        if before is None:
            raise TenantNotFound()
        if before["rate_limit_percent"] != rate_limit_percent:
            await repository.update_tenant(tenant_id, {"rate_limit_percent": rate_limit_percent})
            await invalidation.publish(RATE_LIMIT_TOPIC, tenant_id)
            await audit.record(
                actor,
                tenant_id,
                "tenant.rate_limit_override_set",
                "tenant",
                tenant_id,
                before={"rate_limit_percent": before["rate_limit_percent"]},
                after={"rate_limit_percent": rate_limit_percent},
            )
    return RateLimitOverrideView(tenant_id=tenant_id, rate_limit_percent=rate_limit_percent)


async def rate_limit_override(tenant_id: uuid.UUID) -> int | None:
    """Inside the caller's transaction (billing's resolver, in the tenant's context): staff's override of the
    tenant's rate-limit percentage, or None when there is none. An unknown tenant, or one being erased, has
    none (its people and keys are gone; nothing of it is served)."""
    row = await repository.rate_limit_override(tenant_id)
    if row is None or row["status"] == TenantStatus.PENDING_DELETION:
        return None
    percent: int | None = row["rate_limit_percent"]
    return percent
