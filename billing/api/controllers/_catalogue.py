"""HTTP for billable metrics and plans."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import structs

from billing import service
from billing.api.schemas import (
    MetricCreate,
    MetricPage,
    MetricRead,
    PlanCreate,
    PlanPage,
    PlanRead,
    plan_read,
)
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
        row, created = await service.create_metric(structs.asdict(data))
        return answer_created(to_struct(MetricRead, row), created)

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def list_metrics(self, limit: Limit = None, cursor: Cursor = None) -> MetricPage:
        rows, next_cursor = await service.list_metrics(PageRequest.parse(limit, cursor))
        return MetricPage(items=[to_struct(MetricRead, row) for row in rows], next_cursor=next_cursor)


class PlanController(Controller):
    path = "/v1/plans"
    tags = ["catalogue"]
    security = BEARER

    @idempotent_post("/", guards=[staff_only], status_code=201, responses=created_or_stored(PlanRead))
    async def create_plan(self, data: JSONBody[PlanCreate]) -> Response[PlanRead]:
        values = structs.asdict(data)
        values["proration"] = structs.asdict(data.proration) if data.proration else None
        row, created = await service.create_plan(values)
        return answer_created(plan_read(row), created)

    @get("/", responses=problem_responses(400, 401, 422))
    async def list_plans(self, limit: Limit = None, cursor: Cursor = None) -> PlanPage:
        rows, next_cursor = await service.list_plans(PageRequest.parse(limit, cursor))
        return PlanPage(items=[plan_read(row) for row in rows], next_cursor=next_cursor)

    @get("/{code:str}", responses=problem_responses(400, 401, 404))
    async def get_plan(
        self,
        code: Annotated[str, PathParameter(max_length=63)],
        version: Annotated[int | None, QueryParameter(ge=1, le=1_000_000, required=False)] = None,
    ) -> PlanRead:
        return plan_read(await service.get_plan(code, version))
