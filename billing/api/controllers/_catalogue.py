"""HTTP for billable metrics and plans."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing import service
from billing.api.schemas import MetricCreate, MetricPage, MetricRead, PlanCreate, PlanPage, PlanRead
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, Cursor, Limit, answer_created, created_or_stored, idempotent_post, to_struct
from tenants.api.guards import staff_only


class MetricController(Controller):
    path = "/v1/metrics"
    tags = ["catalogue"]
    security = BEARER
    guards = [staff_only]

    @idempotent_post("/", status_code=201, responses=created_or_stored(MetricRead))
    async def create_metric(self, data: JSONBody[MetricCreate]) -> Response[MetricRead]:
        definition = service.MetricDefinition(
            code=data.code, name=data.name, aggregation=data.aggregation, field=data.field
        )
        metric, created = await service.create_metric(definition)
        return answer_created(to_struct(MetricRead, metric), created)

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def list_metrics(self, limit: Limit = None, cursor: Cursor = None) -> MetricPage:
        return to_struct(MetricPage, await service.list_metrics(PageRequest.parse(limit, cursor)))


class PlanController(Controller):
    path = "/v1/plans"
    tags = ["catalogue"]
    security = BEARER

    @idempotent_post("/", guards=[staff_only], status_code=201, responses=created_or_stored(PlanRead))
    async def create_plan(self, data: JSONBody[PlanCreate]) -> Response[PlanRead]:
        proration = data.proration
        definition = service.PlanDefinition(
            code=data.code,
            name=data.name,
            currency=data.currency,
            interval=data.interval,
            charges=data.charges,
            trial_days=data.trial_days,
            proration=service.ProrationRules(proration.upgrade, proration.downgrade) if proration else None,
            rate_limit_percent=data.rate_limit_percent,
        )
        plan, created = await service.create_plan(definition)
        return answer_created(to_struct(PlanRead, plan), created)

    @get("/", responses=problem_responses(400, 401, 422))
    async def list_plans(self, limit: Limit = None, cursor: Cursor = None) -> PlanPage:
        return to_struct(PlanPage, await service.list_plans(PageRequest.parse(limit, cursor)))

    @get("/{code:str}", responses=problem_responses(400, 401, 404))
    async def get_plan(
        self,
        code: Annotated[str, PathParameter(max_length=63)],
        version: Annotated[int | None, QueryParameter(ge=1, le=1_000_000, required=False)] = None,
    ) -> PlanRead:
        return to_struct(PlanRead, await service.get_plan(code, version))
