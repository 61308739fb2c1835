"""The back office, for platform staff only: tenants (search, suspend, reactivate), the catalogue (plans, coupons,
plugins: read), card disputes, and the revenue dashboard (MRR movements, customers, churn, NRR and trial
conversion, month by month, with charts). The same service calls as the staff API routes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from billing import service as billing
from billing.disputes import rules as dispute_rules
from billing.disputes import service as disputes
from controlplane.console.pages import signed_in
from controlplane.console.params import PAGE_SIZE, Form, TenantPath
from controlplane.console.plugin_pages import price_of
from controlplane.console.rendering import page
from controlplane.console.revenue import revenue_months
from controlplane.console.signup_pages import flat_price
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import StaffOnly
from controlplane.core.pagination import MAX_PAGE_SIZE, PageRequest
from plugins_registry import service as plugins
from tenants import service as tenants


@dataclass
class StatusForm:
    csrf_token: str
    lift_non_payment: str = ""


def _staff(request: Request[Any, Any, Any]) -> Principal:
    principal = signed_in(request)
    if not principal.is_staff:
        raise StaffOnly("the back office is for platform staff")
    return principal


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
        plans = (await billing.list_plans(PageRequest.parse(100, None))).items
        revenue = await revenue_months(principal, first, last, currency, {plan.currency for plan in plans})
        adoption = await plugins.plugin_adoption(principal, revenue.last)
        return page(request, "staff_revenue.html", revenue=revenue, adoption=adoption, action="/console/staff/revenue")

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
