"""HTTP for invoices, payments of them, refunds and credit notes."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get
from litestar.params import JSONBody

from billing import service
from billing.api.controllers._shared import ById, InvoiceId, gateway
from billing.api.schemas import (
    CreditNoteCreate,
    CreditNoteRead,
    InvoicePage,
    InvoiceRead,
    OneOffInvoiceCreate,
    PaymentRead,
    RefundCreate,
    RefundRead,
    invoice_read,
)
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, IDEMPOTENCY_ERRORS, Cursor, Limit, TenantId, idempotent_post, to_struct
from tenants.api.guards import allow, principal_of
from tenants.roles import Permission


class InvoiceController(Controller):
    tags = ["invoices"]
    security = BEARER

    @get("/v1/tenants/{tenant_id:uuid}/invoices", **allow(Permission.READ_BILLING, 422))
    async def list_invoices(self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None) -> InvoicePage:
        page = await service.list_invoices(tenant_id, PageRequest.parse(limit, cursor))
        return InvoicePage(items=[invoice_read(invoice) for invoice in page.items], next_cursor=page.next_cursor)

    @idempotent_post(
        "/v1/tenants/{tenant_id:uuid}/invoices",
        status_code=201,
        **allow(Permission.STAFF_ONLY, 409, 413, 422, *IDEMPOTENCY_ERRORS),
    )
    async def create_one_off_invoice(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[OneOffInvoiceCreate]
    ) -> InvoiceRead:
        """Staff: bill the tenant for something outside its subscription (kind `one_off`), taxed with its rates."""
        items = [service.OneOffLine(line.description, line.quantity, line.unit_amount_minor) for line in data.lines]
        invoice = await service.create_one_off_invoice(
            principal_of(request), tenant_id, data.currency, items, finalize_now=data.finalize
        )
        return invoice_read(invoice)

    @idempotent_post(
        "/v1/invoices/{invoice_id:uuid}/finalize", status_code=200, responses=problem_responses(409, *ById)
    )
    async def finalize_invoice(self, request: Request[Any, Any, Any], invoice_id: InvoiceId) -> InvoiceRead:
        """Staff: number and book a draft now; an invoice already finalized is answered unchanged."""
        return invoice_read(await service.finalize_invoice(principal_of(request), invoice_id))

    @get("/v1/tenants/{tenant_id:uuid}/invoices/upcoming", **allow(Permission.READ_BILLING))
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
        payment = await service.pay_invoice(gateway(request), principal_of(request), invoice_id)
        return to_struct(PaymentRead, payment)

    @idempotent_post(
        "/v1/invoices/{invoice_id:uuid}/refunds", status_code=201, responses=problem_responses(413, 422, 503, *ById)
    )
    async def refund_invoice(
        self, request: Request[Any, Any, Any], invoice_id: InvoiceId, data: JSONBody[RefundCreate]
    ) -> RefundRead:
        """Staff: give back part or all of what was paid (a Stripe refund and a credit note)."""
        refund = await service.refund_invoice(
            gateway(request), principal_of(request), invoice_id, data.amount_minor, data.reason
        )
        return to_struct(RefundRead, refund)

    @get("/v1/invoices/{invoice_id:uuid}/credit-notes", responses=problem_responses(400, 401, 403, 404))
    async def list_credit_notes(self, request: Request[Any, Any, Any], invoice_id: InvoiceId) -> list[CreditNoteRead]:
        notes = await service.list_credit_notes(principal_of(request), invoice_id)
        return [to_struct(CreditNoteRead, note) for note in notes]
