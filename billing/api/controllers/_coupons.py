"""HTTP for coupons (staff's catalogue) and the discounts a subscription redeems from them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get
from litestar.params import JSONBody, PathParameter

from billing import service
from billing.api.controllers._shared import ById, SubscriptionId
from billing.api.schemas import CouponCreate, CouponPage, CouponRead, DiscountCreate, DiscountList, DiscountRead
from billing.discounts.rules import CouponTerms
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, Cursor, Limit, answer_created, created_or_stored, idempotent_post, to_struct
from tenants.api.guards import principal_of, staff_only

CouponCode = Annotated[
    str, PathParameter(max_length=63, pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$", description="The coupon's code")
]
DiscountId = Annotated[uuid.UUID, PathParameter(description="The discount's id")]


class CouponController(Controller):
    path = "/v1/coupons"
    tags = ["coupons"]
    security = BEARER
    guards = [staff_only]

    @idempotent_post("/", status_code=201, responses=created_or_stored(CouponRead))
    async def create_coupon(
        self, request: Request[Any, Any, Any], data: JSONBody[CouponCreate]
    ) -> Response[CouponRead]:
        terms = CouponTerms(
            code=data.code,
            name=data.name,
            duration=data.duration,
            percent_off_bps=data.percent_off_bps,
            amount_off_minor=data.amount_off_minor,
            currency=data.currency,
            duration_periods=data.duration_periods,
            plan_codes=tuple(data.plan_codes) if data.plan_codes is not None else None,
        )
        definition = service.CouponDefinition(terms, data.max_redemptions, data.redeem_by)
        coupon, created = await service.create_coupon(principal_of(request), definition)
        return answer_created(to_struct(CouponRead, coupon), created)

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def list_coupons(self, limit: Limit = None, cursor: Cursor = None) -> CouponPage:
        return to_struct(CouponPage, await service.list_coupons(PageRequest.parse(limit, cursor)))

    @get("/{code:str}", responses=problem_responses(400, 401, 403, 404))
    async def get_coupon(self, code: CouponCode) -> CouponRead:
        return to_struct(CouponRead, await service.get_coupon(code))

    @idempotent_post("/{code:str}/archive", status_code=200, responses=problem_responses(401, 403, 404, *ById))
    async def archive_coupon(self, request: Request[Any, Any, Any], code: CouponCode) -> CouponRead:
        return to_struct(CouponRead, await service.archive_coupon(principal_of(request), code))


class SubscriptionDiscountController(Controller):
    """A subscription's discounts: the service finds the owning tenant and authorizes there."""

    path = "/v1/subscriptions/{subscription_id:uuid}/discounts"
    tags = ["subscriptions"]
    security = BEARER

    @idempotent_post("/", status_code=201, responses=problem_responses(422, *ById))
    async def redeem(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId, data: JSONBody[DiscountCreate]
    ) -> DiscountRead:
        discount = await service.redeem(principal_of(request), subscription_id, data.coupon_code)
        return to_struct(DiscountRead, discount)

    @get("/", responses=problem_responses(400, 401, 403, 404))
    async def list_discounts(self, request: Request[Any, Any, Any], subscription_id: SubscriptionId) -> DiscountList:
        discounts = await service.list_discounts(principal_of(request), subscription_id)
        return DiscountList(items=[to_struct(DiscountRead, discount) for discount in discounts])

    @delete("/{discount_id:uuid}", status_code=200, responses=problem_responses(400, 401, 403, 404))
    async def remove_discount(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId, discount_id: DiscountId
    ) -> DiscountRead:
        discount = await service.remove_discount(principal_of(request), subscription_id, discount_id)
        return to_struct(DiscountRead, discount)
