"""HTTP for a tenant's rate limits: the budgets in force for its keys and members, and what is left of them."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, get
from msgspec import Struct

from controlplane.core.ratelimit.limiter import RateLimiter
from controlplane.core.web import BEARER, TenantId
from tenants.api.guards import allow
from tenants.roles import Permission


class ClassLimitRead(Struct):
    limit_class: str  # ingestion (in events), entitlements, reads, writes
    per_second: float  # the tenant's budget: every key and member together
    burst: int
    remaining: int  # what the tenant may spend at once now
    reset_seconds: float  # until its bucket is full again
    api_key_per_second: float  # each of its API keys' own budget
    api_key_burst: int


class TenantLimitsRead(Struct):
    tenant_id: uuid.UUID
    enabled: bool
    # The defaults scaled by this: the staff override if set, else the plan's (100 = the defaults).
    rate_limit_percent: int
    limits: list[ClassLimitRead]


class TenantLimitsController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/limits"
    tags = ["tenants"]
    security = BEARER

    @get("/", **allow(Permission.READ_TENANT))
    async def get_limits(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> TenantLimitsRead:
        limiter: RateLimiter = request.app.state.rate_limiter
        percent, views = await limiter.tenant_view(tenant_id)
        return TenantLimitsRead(
            tenant_id=tenant_id,
            enabled=limiter.enabled,
            rate_limit_percent=percent,
            limits=[
                ClassLimitRead(
                    limit_class=view.limit_class.value,
                    per_second=view.per_second,
                    burst=view.burst,
                    remaining=view.remaining,
                    reset_seconds=view.reset_seconds,
                    api_key_per_second=view.api_key_per_second,
                    api_key_burst=view.api_key_burst,
                )
                for view in views
            ],
        )
