"""HTTP for a tenant's wallet of prepaid credits."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import JSONBody, QueryParameter

from billing import service
from billing.api.controllers._shared import gateway
from billing.api.schemas import WalletRead, WalletTopUpCreate, WalletTopUpRead
from controlplane.core.pagination import PageRequest
from controlplane.core.web import (
    BEARER,
    IDEMPOTENCY_ERRORS,
    Cursor,
    Limit,
    TenantId,
    idempotent_post,
    to_struct,
)
from tenants.api.guards import allow, principal_of
from tenants.roles import Permission

CurrencyQuery = Annotated[
    str | None,
    QueryParameter(
        name="currency",
        required=False,
        min_length=3,
        max_length=3,
        pattern=r"^[A-Z]{3}$",
        description="The wallet's currency (default: the tenant's)",
    ),
]


class WalletController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/wallet"
    tags = ["wallets"]
    security = BEARER

    @get("/", **allow(Permission.READ_BILLING, 422))
    async def get_wallet(
        self, tenant_id: TenantId, currency: CurrencyQuery = None, limit: Limit = None, cursor: Cursor = None
    ) -> WalletRead:
        wallet = await service.get_wallet(tenant_id, currency, PageRequest.parse(limit, cursor))
        return to_struct(WalletRead, wallet)

    @idempotent_post(
        "/top-ups", status_code=201, **allow(Permission.MANAGE_BILLING, 402, 413, 422, 503, *IDEMPOTENCY_ERRORS)
    )
    async def top_up(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[WalletTopUpCreate]
    ) -> WalletTopUpRead:
        """Buy credit by card (`paid: true`) or grant it (`paid: false`, staff only)."""
        lot = await service.top_up(
            gateway(request), principal_of(request), tenant_id, data.amount_minor, data.paid, data.expires_at
        )
        return to_struct(WalletTopUpRead, lot)
