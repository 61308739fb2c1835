"""Invoice and credit-note PDFs: who may read them, and rendering a final document once.

An issued invoice (finalized or paid) and every credit note (final when made) is rendered on its first read and
stored (billing_documents); every later read answers the stored bytes, so the document never changes even if
the renderer does. Two first reads racing store one document: the insert does nothing on conflict and both
answer the row kept. A draft is rendered on each read, marked DRAFT, and never stored; so is a void or
uncollectible invoice's document, marked VOID or UNCOLLECTIBLE (its stored document as issued stays as it is);
and so is every document of a tenant being erased (see `_drawn`).

The recipient is the tenant's name and its billing profile (decrypted through `tenants.service
.get_billing_profile` with the process's PII cipher, `tenants.billing_contact`); the issuer is the platform
(`PLATFORM_NAME`, `PLATFORM_ADDRESS`), set once per process by `configure(settings)`.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from billing.access import tenant_of
from billing.documents import layout, renderer, repository
from billing.errors import CreditNoteNotFound, InvoiceNotFound
from billing.invoices import repository as invoices_repository
from billing.invoices.totals import amount_due
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.settings import Settings
from tenants import billing_contact
from tenants.roles import Permission
from tenants.service import get_billing_profile, tenant_for_resource

PDF = "application/pdf"
# Renders at once per process (its event loop): each holds a worker thread, up to a second for a name in a
# script whose font is cut for the first time, so a flood of draft reads waits its turn here instead of taking
# every thread of the pool that the rest of the application shares.
RENDERS_AT_ONCE = 2
_render_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

if TYPE_CHECKING:
    from billing.invoices.service import CreditNoteView


def _invoices() -> Any:
    """billing.invoices.service, imported when first used, through billing's façade: it cannot be the first of
    billing's services imported (it and billing.addons.service import each other; `billing.service` imports them
    in an order that works), and this module may be the first (a worker attaching a PDF, `bench/invoice_pdf.py`)."""
    import billing.service  # noqa: F401
    from billing.invoices import service

    return service


@dataclass(frozen=True, slots=True)
class PdfFile:
    filename: str
    content: bytes
    sha256: str
    stored: bool = True  # False: rendered for this read only (a draft, a void invoice, an erased tenant's)


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    address: tuple[str, ...]


_platform: Platform | None = None


def configure(settings: Settings) -> None:
    """The platform that issues the documents (create_app calls it; a worker that renders calls it too)."""
    global _platform
    _platform = Platform(settings.platform_name, settings.platform_address)


def _issuer() -> layout.Party:
    if _platform is None:
        raise RuntimeError("no platform: billing.documents.service.configure(settings) is called at startup")
    return layout.Party(_platform.name, _platform.address)


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


async def _render(document: layout.Document) -> bytes:
    """The document's PDF, drawn in a worker thread once one of the process's render slots is free."""
    loop = asyncio.get_running_loop()
    slots = _render_slots.get(loop)
    if slots is None:
        slots = _render_slots[loop] = asyncio.Semaphore(RENDERS_AT_ONCE)
    async with slots:
        return await asyncio.to_thread(renderer.render, document)


# -- invoices -------------------------------------------------------------------------------------------------


async def invoice_pdf(actor: Principal, invoice_id: uuid.UUID) -> PdfFile:
    """The invoice's PDF for whoever may read the invoice (as `GET /v1/invoices/{id}`: another tenant's
    invoice is not found)."""
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.READ_BILLING, "GET")
    return await _invoice_pdf(tenant_id, invoice_id)


async def invoice_pdf_for_attachment(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> tuple[str, str, bytes]:
    """The invoice's PDF as `(filename, content type, bytes)`, with no principal: the provider of the
    `invoice.finalized` email's attachment (`tenants.notifications.attachments`). Opens its own tenant
    transactions, so call it outside one. The process must have called `configure(settings)` and
    `tenants.billing_contact.use(cipher)` (create_app and the notification task do both). A finalized invoice
    gives its stored document (stored now if this is its first read); InvoiceNotFound when the tenant has no
    such invoice."""
    pdf = await _invoice_pdf(tenant_id, invoice_id)
    return pdf.filename, PDF, pdf.content


async def render_invoice(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> bytes:
    """The invoice's PDF rendered now from the database, whether or not one is stored, and not stored: to check
    that a stored document is what rendering gives (`bench/invoice_pdf.py`, the tests)."""
    return (await _invoice_pdf(tenant_id, invoice_id, use_store=False)).content


async def _invoice_pdf(tenant_id: uuid.UUID, invoice_id: uuid.UUID, *, use_store: bool = True) -> PdfFile:
    async with tenant_tx(tenant_id):
        row = await invoices_repository.get_invoice(invoice_id)
        if row is None:
            raise InvoiceNotFound()
        issued = row["number"] is not None
        # The document as issued is stored; a void or uncollectible invoice's is that one marked, drawn each time.
        storable = issued and row["status"] not in layout.MARKS
        if use_store and storable and (kept := await repository.stored("invoice_id", invoice_id)) is not None:
            return PdfFile(layout.safe_filename(row["number"]), bytes(kept["content"]), kept["sha256"])
        lines = (await invoices_repository.invoice_lines([invoice_id]))[invoice_id]
        credits = await repository.credits_applied_at_finalization(invoice_id) if issued else 0
        tenant = await repository.tenant(tenant_id)
    facts = _invoice_facts(row, lines, credits)
    return await _drawn(
        tenant_id,
        ("invoice_id", invoice_id) if use_store and storable else None,
        tenant,
        lambda recipient: layout.invoice_document(facts, _issuer(), recipient),
    )


async def _drawn(
    tenant_id: uuid.UUID,
    subject: tuple[repository.Subject, uuid.UUID] | None,
    tenant: repository.Tenant,
    draw: Callable[[layout.Party], layout.Document],
) -> PdfFile:
    """The document drawn for the recipient as it is now, and stored as `subject` (None: not stored). Nothing
    is stored while the tenant is being erased: if its erasure committed between the profile's read and the
    store, what was read may be gone, so the document is drawn again from what is left, for this read only."""
    document = draw(await _recipient(tenant_id, tenant.name))
    content = await _render(document)
    if subject is None or tenant.erased:
        return PdfFile(document.filename, content, _digest(content), stored=False)
    async with tenant_tx(tenant_id):
        kept = await repository.store(tenant_id, *subject, _digest(content), content)
    if kept is not None:
        return PdfFile(document.filename, bytes(kept["content"]), kept["sha256"])
    document = draw(await _recipient(tenant_id, tenant.name))
    content = await _render(document)
    return PdfFile(document.filename, content, _digest(content), stored=False)


def _invoice_facts(row: dict[str, Any], lines: list[dict[str, Any]], credits_applied: int) -> layout.InvoiceFacts:
    """The invoice as issued: the credits its finalization applied and what was due then (a draft: none, its
    total)."""
    return layout.InvoiceFacts(
        id=str(row["id"]),
        number=row["number"],
        kind=row["kind"],
        currency=row["currency"],
        period_start=row["period_start"],
        period_end=row["period_end"],
        issued_at=row["issued_at"],
        status=row["status"],
        subtotal_minor=row["subtotal_minor"],
        discount_minor=row["discount_minor"],
        taxes=tuple(_tax(tax) for tax in _invoices().invoice_taxes(row)),
        total_minor=row["total_minor"],
        credits_applied_minor=credits_applied,
        amount_due_minor=amount_due(row["total_minor"], 0, 0, credits_applied),
        lines=tuple(
            layout.LineFacts(
                description=line["description"],
                charge_kind=line["charge_kind"],
                quantity=Decimal(line["quantity"]),
                unit_amount_minor=Decimal(line["unit_amount_minor"]),
                amount_minor=line["amount_minor"],
                period_start=line["period_start"],
                period_end=line["period_end"],
            )
            for line in lines
        ),
    )


def _tax(tax: Any) -> layout.TaxFigure:
    return layout.TaxFigure(tax.code, tax.name, tax.rate_bps, tax.amount_minor)


async def _recipient(tenant_id: uuid.UUID, name: str | None) -> layout.Party:
    """The tenant's name and billing profile (an OpenBao outage is its 503)."""
    profile = await get_billing_profile(billing_contact.cipher(), tenant_id)
    address = profile.address
    lines = layout.address_lines(
        contact_name=profile.contact_name,
        line1=address.line1 if address else None,
        line2=address.line2 if address else None,
        postal_code=address.postal_code if address else None,
        city=address.city if address else None,
        region=address.region if address else None,
        country=address.country if address else None,
        tax_id=profile.tax_id,
    )
    return layout.Party(name or "", lines)


