"""Stored documents, and what a document needs to be drawn: the credit note with its invoice's number, the
credits the invoice's finalization applied, the tenant's name. Runs inside the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

from controlplane.core.db import fetch
from tenants.status import TenantStatus

Subject = Literal["invoice_id", "credit_note_id"]
ERASED = TenantStatus.PENDING_DELETION
NOTE_COLUMNS = "n.id, n.tenant_id, n.invoice_id, n.number, n.amount_minor, n.currency, n.reason, n.taxes, n.created_at"


async def stored(subject: Subject, subject_id: uuid.UUID) -> dict[str, Any] | None:
    """The stored document of an invoice or credit note: its sha256 and content."""
    rows = await fetch(f"select sha256, content from billing_documents where {subject} = {{}}", subject_id)
    return rows[0] if rows else None


async def store(
    tenant_id: uuid.UUID, subject: Subject, subject_id: uuid.UUID, sha256: str, content: bytes
) -> dict[str, Any] | None:
    """Keep the document unless one is kept already (two first reads raced): the one kept, either way. None,
    and nothing kept, when the tenant is being erased: its row is locked (shared) first, so an erasure either
    committed before (seen here) or waits for this transaction and then removes what it kept."""
    tenants = await fetch("select status from tenants where id = {} for share", tenant_id)
    if not tenants or tenants[0]["status"] == ERASED:
        return None
    await fetch(
        f"insert into billing_documents (tenant_id, {subject}, sha256, content, byte_size) "
        f"values ({{}}, {{}}, {{}}, {{}}, {{}}) on conflict ({subject}) do nothing",
        tenant_id,
        subject_id,
        sha256,
        content,
        len(content),
    )
    kept = await stored(subject, subject_id)
    assert kept is not None  # inserted now, or by the read that won the race (committed before ours went on)
    return kept


async def forget_tenant(tenant_id: uuid.UUID) -> int:
    """Remove the tenant's documents (its erasure: the database allows it only then)."""
    rows = await fetch("delete from billing_documents where tenant_id = {} returning id", tenant_id)
    return len(rows)


async def credits_applied_at_finalization(invoice_id: uuid.UUID) -> int:
    """What the wallet paid when the invoice was finalized (its `applied` movements; a later give-back is a
    `restored` movement of its own)."""
    rows = await fetch(
        "select coalesce(-sum(amount_minor), 0)::bigint as applied from credit_transactions "
        "where invoice_id = {} and kind = 'applied'",
        invoice_id,
    )
    return int(rows[0]["applied"])


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str | None
    erased: bool  # being erased (`pending_deletion`): nothing of it is stored any more


async def tenant(tenant_id: uuid.UUID) -> Tenant:
    rows = await fetch("select name, status from tenants where id = {}", tenant_id)
    if not rows:
        return Tenant(None, erased=False)
    return Tenant(str(rows[0]["name"]), erased=rows[0]["status"] == ERASED)


async def credit_note(credit_note_id: uuid.UUID) -> dict[str, Any] | None:
    """The credit note with its invoice's number and issue date."""
    rows = await fetch(
        f"select {NOTE_COLUMNS}, i.number as invoice_number, i.issued_at as invoice_issued_at "
        "from credit_notes n join invoices i on i.id = n.invoice_id where n.id = {}",
        credit_note_id,
    )
    return rows[0] if rows else None


async def credit_note_tenant(credit_note_id: uuid.UUID) -> uuid.UUID | None:
    """Which tenant a credit note belongs to (routing only: a system context, or the API key's tenant)."""
    rows = await fetch("select tenant_id from credit_notes where id = {}", credit_note_id)
    return rows[0]["tenant_id"] if rows else None
