"""HTTP for payment methods."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import JSONBody

from billing import service
from billing.api.controllers._shared import gateway
from billing.api.schemas import PaymentMethodCreate, PaymentMethodPage, PaymentMethodRead
from controlplane.core.pagination import PageRequest
from controlplane.core.web import BEARER, IDEMPOTENCY_ERRORS, Cursor, Limit, TenantId, idempotent_post, to_struct
from tenants.api.guards import allow, principal_of
from tenants.roles import Permission


class PaymentMethodController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/payment-methods"
    tags = ["payments"]
    security = BEARER

    @idempotent_post("/", status_code=201, **allow(Permission.MANAGE_BILLING, 413, 422, 503, *IDEMPOTENCY_ERRORS))
    async def add_payment_method(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[PaymentMethodCreate]
    ) -> PaymentMethodRead:
        method = await service.add_payment_method(
            gateway(request), principal_of(request), tenant_id, data.stripe_payment_method_id, data.default
        )
        return to_struct(PaymentMethodRead, method)

    @get("/", **allow(Permission.READ_BILLING, 422))
    async def list_payment_methods(
        self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> PaymentMethodPage:
        page = await service.list_payment_methods(tenant_id, PageRequest.parse(limit, cursor))
        return to_struct(PaymentMethodPage, page)
