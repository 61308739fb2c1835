"""HTTP for reseller commissions: the agreement (staff set it), monthly statements (JSON or CSV)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, Response, get, put
from litestar.params import JSONBody, PathParameter
from msgspec import Meta, Struct

from billing import service
from billing.commissions import rules as commissions
from billing.limits import MAX_AMOUNT_MINOR
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, MONTH_PATTERN, Currency, Input, to_struct
from tenants.api.guards import principal_of

ResellerId = Annotated[uuid.UUID, PathParameter(description="The reseller's (partner) id")]
Month = Annotated[str, PathParameter(description="A month that has ended, YYYY-MM", pattern=MONTH_PATTERN)]
Bps = Annotated[int, Meta(ge=0, le=10_000)]


# A month's net revenue and a statement's balance are sums of bounded invoices (billing.limits).
AmountMinor = Annotated[int, Meta(ge=0, le=MAX_AMOUNT_MINOR)]


class TierIn(Input):
    from_minor: AmountMinor
    rate_bps: Bps


class AgreementPut(Input):
    currency: Currency
    rate_bps: Bps
    tiers: Annotated[list[TierIn], Meta(max_length=20)] = []
    duration_months: Annotated[int, Meta(ge=1, le=600)] | None = None
    pending_days: Annotated[int, Meta(ge=0, le=365)] = 30
    minimum_payout_minor: AmountMinor = 0


class Tier(Struct):
    from_minor: int
    rate_bps: int


class AgreementRead(Struct):
    reseller_id: uuid.UUID
    currency: str
    rate_bps: int
    tiers: list[Tier]
    duration_months: int | None
    pending_days: int
    minimum_payout_minor: int
    updated_at: datetime


class StatementLine(Struct):
    owned_tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    invoice_number: str
    kind: Literal["commission", "clawback"]
    net_minor: int
    rate_bps: int
    commission_minor: int
    currency: str
    accrued_at: datetime
    payable_at: datetime


class StatementSkippedEvent(Struct):
    """An owned tenant's invoice the month close left out, and why (e.g. `currency_mismatch`)."""

    invoice_id: uuid.UUID
    invoice_number: str
    currency: str
    net_minor: int
    reason: str
    detail: str


class StatementRead(Struct):
    id: uuid.UUID
    reseller_id: uuid.UUID
    month: date
    currency: str
    carried_in_minor: int
    total_minor: int
    payable_minor: int
    carried_out_minor: int
    closed_at: datetime
    lines: list[StatementLine] = []
    skipped: list[StatementSkippedEvent] = []


class StatementList(Struct):
    items: list[StatementRead]


class PayoutRead(Struct):
    id: uuid.UUID
    source: Literal["statement", "escrow"]
    statement_id: uuid.UUID | None
    amount_minor: int
    currency: str
    destination: str | None
    status: Literal["pending", "paid", "failed", "held"]
    attempts: int
    stripe_transfer_id: str | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class PayoutList(Struct):
    items: list[PayoutRead]


class CommissionController(Controller):
    path = "/v1/resellers/{partner_id:uuid}"
    tags = ["partners"]
    security = BEARER

    @put("/agreement", responses=problem_responses(400, 401, 403, 404, 413, 422))
    async def put_agreement(
        self, request: Request[Any, Any, Any], partner_id: ResellerId, data: JSONBody[AgreementPut]
    ) -> AgreementRead:
        terms = service.AgreementTerms(
            currency=data.currency,
            rate_bps=data.rate_bps,
            tiers=tuple(commissions.Tier(t.from_minor, t.rate_bps) for t in data.tiers),
            duration_months=data.duration_months,
            pending_days=data.pending_days,
            minimum_payout_minor=data.minimum_payout_minor,
        )
        return to_struct(AgreementRead, await service.put_agreement(principal_of(request), partner_id, terms))

    @get("/agreement", responses=problem_responses(400, 401, 404, 422))
    async def get_agreement(self, request: Request[Any, Any, Any], partner_id: ResellerId) -> AgreementRead:
        return to_struct(AgreementRead, await service.get_agreement(principal_of(request), partner_id))

    @get("/statements", responses=problem_responses(400, 401, 404))
    async def list_statements(self, request: Request[Any, Any, Any], partner_id: ResellerId) -> StatementList:
        statements = await service.list_statements(principal_of(request), partner_id)
        return StatementList(items=[to_struct(StatementRead, statement) for statement in statements])

    @get("/payouts", responses=problem_responses(400, 401, 404))
    async def list_payouts(self, request: Request[Any, Any, Any], partner_id: ResellerId) -> PayoutList:
        payouts = await service.list_payouts(principal_of(request), partner_id)
        return PayoutList(items=[to_struct(PayoutRead, payout) for payout in payouts])

    @get(
        "/statements/{month:str}",
        responses=problem_responses(400, 401, 404, 422),
        description="JSON, or CSV with `Accept: text/csv`.",
    )
    async def get_statement(
        self, request: Request[Any, Any, Any], partner_id: ResellerId, month: Month
    ) -> Response[Any]:
        statement = await service.get_statement(principal_of(request), partner_id, service.parse_month(month))
        if "text/csv" in request.headers.get("accept", ""):
            return Response(service.statement_csv(statement), media_type="text/csv")
        return Response(to_struct(StatementRead, statement))