# -- credit notes ---------------------------------------------------------------------------------------------


async def _credit_note_tenant(actor: Principal, credit_note_id: uuid.UUID) -> uuid.UUID:
    return await tenant_for_resource(
        actor,
        lambda: repository.credit_note_tenant(credit_note_id),
        CreditNoteNotFound,
        Permission.READ_BILLING,
        "GET",
    )


async def get_credit_note(actor: Principal, credit_note_id: uuid.UUID) -> CreditNoteView:
    """One credit note, for whoever may read its invoice."""
    tenant_id = await _credit_note_tenant(actor, credit_note_id)
    async with tenant_tx(tenant_id):
        row = await repository.credit_note(credit_note_id)
    if row is None:
        raise CreditNoteNotFound()
    view: CreditNoteView = _invoices().credit_note_view(row)
    return view


async def credit_note_pdf(actor: Principal, credit_note_id: uuid.UUID) -> PdfFile:
    """The credit note's PDF: rendered on its first read, stored, and the same bytes after."""
    tenant_id = await _credit_note_tenant(actor, credit_note_id)
    async with tenant_tx(tenant_id):
        row = await repository.credit_note(credit_note_id)
        if row is None:
            raise CreditNoteNotFound()
        number = row["number"]
        if (kept := await repository.stored("credit_note_id", credit_note_id)) is not None:
            return PdfFile(layout.safe_filename(number), bytes(kept["content"]), kept["sha256"])
        tenant = await repository.tenant(tenant_id)
    facts = layout.CreditNoteFacts(
        id=str(row["id"]),
        number=number,
        invoice_number=row["invoice_number"],
        invoice_issued_at=row["invoice_issued_at"],
        currency=row["currency"],
        amount_minor=row["amount_minor"],
        reason=row["reason"],
        taxes=tuple(_tax(tax) for tax in _invoices().taxes_of(row)),
        created_at=row["created_at"],
    )
    return await _drawn(
        tenant_id,
        ("credit_note_id", credit_note_id),
        tenant,
        lambda recipient: layout.credit_note_document(facts, _issuer(), recipient),
    )


# -- erasure --------------------------------------------------------------------------------------------------


async def forget_for_erased_tenant(tenant_id: uuid.UUID, now: datetime) -> None:
    """A tenants.hooks `on_tenant_erased` callback, inside the erasure's tenant transaction: the stored
    documents carry the tenant's billing address and contact, which the erasure removes; the invoices stay,
    and a document asked for again is drawn from what is left. Idempotent."""
    await repository.forget_tenant(tenant_id)
