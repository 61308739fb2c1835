"""HTTP for escrow agreements and their milestones."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import JSONBody, PathParameter

from billing import service
from billing.api.controllers._shared import ById, gateway
from billing.api.schemas import (
    EscrowCreate,
    EscrowRead,
    MilestoneReject,
    MilestoneResolve,
)
from billing.escrow.rules import Action
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, IDEMPOTENCY_ERRORS, idempotent_post, to_struct
from tenants.api.guards import principal_of

EscrowId = Annotated[uuid.UUID, PathParameter(description="The escrow agreement's id")]
MilestoneId = Annotated[uuid.UUID, PathParameter(description="The milestone's id")]
EscrowErrors = problem_responses(402, 413, 422, 503, *ById)
MILESTONE = "/{escrow_id:uuid}/milestones/{milestone_id:uuid}"
Req = Request[Any, Any, Any]


class EscrowController(Controller):
    """Escrow for service payments between a tenant (payer) and a payee. The agreement's tenant is found
    from its id and the principal authorized there."""

    path = "/v1/escrows"
    tags = ["escrow"]
    security = BEARER

    @idempotent_post(
        "/", status_code=201, responses=problem_responses(400, 401, 403, 404, 413, 422, *IDEMPOTENCY_ERRORS)
    )
    async def create_escrow(self, request: Request[Any, Any, Any], data: JSONBody[EscrowCreate]) -> EscrowRead:
        terms = service.EscrowTerms(
            tenant_id=data.tenant_id,
            payee_type=data.payee.type,
            payee_id=data.payee.id,
            currency=data.currency,
            amount_minor=data.amount_minor,
            milestones=tuple(service.MilestoneTerms(m.title, m.amount_minor, m.due_at) for m in data.milestones),
            inspection_days=data.inspection_days,
        )
        return to_struct(EscrowRead, await service.create_escrow(principal_of(request), terms))

    @get("/{escrow_id:uuid}", responses=problem_responses(400, 401, 403, 404))
    async def get_escrow(self, request: Request[Any, Any, Any], escrow_id: EscrowId) -> EscrowRead:
        return to_struct(EscrowRead, await service.get_escrow(principal_of(request), escrow_id))

    @idempotent_post("/{escrow_id:uuid}/fund", status_code=200, responses=EscrowErrors)
    async def fund_escrow(self, request: Request[Any, Any, Any], escrow_id: EscrowId) -> EscrowRead:
        """Charge the whole amount to the payer's default card and hold it."""
        return to_struct(EscrowRead, await service.fund_escrow(gateway(request), principal_of(request), escrow_id))

    @idempotent_post("/{escrow_id:uuid}/cancel", status_code=200, responses=EscrowErrors)
    async def cancel_escrow(self, request: Request[Any, Any, Any], escrow_id: EscrowId) -> EscrowRead:
        """Refund every milestone not yet released."""
        return to_struct(EscrowRead, await service.cancel_escrow(gateway(request), principal_of(request), escrow_id))

    @idempotent_post(f"{MILESTONE}/submit", status_code=200, responses=EscrowErrors)
    async def submit(self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId) -> EscrowRead:
        """The payee delivered (platform staff on the payee's behalf until payees have accounts)."""
        return await _step(request, escrow_id, milestone_id, Action.SUBMIT)

    @idempotent_post(f"{MILESTONE}/accept", status_code=200, responses=EscrowErrors)
    async def accept(self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId) -> EscrowRead:
        """The payer accepts: the milestone's amount is released to the payee."""
        return await _step(request, escrow_id, milestone_id, Action.ACCEPT)

    @idempotent_post(f"{MILESTONE}/reject", status_code=200, responses=EscrowErrors)
    async def reject(
        self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId, data: JSONBody[MilestoneReject]
    ) -> EscrowRead:
        """The payer rejects with a reason: the milestone is disputed until platform staff resolve it."""
        return await _step(request, escrow_id, milestone_id, Action.REJECT, reason=data.reason)

    @idempotent_post(f"{MILESTONE}/resolve", status_code=200, responses=EscrowErrors)
    async def resolve(
        self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId, data: JSONBody[MilestoneResolve]
    ) -> EscrowRead:
        """Staff: release, refund, or split a disputed milestone (`release_minor` to the payee, the rest back)."""
        return await _step(
            request,
            escrow_id,
            milestone_id,
            Action.RESOLVE,
            outcome=data.outcome,
            release_minor=data.release_minor or 0,
        )


async def _step(
    request: Req, escrow_id: uuid.UUID, milestone_id: uuid.UUID, action: Action, **options: Any
) -> EscrowRead:
    agreement = await service.milestone_step(
        gateway(request), principal_of(request), escrow_id, milestone_id, action, **options
    )
    return to_struct(EscrowRead, agreement)
