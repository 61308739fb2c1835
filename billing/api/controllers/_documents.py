"""HTTP for invoice and credit-note documents (PDF), and for one credit note as JSON."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.datastructures import ResponseHeader
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.params import PathParameter

from billing.api.controllers._shared import InvoiceId
from billing.api.schemas import CreditNoteRead
from billing.documents import service
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, to_struct
from tenants.api.guards import principal_of

CreditNoteId = Annotated[uuid.UUID, PathParameter(description="The credit note's id")]
PDF = service.PDF
PDF_HEADERS = [
    ResponseHeader(name=name, description=description, documentation_only=True)
    for name, description in (
        ("Content-Disposition", '`inline; filename="<number>.pdf"`'),
        ("ETag", "The SHA-256 of the PDF, quoted"),
        ("Cache-Control", "`private` (a draft's: `private, no-cache`)"),
    )
]
ERRORS: dict[int, ResponseSpec] = {
    **problem_responses(400, 401, 403, 404, 503),
    304: ResponseSpec(None, description="Not modified: `If-None-Match` names the PDF's ETag (no body)"),
}


@dataclass
class PdfOperation(Operation):
    """The 200 answer is the PDF's bytes: a binary string in OpenAPI."""

    def __post_init__(self) -> None:
        answer = (self.responses or {}).get("200")
        if isinstance(answer, OpenAPIResponse) and answer.content and PDF in answer.content:
            answer.content[PDF].schema = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)


def _pdf(request: Request[Any, Any, Any], pdf: service.PdfFile) -> Response[bytes]:
    etag = f'"{pdf.sha256}"'
    headers = {"ETag": etag, "Cache-Control": "private" if pdf.stored else "private, no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(b"", status_code=304, media_type=PDF, headers=headers)
    return Response(
        pdf.content,
        media_type=PDF,
        headers={"Content-Disposition": f'inline; filename="{pdf.filename}"', **headers},
    )


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether `If-None-Match` (a list of ETags, weak or strong, or `*`) names `etag` (RFC 9110: weak compare)."""
    if not if_none_match:
        return False
    asked = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in asked)


class DocumentController(Controller):
    tags = ["invoices"]
    security = BEARER

    @get(
        "/v1/invoices/{invoice_id:uuid}/pdf",
        media_type=PDF,
        operation_class=PdfOperation,
        response_headers=PDF_HEADERS,
        responses=ERRORS,
        description="The invoice as an A4 PDF, for whoever may read the invoice. A finalized invoice's document "
        "is rendered once and the same bytes are answered on every read; a draft is rendered each time, "
        "marked DRAFT.",
    )
    async def invoice_pdf(self, request: Request[Any, Any, Any], invoice_id: InvoiceId) -> Response[bytes]:
        return _pdf(request, await service.invoice_pdf(principal_of(request), invoice_id))

    @get("/v1/credit-notes/{credit_note_id:uuid}", responses=problem_responses(400, 401, 403, 404))
    async def get_credit_note(self, request: Request[Any, Any, Any], credit_note_id: CreditNoteId) -> CreditNoteRead:
        """One credit note, for whoever may read its invoice."""
        return to_struct(CreditNoteRead, await service.get_credit_note(principal_of(request), credit_note_id))

    @get(
        "/v1/credit-notes/{credit_note_id:uuid}/pdf",
        media_type=PDF,
        operation_class=PdfOperation,
        response_headers=PDF_HEADERS,
        responses=ERRORS,
        description="The credit note as an A4 PDF, rendered once and the same bytes on every read.",
    )
    async def credit_note_pdf(self, request: Request[Any, Any, Any], credit_note_id: CreditNoteId) -> Response[bytes]:
        return _pdf(request, await service.credit_note_pdf(principal_of(request), credit_note_id))
