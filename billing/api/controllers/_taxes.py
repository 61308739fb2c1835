"""HTTP for tax rates: the catalogue (staff only, reads included: which rates and jurisdictions the platform
taxes in is staff's business; a tenant sees its own rates on its list and its invoices) and each tenant's list
(set by staff; read by staff and the tenant's billing readers)."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, put
from litestar.params import JSONBody, PathParameter

from billing.api.schemas import TaxRateCreate, TaxRatePage, TaxRateRead, TenantTaxRatesPut, TenantTaxRatesRead
from billing.taxes import service
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import (
    BEARER,
    IDEMPOTENCY_ERRORS,
    Cursor,
    Limit,
    TenantId,
    answer_created,
    created_or_stored,
    idempotent_post,
    to_struct,
)
from tenants.api.guards import allow, principal_of, staff_only
from tenants.roles import Permission

TaxRateCode = Annotated[str, PathParameter(description="The tax rate's code", max_length=63)]


class TaxRateController(Controller):
    path = "/v1/tax-rates"
    tags = ["taxes"]
    security = BEARER
    guards = [staff_only]

    @idempotent_post("/", status_code=201, responses=created_or_stored(TaxRateRead))
    async def create_tax_rate(self, data: JSONBody[TaxRateCreate]) -> Response[TaxRateRead]:
        """The same code and figures again answer the stored rate (200); other figures, 409 `tax_rate_exists`."""
        rate, created = await service.create_rate(data.code, data.name, data.rate_bps, data.jurisdiction)
        return answer_created(to_struct(TaxRateRead, rate), created)

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def list_tax_rates(self, limit: Limit = None, cursor: Cursor = None) -> TaxRatePage:
        return to_struct(TaxRatePage, await service.list_rates(PageRequest.parse(limit, cursor)))

    @get("/{code:str}", responses=problem_responses(400, 401, 403, 404))
    async def get_tax_rate(self, code: TaxRateCode) -> TaxRateRead:
        return to_struct(TaxRateRead, await service.get_rate(code))

    @idempotent_post(
        "/{code:str}/archive", status_code=200, responses=problem_responses(400, 401, 403, 404, *IDEMPOTENCY_ERRORS)
    )
    async def archive_tax_rate(self, code: TaxRateCode) -> TaxRateRead:
        """No tenant may be given the rate from now on; tenants that have it keep it."""
        return to_struct(TaxRateRead, await service.archive_rate(code))


class TenantTaxRateController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/tax-rates"
    tags = ["taxes"]
    security = BEARER

    @put("/", **allow(Permission.STAFF_ONLY, 409, 413, 422))
    async def put_tenant_tax_rates(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[TenantTaxRatesPut]
    ) -> TenantTaxRatesRead:
        view = await service.set_tenant_tax_rates(principal_of(request), tenant_id, data.codes)
        return to_struct(TenantTaxRatesRead, view)

    @get("/", **allow(Permission.READ_BILLING))
    async def get_tenant_tax_rates(self, tenant_id: TenantId) -> TenantTaxRatesRead:
        return to_struct(TenantTaxRatesRead, await service.tenant_tax_rates(tenant_id))
