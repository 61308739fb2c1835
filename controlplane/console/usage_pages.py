"""A tenant's usage in the console: each metered metric's total over the unbilled window and what it would bill,
and a chart of it day by day (the metric's own aggregation per UTC day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from litestar import Controller, Request, Response, get

from billing import service as billing
from controlplane.console.charts import bar_chart
from controlplane.console.pages import live_subscription, signed_in, tenant_in_view
from controlplane.console.params import TenantPath
from controlplane.console.rendering import page
from tenants.roles import Permission


def _days(start: datetime, end: datetime) -> list[datetime]:
    first = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    count = max(1, (end - first + timedelta(days=1) - timedelta(microseconds=1)).days)
    return [first + timedelta(days=n) for n in range(count)]


class UsagePages(Controller):
    path = "/tenants/{tenant_id:uuid}"
    include_in_schema = False

    @get("/usage")
    async def usage(self, request: Request[Any, Any, Any], tenant_id: TenantPath) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_BILLING)
        if await live_subscription(tenant_id) is None:
            return page(request, "usage.html", tenant=tenant, totals=None, charts=[])
        totals = await billing.current_usage(tenant_id)
        daily = await billing.daily_usage(tenant_id)
        days = _days(daily.period_start, min(daily.period_end, datetime.now(UTC)))
        labels = [day.strftime("%m-%d") for day in days]
        charts = []
        for metric in daily.metrics:
            by_day = dict(metric.days)
            values: list[int | Decimal] = [by_day.get(day, Decimal(0)) for day in days]
            title = f"{metric.metric_code} per day ({metric.aggregation})"
            charts.append((bar_chart(f"usage-{metric.metric_code}", title, labels, values), metric, days))
        return page(request, "usage.html", tenant=tenant, totals=totals, charts=charts)
