"""HTTP for partners: reseller sign-up, members, qualification checkpoints, the staff review queue, and what
a reseller reads of the tenants it owns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import Meta, Struct

from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import (
    BEARER,
    IDEMPOTENCY_ERRORS,
    Cursor,
    Email,
    Input,
    Limit,
    Name,
    TenantId,
    idempotent_post,
    to_struct,
)
from tenants import service
from tenants.api.guards import allow, principal_of, staff_only
from tenants.api.schemas import TenantRead
from tenants.roles import Permission

PartnerId = Annotated[uuid.UUID, PathParameter(description="The partner's id (a reseller's id is its partner id)")]
CheckpointCode = Annotated[str, PathParameter(max_length=63, pattern=r"^[a-z_]{1,63}$")]
ById = problem_responses(400, 401, 403, 404, 409, 413, 422, *IDEMPOTENCY_ERRORS)


class ResellerCreate(Input):
    name: Name
    email: Email
    subtype: Literal["standard", "referral"] = "standard"


class PartnerCreate(Input):
    kind: Literal["reseller", "publisher"]
    name: Name
    email: Email
    subtype: Literal["standard", "referral"] = "standard"


class CheckpointView(Struct):
    code: str
    status: str
    expires_at: datetime | None
    exempt: bool


class QualificationRead(Struct):
    partner_id: uuid.UUID
    kind: str
    subtype: str
    is_qualified: bool
    checkpoints: list[CheckpointView]
    issues: list[str]
    required_actions: list[str]


class PartnerRead(Struct):
    id: uuid.UUID
    kind: str
    subtype: str
    name: str
    email: str
    stripe_account_id: str | None
    created_at: datetime
    qualification: QualificationRead


class Evidence(Input):
    evidence: Annotated[str, Meta(max_length=2000, pattern=r"^[^\x00-\x1f\x7f]*$")] = ""


class Rejection(Input):
    reason: Annotated[str, Meta(min_length=1, max_length=1000)]


class PartnerMemberCreate(Input):
    email: Email
    role: Literal["reseller_admin", "reseller_viewer"]


class PartnerMemberRead(Struct):
    partner_id: uuid.UUID
    user_id: uuid.UUID
    role: str


class HistoryEntry(Struct):
    code: str
    from_status: str
    to_status: str
    actor_type: str
    actor_id: uuid.UUID | None
    reason: str | None
    at: datetime


class HistoryList(Struct):
    items: list[HistoryEntry]


class PendingCheckpoint(Struct):
    partner_id: uuid.UUID
    kind: str
    subtype: str
    name: str
    code: str
    submitted_at: datetime | None


class PendingPage(Struct):
    items: list[PendingCheckpoint]
    next_cursor: str | None


class BillingSummary(Struct):
    currency: str
    invoices: int
    invoiced_minor: int
    paid_minor: int | None
    outstanding_minor: int


class RecurringRevenue(Struct):
    currency: str
    mrr_minor: int


class OwnedTenant(Struct):
    id: uuid.UUID
    name: str
    slug: str
    status: str
    currency: str
    created_at: datetime
    billing: list[BillingSummary]
    # Now, per currency (none for a tenant without recurring revenue); null for a reseller's viewers, who do not
    # read its revenue.
    mrr: list[RecurringRevenue] | None


class OwnedTenantPage(Struct):
    items: list[OwnedTenant]
    next_cursor: str | None


class TenantMove(Input):
    reseller_id: uuid.UUID | None


class ResellerController(Controller):
    path = "/v1/resellers"
    tags = ["partners"]
    security = BEARER

    @idempotent_post("/", status_code=201, responses=problem_responses(401, 413, 422, *IDEMPOTENCY_ERRORS))
    async def create_reseller(self, request: Request[Any, Any, Any], data: JSONBody[ResellerCreate]) -> PartnerRead:
        """Staff create a reseller directly; a signed-in person signs one up and becomes its admin. Either way
        it starts unqualified."""
        new = service.NewPartner(name=data.name, email=data.email, subtype=data.subtype)
        return to_struct(PartnerRead, await service.create_partner(principal_of(request), "reseller", new))

    @get("/{partner_id:uuid}/tenants", responses=problem_responses(400, 401, 403, 404, 422))
    async def owned_tenants(
        self, request: Request[Any, Any, Any], partner_id: PartnerId, limit: Limit = None, cursor: Cursor = None
    ) -> OwnedTenantPage:
        page = await service.reseller_tenants(principal_of(request), partner_id, PageRequest.parse(limit, cursor))
        return to_struct(OwnedTenantPage, page)


class PartnerController(Controller):
    path = "/v1/partners"
    tags = ["partners"]
    security = BEARER

    @idempotent_post("/", status_code=201, responses=problem_responses(401, 413, 422, *IDEMPOTENCY_ERRORS))
    async def create_partner(self, request: Request[Any, Any, Any], data: JSONBody[PartnerCreate]) -> PartnerRead:
        """A reseller or a plugin publisher signs up (or staff create one); it starts unqualified."""
        new = service.NewPartner(name=data.name, email=data.email, subtype=data.subtype)
        return to_struct(PartnerRead, await service.create_partner(principal_of(request), data.kind, new))

    @get("/pending", guards=[staff_only], responses=problem_responses(400, 401, 403, 422))
    async def pending(
        self,
        checkpoint: Annotated[str | None, QueryParameter(max_length=63, pattern=r"^[a-z_]{1,63}$")] = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> PendingPage:
        return to_struct(PendingPage, await service.pending_checkpoints(checkpoint, PageRequest.parse(limit, cursor)))

    @get("/{partner_id:uuid}/qualification", responses=problem_responses(400, 401, 404))
    async def qualification(self, request: Request[Any, Any, Any], partner_id: PartnerId) -> QualificationRead:
        return to_struct(QualificationRead, await service.qualification(principal_of(request), partner_id))

    @get("/{partner_id:uuid}/history", responses=problem_responses(400, 401, 404))
    async def history(self, request: Request[Any, Any, Any], partner_id: PartnerId) -> HistoryList:
        entries = await service.checkpoint_history(principal_of(request), partner_id)
        return HistoryList(items=[to_struct(HistoryEntry, entry) for entry in entries])

    @idempotent_post("/{partner_id:uuid}/checkpoints/{code:str}/submit", status_code=200, responses=ById)
    async def submit(
        self, request: Request[Any, Any, Any], partner_id: PartnerId, code: CheckpointCode, data: JSONBody[Evidence]
    ) -> QualificationRead:
        standing = await service.submit_checkpoint(principal_of(request), partner_id, code, data.evidence)
        return to_struct(QualificationRead, standing)

    @idempotent_post("/{partner_id:uuid}/checkpoints/{code:str}/approve", status_code=200, responses=ById)
    async def approve(
        self, request: Request[Any, Any, Any], partner_id: PartnerId, code: CheckpointCode
    ) -> QualificationRead:
        return to_struct(QualificationRead, await service.approve_checkpoint(principal_of(request), partner_id, code))

    @idempotent_post("/{partner_id:uuid}/checkpoints/{code:str}/reject", status_code=200, responses=ById)
    async def reject(
        self, request: Request[Any, Any, Any], partner_id: PartnerId, code: CheckpointCode, data: JSONBody[Rejection]
    ) -> QualificationRead:
        standing = await service.reject_checkpoint(principal_of(request), partner_id, code, data.reason)
        return to_struct(QualificationRead, standing)

    @idempotent_post("/{partner_id:uuid}/members", status_code=201, responses=ById)
    async def add_member(
        self, request: Request[Any, Any, Any], partner_id: PartnerId, data: JSONBody[PartnerMemberCreate]
    ) -> PartnerMemberRead:
        member = await service.add_partner_member(principal_of(request), partner_id, data.email, data.role)
        return to_struct(PartnerMemberRead, member)


class TenantOwnerController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/reseller"
    tags = ["partners"]
    security = BEARER

    @idempotent_post("/", status_code=200, **allow(Permission.STAFF_ONLY, 413, *IDEMPOTENCY_ERRORS))
    async def move_tenant(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[TenantMove]
    ) -> TenantRead:
        """Staff move a tenant to a qualified reseller (or to none)."""
        return to_struct(TenantRead, await service.move_tenant(principal_of(request), tenant_id, data.reseller_id))
