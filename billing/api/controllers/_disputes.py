"""HTTP for card disputes: staff see every tenant's, a tenant's billing readers see their own."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get
from litestar.params import QueryParameter

from billing.api.schemas import DisputePage, TenantDisputePage
from billing.disputes import service
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, Cursor, Limit, TenantId, to_struct
from tenants.api.guards import allow, staff_only
from tenants.roles import Permission

DisputeStatus = Annotated[
    Literal["open", "won", "lost"] | None,
    QueryParameter(description="Only disputes of this status", required=False),
]


class DisputeController(Controller):
    tags = ["disputes"]
    security = BEARER

    @get("/v1/disputes", guards=[staff_only], responses=problem_responses(400, 401, 403, 422))
    async def list_disputes(
        self, status: DisputeStatus = None, limit: Limit = None, cursor: Cursor = None
    ) -> DisputePage:
        """Staff: every tenant's card disputes, oldest first (`?status=open` for those Stripe has not decided)."""
        return to_struct(DisputePage, await service.list_disputes(status, PageRequest.parse(limit, cursor)))

    @get("/v1/tenants/{tenant_id:uuid}/disputes", **allow(Permission.READ_BILLING, 422))
    async def list_tenant_disputes(
        self, tenant_id: TenantId, status: DisputeStatus = None, limit: Limit = None, cursor: Cursor = None
    ) -> TenantDisputePage:
        """The tenant's card disputes, oldest first: what was disputed and how it stands (Stripe's fee and ids
        are staff's, at `GET /v1/disputes`)."""
        page = await service.list_tenant_disputes(tenant_id, status, PageRequest.parse(limit, cursor))
        return to_struct(TenantDisputePage, page)
