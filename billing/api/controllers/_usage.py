"""HTTP for usage metering."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.params import QueryParameter

from billing import service
from billing.api.controllers._shared import UsageOperation
from billing.api.schemas import (
    UsageRead,
    UsageReply,
    usage_read,
)
from billing.errors import BatchTooLarge, InvalidUsageBatch
from billing.usage import rules as usage
from billing.usage.rules import MAX_BATCH
from controlplane.core.problems import problem_responses
from controlplane.core.ratelimit import middleware as rate_limit
from controlplane.core.web import BEARER, IDEMPOTENCY_ERRORS, TenantId, to_struct
from tenants.api.guards import allow, principal_of
from tenants.roles import Permission


class UsageController(Controller):
    tags = ["usage"]
    security = BEARER

    @post(
        "/v1/usage",
        status_code=200,
        operation_class=UsageOperation,
        responses=problem_responses(400, 401, 403, 404, 413, 422, *IDEMPOTENCY_ERRORS),
        opt={"rate_limit": "ingestion"},
    )
    async def report_usage(self, request: Request[Any, Any, Any]) -> UsageReply:
        """A batch of up to 1,000 events `{"events": [{idempotency_key, metric_code, timestamp, value?,
        properties?}], "tenant_id"?}`. Each event is accepted, a duplicate of one stored before, or rejected
        on its own with its index, a stable code and a detail. A tenant API key reports for its tenant;
        staff name the `tenant_id`."""
        try:
            tenant_id, events = usage.decode_batch(await request.body())
        except usage.InvalidBatch as error:
            raise InvalidUsageBatch(str(error)) from None
        if len(events) > MAX_BATCH:
            raise BatchTooLarge(f"{len(events)} events; send at most {MAX_BATCH} per request")
        principal = principal_of(request)
        tenant_id = tenant_id or principal.tenant_id
        if tenant_id is None:
            raise InvalidUsageBatch("tenant_id is required unless the request uses a tenant API key")
        await rate_limit.charge(request.scope, max(1, len(events)), tenant_id)  # usage is limited per event
        return to_struct(UsageReply, await service.ingest(principal, tenant_id, events))

    @get("/v1/tenants/{tenant_id:uuid}/usage", **allow(Permission.READ_BILLING))
    async def current_usage(
        self,
        tenant_id: TenantId,
        metric_code: Annotated[str | None, QueryParameter(max_length=63, required=False)] = None,
    ) -> UsageRead:
        return usage_read(await service.current_usage(tenant_id, metric_code))
