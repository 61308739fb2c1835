"""HTTP for revenue analytics: the monthly figures computed from the MRR history, as JSON or CSV."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.params import QueryParameter

from billing.analytics import service
from billing.analytics.report import csv_rows
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, MONTH_PATTERN
from tenants.api.guards import principal_of


class AnalyticsController(Controller):
    path = "/v1/analytics"
    tags = ["analytics"]
    security = BEARER

    @get(
        "/revenue",
        responses=problem_responses(400, 401, 403, 404, 422),
        description=(
            "MRR movements, customers, churn and retention, ARPA, CLV and trial conversion per calendar month "
            "(UTC), from the MRR history; at most 36 months. JSON, or CSV with `Accept: text/csv`. Staff read "
            "every tenant, or one reseller's (`reseller_id`); a reseller's admins pass their reseller's id."
        ),
    )
    async def revenue(
        self,
        request: Request[Any, Any, Any],
        first: Annotated[str, QueryParameter(name="from", pattern=MONTH_PATTERN, description="YYYY-MM")],
        last: Annotated[str, QueryParameter(name="to", pattern=MONTH_PATTERN, description="YYYY-MM")],
        currency: Annotated[str, QueryParameter(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")],
        reseller_id: Annotated[
            uuid.UUID | None, QueryParameter(description="Only the tenants this reseller owns")
        ] = None,
    ) -> Response[Any]:
        figures = await service.revenue(
            principal_of(request),
            service.month_of(first, "from"),
            service.month_of(last, "to"),
            currency,
            reseller_id,
        )
        if "text/csv" in request.headers.get("accept", ""):
            return Response(csv_rows(figures), media_type="text/csv")
        return Response({"currency": currency, "months": [asdict(month) for month in figures]})
