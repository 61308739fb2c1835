"""HTTP for subscriptions."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import JSONBody
from msgspec import UNSET

from billing import service
from billing.api.controllers._shared import ById, SubscriptionId
from billing.api.schemas import (
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionCreate,
    SubscriptionPage,
    SubscriptionRead,
)
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, IDEMPOTENCY_ERRORS, Cursor, Limit, TenantId, idempotent_post, to_struct
from tenants.api.guards import allow, principal_of
from tenants.roles import Permission


class TenantSubscriptionController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/subscriptions"
    tags = ["subscriptions"]
    security = BEARER

    @idempotent_post("/", status_code=201, **allow(Permission.MANAGE_BILLING, 409, 422, *IDEMPOTENCY_ERRORS))
    async def create_subscription(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[SubscriptionCreate]
    ) -> SubscriptionRead:
        new = service.NewSubscription(
            plan_code=data.plan_code, seats=data.seats, start_at=data.start_at, billing_anchor=data.billing_anchor
        )
        return to_struct(SubscriptionRead, await service.create_subscription(principal_of(request), tenant_id, new))

    @get("/", **allow(Permission.READ_BILLING, 422))
    async def list_subscriptions(
        self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> SubscriptionPage:
        return to_struct(
            SubscriptionPage, await service.list_subscriptions(tenant_id, PageRequest.parse(limit, cursor))
        )


class SubscriptionController(Controller):
    """Subscriptions by id: the service finds the owning tenant and authorizes there."""

    path = "/v1/subscriptions/{subscription_id:uuid}"
    tags = ["subscriptions"]
    security = BEARER

    @get("/", responses=problem_responses(400, 401, 403, 404))
    async def get_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> SubscriptionRead:
        return to_struct(SubscriptionRead, await service.get_subscription(principal_of(request), subscription_id))

    @idempotent_post("/change", status_code=200, responses=problem_responses(413, 422, *ById))
    async def change_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId, data: JSONBody[SubscriptionChange]
    ) -> SubscriptionRead:
        changes: service.SubscriptionChanges = {}
        if data.plan_code is not UNSET:
            changes["plan_code"] = data.plan_code
        if data.seats is not UNSET:
            changes["seats"] = data.seats
        subscription = await service.change_subscription(principal_of(request), subscription_id, changes)
        return to_struct(SubscriptionRead, subscription)

    @idempotent_post("/cancel", status_code=200, responses=problem_responses(422, *ById))
    async def cancel_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId, data: JSONBody[SubscriptionCancel]
    ) -> SubscriptionRead:
        subscription = await service.cancel_subscription(principal_of(request), subscription_id, data.at_period_end)
        return to_struct(SubscriptionRead, subscription)

    @idempotent_post("/resume", status_code=200, responses=ById)
    async def resume_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> SubscriptionRead:
        return to_struct(SubscriptionRead, await service.resume_subscription(principal_of(request), subscription_id))
