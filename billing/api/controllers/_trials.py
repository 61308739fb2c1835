"""HTTP for trial grants: staff allow a tenant one more trial of a plan or a plugin."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response
from litestar.params import JSONBody
from msgspec import UNSET

from billing import service
from billing.api.schemas import TrialGrantCreate, TrialGrantRead
from controlplane.core.web import BEARER, TenantId, answer_created, created_or_stored, idempotent_post, to_struct
from tenants.api.guards import principal_of, staff_only


class TrialGrantController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/trial-grants"
    tags = ["subscriptions"]
    security = BEARER
    guards = [staff_only]

    @idempotent_post("/", status_code=201, responses=created_or_stored(TrialGrantRead))
    async def grant_trial(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[TrialGrantCreate]
    ) -> Response[TrialGrantRead]:
        grant, created = await service.grant_trial(
            principal_of(request),
            tenant_id,
            None if data.plan_code is UNSET else data.plan_code,
            None if data.plugin_id is UNSET else data.plugin_id,
        )
        return answer_created(to_struct(TrialGrantRead, grant), created)
