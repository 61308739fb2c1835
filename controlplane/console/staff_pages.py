"""The back office, for platform staff only: tenants (search, suspend, reactivate), the catalogue (plans, coupons,
plugins: read), card disputes, and the revenue dashboard (MRR movements, customers, churn, NRR and trial
conversion, month by month, with charts). The same service calls as the staff API routes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from billing import service as billing
from billing.analytics import service as analytics
from billing.disputes import rules as dispute_rules
from billing.disputes import service as disputes
from billing.money import display
from controlplane.console.charts import bar_chart
from controlplane.console.pages import signed_in
from controlplane.console.params import PAGE_SIZE, Form, TenantPath
from controlplane.console.plugin_pages import price_of
from controlplane.console.rendering import page
from controlplane.console.signup_pages import flat_price
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import StaffOnly
from controlplane.core.pagination import MAX_PAGE_SIZE, PageRequest
from plugins_registry import service as plugins
from tenants import service as tenants

_MONTHS = 12


@dataclass
class StatusForm:
    csrf_token: str
    lift_non_payment: str = ""


def _staff(request: Request[Any, Any, Any]) -> Principal:
    principal = signed_in(request)
    if not principal.is_staff:
        raise StaffOnly("the back office is for platform staff")
    return principal


def _months_back(count: int, now: datetime) -> tuple[str, str]:
    index = now.year * 12 + now.month - 1 - (count - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}", f"{now.year:04d}-{now.month:02d}"


class StaffPages(Controller):
    path = "/staff"
    include_in_schema = False

    @get("/tenants")
    async def tenants(
        self,
        request: Request[Any, Any, Any],
        q: Annotated[str | None, QueryParameter(max_length=100, required=False)] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=512, required=False)] = None,
    ) -> Response[str]:
        principal = _staff(request)
        found = await tenants.list_tenants(principal, PageRequest.parse(PAGE_SIZE, cursor), q)
        return page(request, "staff_tenants.html", tenants=found.items, next_cursor=found.next_cursor, q=q or "")

    @post("/tenants/{tenant_id:uuid}/suspend", status_code=303)
    async def suspend(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[StatusForm, Form]
    ) -> Response[Any]:
        await tenants.change_status(_staff(request), tenant_id, "suspend")
        return Redirect("/console/staff/tenants", status_code=303)

    @post("/tenants/{tenant_id:uuid}/reactivate", status_code=303)
    async def reactivate(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[StatusForm, Form]
    ) -> Response[Any]:
        lift = data.lift_non_payment == "yes"
        await tenants.change_status(_staff(request), tenant_id, "reactivate", lift_non_payment=lift)
        return Redirect("/console/staff/tenants", status_code=303)

    @get("/revenue")
    async def revenue(
        self,
        request: Request[Any, Any, Any],
        first: Annotated[str | None, QueryParameter(name="from", max_length=7, required=False)] = None,
        last: Annotated[str | None, QueryParameter(name="to", max_length=7, required=False)] = None,
        currency: Annotated[str | None, QueryParameter(max_length=3, required=False)] = None,
    ) -> Response[str]:
        principal = _staff(request)
        default_first, default_last = _months_back(_MONTHS, datetime.now(UTC))
        first, last = first or default_first, last or default_last
        plans = (await billing.list_plans(PageRequest.parse(100, None))).items
        currencies = sorted({plan.currency for plan in plans}) or ["EUR"]
        currency = currency or currencies[0]
        months = await analytics.revenue(
            principal, analytics.month_of(first, "from"), analytics.month_of(last, "to"), currency, None
        )
        labels = [month.month for month in months]

        def amount(minor: int | Decimal) -> str:
            return display(int(minor), currency)

        charts = [
            bar_chart("mrr", f"MRR at each month's end, {currency}", labels, [m.mrr_end_minor for m in months], amount),
            bar_chart(
                "net-new",
                f"Net new MRR each month (new, expansion and reactivation less contraction and churn), {currency}",
                labels,
                [
                    m.new_minor + m.expansion_minor + m.reactivation_minor - m.contraction_minor - m.churned_minor
                    for m in months
                ],
                amount,
            ),
        ]
        adoption = await plugins.plugin_adoption(principal, last)
        return page(
            request,
            "staff_revenue.html",
            adoption=adoption,
            months=months,
            charts=charts,
            currency=currency,
            currencies=currencies,
            first=first,
            last=last,
        )

    @get("/catalogue")
    async def catalogue(self, request: Request[Any, Any, Any]) -> Response[str]:
        _staff(request)
        everything = PageRequest.parse(MAX_PAGE_SIZE, None)
        return page(
            request,
            "staff_catalogue.html",
            plans=(await billing.list_plans(everything)).items,
            coupons=(await billing.list_coupons(everything)).items,
            plugins=(await plugins.list_plugins(everything)).items,
            flat_price=flat_price,
            price_of=price_of,
        )

    @get("/disputes")
    async def disputes(
        self,
        request: Request[Any, Any, Any],
        status: Annotated[str | None, QueryParameter(max_length=40, required=False)] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=512, required=False)] = None,
    ) -> Response[str]:
        _staff(request)
        shown = status if status in dispute_rules.STATUSES else None
        found = await disputes.list_disputes(shown, PageRequest.parse(PAGE_SIZE, cursor))
        return page(
            request,
            "staff_disputes.html",
            disputes=found.items,
            next_cursor=found.next_cursor,
            shown=shown or "",
            statuses=dispute_rules.STATUSES,
        )
