"""HTTP for the billing domain. Thin: parse, call the service, shape."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import UNSET, structs

from billing import service, usage
from billing.api.schemas import (
    CreditNoteCreate,
    CreditNoteRead,
    EscrowCreate,
    EscrowRead,
    InvoicePage,
    InvoiceRead,
    MetricCreate,
    MetricPage,
    MetricRead,
    MilestoneReject,
    MilestoneResolve,
    PaymentMethodCreate,
    PaymentMethodPage,
    PaymentMethodRead,
    PaymentRead,
    PlanCreate,
    PlanPage,
    PlanRead,
    RefundCreate,
    RefundRead,
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionCreate,
    SubscriptionPage,
    SubscriptionRead,
    UsageRead,
    UsageReply,
    escrow_read,
    invoice_read,
    payment_method_read,
    plan_read,
    usage_read,
)
from billing.errors import BillingInvalid
from billing.escrow import Action
from billing.usage import MAX_BATCH
from controlplane.auth.guards import principal_of, staff_only
from controlplane.errors import problem_responses
from controlplane.idempotency_middleware import IDEMPOTENCY_ERRORS
from controlplane.openapi import IdempotentOperation
from controlplane.pagination import PageRequest
from tenants.api.controllers import BEARER, Cursor, Limit, TenantId, _allow, idempotent_post
from tenants.api.schemas import to_struct
from tenants.roles import Permission

SubscriptionId = Annotated[uuid.UUID, PathParameter(description="The subscription's id")]
InvoiceId = Annotated[uuid.UUID, PathParameter(description="The invoice's id")]
ById = problem_responses(400, 401, 403, 404, 409, *IDEMPOTENCY_ERRORS)


class BatchTooLarge(BillingInvalid):
    code = "batch_too_large"
    title = f"A usage batch holds at most {MAX_BATCH} events"


class InvalidUsageBatch(BillingInvalid):
    code = "invalid_usage_batch"
    title = 'The body must be {"events": [...]} with an optional tenant_id'


def _created_or_stored(read: type[Any]) -> dict[int, ResponseSpec]:
    """`responses=` of a catalogue POST: 201 for a new definition, 200 for a repeat of a stored one."""
    errors = problem_responses(401, 403, 404, 409, 413, 422, *IDEMPOTENCY_ERRORS)
    return {**errors, 200: ResponseSpec(read, description="The same definition was stored before; here it is")}


@dataclass
class UsageOperation(IdempotentOperation):
    """POST /v1/usage reads its body by hand (one event at a time); this documents what it reads."""

    def __post_init__(self) -> None:
        super().__post_init__()
        event = Schema(
            type=OpenAPIType.OBJECT,
            required=["idempotency_key", "metric_code", "timestamp"],
            properties={
                "idempotency_key": Schema(type=OpenAPIType.STRING, min_length=1, max_length=255),
                "metric_code": Schema(type=OpenAPIType.STRING, min_length=1, max_length=63),
                "timestamp": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
                "value": Schema(one_of=[Schema(type=OpenAPIType.NUMBER, minimum=0), Schema(type=OpenAPIType.STRING)]),
                "properties": Schema(type=OpenAPIType.OBJECT),
            },
            additional_properties=False,
        )
        batch = Schema(
            type=OpenAPIType.OBJECT,
            required=["events"],
            properties={
                "events": Schema(type=OpenAPIType.ARRAY, items=event, max_items=MAX_BATCH),
                "tenant_id": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID),
            },
            additional_properties=False,
        )
        self.request_body = RequestBody(content={"application/json": OpenAPIMediaType(schema=batch)}, required=True)


@dataclass
class StripeEventOperation(Operation):
    """POST /v1/webhooks/stripe reads its raw body (the signature covers the exact bytes)."""

    def __post_init__(self) -> None:
        event = Schema(
            type=OpenAPIType.OBJECT,
            required=["id", "type", "data"],
            properties={
                "id": Schema(type=OpenAPIType.STRING),
                "type": Schema(type=OpenAPIType.STRING),
                "data": Schema(type=OpenAPIType.OBJECT),
            },
        )
        self.request_body = RequestBody(content={"application/json": OpenAPIMediaType(schema=event)}, required=True)


def _created(body: Any, created: bool) -> Response[Any]:
    # A repeated definition answers 200 with what is stored; a new one 201.
    return Response(body, status_code=201 if created else 200)


class MetricController(Controller):
    path = "/v1/metrics"
    tags = ["catalogue"]
    security = BEARER
    guards = [staff_only]

    @idempotent_post("/", status_code=201, responses=_created_or_stored(MetricRead))
    async def create_metric(self, data: JSONBody[MetricCreate]) -> Response[MetricRead]:
        row, created = await service.create_metric(structs.asdict(data))
        return _created(to_struct(MetricRead, row), created)

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def list_metrics(self, limit: Limit = None, cursor: Cursor = None) -> MetricPage:
        rows, next_cursor = await service.list_metrics(PageRequest.parse(limit, cursor))
        return MetricPage(items=[to_struct(MetricRead, row) for row in rows], next_cursor=next_cursor)


class PlanController(Controller):
    path = "/v1/plans"
    tags = ["catalogue"]
    security = BEARER

    @idempotent_post("/", guards=[staff_only], status_code=201, responses=_created_or_stored(PlanRead))
    async def create_plan(self, data: JSONBody[PlanCreate]) -> Response[PlanRead]:
        values = structs.asdict(data)
        values["proration"] = structs.asdict(data.proration) if data.proration else None
        row, created = await service.create_plan(values)
        return _created(plan_read(row), created)

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


class TenantSubscriptionController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/subscriptions"
    tags = ["subscriptions"]
    security = BEARER

    @idempotent_post("/", status_code=201, **_allow(Permission.MANAGE_BILLING, 409, 422, *IDEMPOTENCY_ERRORS))
    async def create_subscription(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[SubscriptionCreate]
    ) -> SubscriptionRead:
        row = await service.create_subscription(principal_of(request), tenant_id, structs.asdict(data))
        return to_struct(SubscriptionRead, row)

    @get("/", **_allow(Permission.READ_BILLING, 422))
    async def list_subscriptions(
        self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> SubscriptionPage:
        rows, next_cursor = await service.list_subscriptions(tenant_id, PageRequest.parse(limit, cursor))
        return SubscriptionPage(items=[to_struct(SubscriptionRead, row) for row in rows], next_cursor=next_cursor)


class SubscriptionController(Controller):
    """Subscriptions by id: the service finds the owning tenant and authorizes there."""

    path = "/v1/subscriptions/{subscription_id:uuid}"
    tags = ["subscriptions"]
    security = BEARER

    @get("/", responses=problem_responses(400, 401, 403, 404))
    async def get_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> SubscriptionRead:
        return to_struct(SubscriptionRead, await service.get_subscription(principal_of(request), subscription_id))

    @idempotent_post("/change", status_code=200, responses=problem_responses(413, 422, *ById))
    async def change_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId, data: JSONBody[SubscriptionChange]
    ) -> SubscriptionRead:
        values = {name: value for name, value in structs.asdict(data).items() if value is not UNSET}
        row = await service.change_subscription(principal_of(request), subscription_id, values)
        return to_struct(SubscriptionRead, row)

    @idempotent_post("/cancel", status_code=200, responses=problem_responses(422, *ById))
    async def cancel_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId, data: JSONBody[SubscriptionCancel]
    ) -> SubscriptionRead:
        row = await service.cancel_subscription(principal_of(request), subscription_id, data.at_period_end)
        return to_struct(SubscriptionRead, row)

    @idempotent_post("/resume", status_code=200, responses=ById)
    async def resume_subscription(
        self, request: Request[Any, Any, Any], subscription_id: SubscriptionId
    ) -> SubscriptionRead:
        return to_struct(SubscriptionRead, await service.resume_subscription(principal_of(request), subscription_id))


class UsageController(Controller):
    tags = ["usage"]
    security = BEARER

    @post(
        "/v1/usage",
        status_code=200,
        operation_class=UsageOperation,
        responses=problem_responses(400, 401, 403, 404, 413, 422, *IDEMPOTENCY_ERRORS),
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
        return msgspec.convert(await service.ingest(principal, tenant_id, events), UsageReply)

    @get("/v1/tenants/{tenant_id:uuid}/usage", **_allow(Permission.READ_BILLING))
    async def current_usage(
        self,
        tenant_id: TenantId,
        metric_code: Annotated[str | None, QueryParameter(max_length=63, required=False)] = None,
    ) -> UsageRead:
        return usage_read(await service.current_usage(tenant_id, metric_code))


def _gateway(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.payments


class PaymentMethodController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/payment-methods"
    tags = ["payments"]
    security = BEARER

    @idempotent_post("/", status_code=201, **_allow(Permission.MANAGE_BILLING, 413, 422, 503, *IDEMPOTENCY_ERRORS))
    async def add_payment_method(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[PaymentMethodCreate]
    ) -> PaymentMethodRead:
        row = await service.add_payment_method(
            _gateway(request), principal_of(request), tenant_id, data.stripe_payment_method_id, data.default
        )
        return payment_method_read(row)

    @get("/", **_allow(Permission.READ_BILLING, 422))
    async def list_payment_methods(
        self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> PaymentMethodPage:
        rows, next_cursor = await service.list_payment_methods(tenant_id, PageRequest.parse(limit, cursor))
        return PaymentMethodPage(items=[payment_method_read(row) for row in rows], next_cursor=next_cursor)


class InvoiceController(Controller):
    tags = ["invoices"]
    security = BEARER

    @get("/v1/tenants/{tenant_id:uuid}/invoices", **_allow(Permission.READ_BILLING, 422))
    async def list_invoices(self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None) -> InvoicePage:
        rows, next_cursor = await service.list_invoices(tenant_id, PageRequest.parse(limit, cursor))
        return InvoicePage(items=[invoice_read(row) for row in rows], next_cursor=next_cursor)

    @get("/v1/tenants/{tenant_id:uuid}/invoices/upcoming", **_allow(Permission.READ_BILLING))
    async def upcoming_invoice(self, tenant_id: TenantId) -> InvoiceRead:
        return invoice_read(await service.upcoming_invoice(tenant_id))

    @get("/v1/invoices/{invoice_id:uuid}", responses=problem_responses(400, 401, 403, 404))
    async def get_invoice(self, request: Request[Any, Any, Any], invoice_id: InvoiceId) -> InvoiceRead:
        return invoice_read(await service.get_invoice(principal_of(request), invoice_id))

    @idempotent_post("/v1/invoices/{invoice_id:uuid}/void", status_code=200, responses=ById)
    async def void_invoice(self, request: Request[Any, Any, Any], invoice_id: InvoiceId) -> InvoiceRead:
        return invoice_read(await service.void_invoice(principal_of(request), invoice_id))

    @idempotent_post(
        "/v1/invoices/{invoice_id:uuid}/credit-notes", status_code=201, responses=problem_responses(413, 422, *ById)
    )
    async def credit_invoice(
        self, request: Request[Any, Any, Any], invoice_id: InvoiceId, data: JSONBody[CreditNoteCreate]
    ) -> CreditNoteRead:
        note = await service.credit_invoice(principal_of(request), invoice_id, data.amount_minor, data.reason)
        return to_struct(CreditNoteRead, note)

    @idempotent_post("/v1/invoices/{invoice_id:uuid}/pay", status_code=200, responses=problem_responses(503, *ById))
    async def pay_invoice(self, request: Request[Any, Any, Any], invoice_id: InvoiceId) -> PaymentRead:
        """Collect the amount due now with the default card: the payment, succeeded or failed with its
        decline code."""
        payment = await service.pay_invoice(_gateway(request), principal_of(request), invoice_id)
        return to_struct(PaymentRead, payment)

    @idempotent_post(
        "/v1/invoices/{invoice_id:uuid}/refunds", status_code=201, responses=problem_responses(413, 422, 503, *ById)
    )
    async def refund_invoice(
        self, request: Request[Any, Any, Any], invoice_id: InvoiceId, data: JSONBody[RefundCreate]
    ) -> RefundRead:
        """Staff: give back part or all of what was paid (a Stripe refund and a credit note)."""
        refund = await service.refund_invoice(
            _gateway(request), principal_of(request), invoice_id, data.amount_minor, data.reason
        )
        return to_struct(RefundRead, refund)

    @get("/v1/invoices/{invoice_id:uuid}/credit-notes", responses=problem_responses(400, 401, 403, 404))
    async def list_credit_notes(self, request: Request[Any, Any, Any], invoice_id: InvoiceId) -> list[CreditNoteRead]:
        notes = await service.list_credit_notes(principal_of(request), invoice_id)
        return [to_struct(CreditNoteRead, note) for note in notes]


EscrowId = Annotated[uuid.UUID, PathParameter(description="The escrow agreement's id")]
MilestoneId = Annotated[uuid.UUID, PathParameter(description="The milestone's id")]
EscrowErrors = problem_responses(402, 413, 422, 503, *ById)
MILESTONE = "/{escrow_id:uuid}/milestones/{milestone_id:uuid}"
Req = Request[Any, Any, Any]


class EscrowController(Controller):
    """Escrow for service payments between a tenant (payer) and a payee. The agreement's tenant is found
    from its id and the principal authorized there."""

    path = "/v1/escrows"
    tags = ["escrow"]
    security = BEARER

    @idempotent_post(
        "/", status_code=201, responses=problem_responses(400, 401, 403, 404, 413, 422, *IDEMPOTENCY_ERRORS)
    )
    async def create_escrow(self, request: Request[Any, Any, Any], data: JSONBody[EscrowCreate]) -> EscrowRead:
        values = structs.asdict(data)
        values["payee_type"], values["payee_id"] = data.payee.type, data.payee.id
        values["milestones"] = [structs.asdict(m) for m in data.milestones]
        return escrow_read(await service.create_escrow(principal_of(request), values))

    @get("/{escrow_id:uuid}", responses=problem_responses(400, 401, 403, 404))
    async def get_escrow(self, request: Request[Any, Any, Any], escrow_id: EscrowId) -> EscrowRead:
        return escrow_read(await service.get_escrow(principal_of(request), escrow_id))

    @idempotent_post("/{escrow_id:uuid}/fund", status_code=200, responses=EscrowErrors)
    async def fund_escrow(self, request: Request[Any, Any, Any], escrow_id: EscrowId) -> EscrowRead:
        """Charge the whole amount to the payer's default card and hold it."""
        return escrow_read(await service.fund_escrow(_gateway(request), principal_of(request), escrow_id))

    @idempotent_post("/{escrow_id:uuid}/cancel", status_code=200, responses=EscrowErrors)
    async def cancel_escrow(self, request: Request[Any, Any, Any], escrow_id: EscrowId) -> EscrowRead:
        """Refund every milestone not yet released."""
        return escrow_read(await service.cancel_escrow(_gateway(request), principal_of(request), escrow_id))

    @idempotent_post(f"{MILESTONE}/submit", status_code=200, responses=EscrowErrors)
    async def submit(self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId) -> EscrowRead:
        """The payee delivered (platform staff on the payee's behalf until payees have accounts)."""
        return await _step(request, escrow_id, milestone_id, Action.SUBMIT)

    @idempotent_post(f"{MILESTONE}/accept", status_code=200, responses=EscrowErrors)
    async def accept(self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId) -> EscrowRead:
        """The payer accepts: the milestone's amount is released to the payee."""
        return await _step(request, escrow_id, milestone_id, Action.ACCEPT)

    @idempotent_post(f"{MILESTONE}/reject", status_code=200, responses=EscrowErrors)
    async def reject(
        self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId, data: JSONBody[MilestoneReject]
    ) -> EscrowRead:
        """The payer rejects with a reason: the milestone is disputed until platform staff resolve it."""
        return await _step(request, escrow_id, milestone_id, Action.REJECT, reason=data.reason)

    @idempotent_post(f"{MILESTONE}/resolve", status_code=200, responses=EscrowErrors)
    async def resolve(
        self, request: Req, escrow_id: EscrowId, milestone_id: MilestoneId, data: JSONBody[MilestoneResolve]
    ) -> EscrowRead:
        """Staff: release, refund, or split a disputed milestone (`release_minor` to the payee, the rest back)."""
        return await _step(
            request,
            escrow_id,
            milestone_id,
            Action.RESOLVE,
            outcome=data.outcome,
            release_minor=data.release_minor or 0,
        )


async def _step(
    request: Req, escrow_id: uuid.UUID, milestone_id: uuid.UUID, action: Action, **options: Any
) -> EscrowRead:
    row = await service.milestone_step(
        _gateway(request), principal_of(request), escrow_id, milestone_id, action, **options
    )
    return escrow_read(row)


class StripeWebhookController(Controller):
    tags = ["payments"]

    @post(
        "/v1/webhooks/stripe",
        exclude_from_auth=True,
        status_code=200,
        operation_class=StripeEventOperation,
        responses=problem_responses(400),
    )
    async def receive(self, request: Request[Any, Any, Any]) -> dict[str, str]:
        """Stripe's events, verified by `Stripe-Signature` (at most 5 minutes old). A repeated event is
        acknowledged and changes nothing."""
        result = await service.receive_stripe_event(
            await request.body(), request.headers.get("stripe-signature"), request.app.state.stripe_webhook_secret
        )
        return {"result": result}
