"""Stored documents in the database itself: never updated, removed only by their tenant's erasure (they carry its
billing address and contact), their digest checked against their bytes, one subject each, and confined to their
tenant by row-level security."""

from __future__ import annotations

import hashlib
import importlib
import uuid
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from billing.documents import service as documents
from tests.factories import Factory

numbering = importlib.import_module("billing.piccolo_migrations.billing_2026_12_04t03_10_00_000000")

PROFILE = {"contact_name": "Jane Roe", "address": {"line1": "Geheimweg 7", "city": "Berlin", "country": "DE"}}


async def _stored_invoice(client: AsyncClient, factory: Factory) -> tuple[Any, dict[str, Any], uuid.UUID]:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    put = await client.put(f"/v1/tenants/{tenant['id']}/billing-profile", json=PROFILE, headers=staff.headers)
    assert put.status_code == 200, put.text
    created = await client.post(
        f"/v1/tenants/{tenant['id']}/invoices",
        json={"currency": "EUR", "lines": [{"description": "Setup", "quantity": 1, "unit_amount_minor": 5000}]},
        headers=staff.headers,
    )
    assert created.status_code == 201, created.text
    tenant_id = uuid.UUID(tenant["id"])
    _, _, content = await documents.invoice_pdf_for_attachment(tenant_id, uuid.UUID(created.json()["id"]))
    assert b"%PDF" in content[:8]
    return staff, created.json(), tenant_id


async def _as_tenant(connection: asyncpg.Connection, tenant_id: uuid.UUID, sql: str, *args: Any) -> Any:
    async with connection.transaction():
        await connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
        return await connection.fetch(sql, *args)


REWRITE = "update billing_documents set content = 'x'::bytea, sha256 = encode(sha256('x'::bytea), 'hex'), byte_size = 1"


async def test_a_stored_document_never_changes_and_stays_while_its_tenant_lives(
    client: AsyncClient,
    factory: Factory,
    app_connection: asyncpg.Connection,
    owner_connection: asyncpg.Connection,
) -> None:
    _, invoice, tenant_id = await _stored_invoice(client, factory)
    # The app role may not update at all; even the owner, who may, is refused by the trigger.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await _as_tenant(app_connection, tenant_id, REWRITE)
    with pytest.raises(asyncpg.CheckViolationError, match="never changes"):
        await owner_connection.execute(REWRITE)
    with pytest.raises(asyncpg.CheckViolationError, match="only by its tenant's erasure"):
        await _as_tenant(app_connection, tenant_id, "delete from billing_documents")
    with pytest.raises(asyncpg.CheckViolationError, match="only by its tenant's erasure"):
        await owner_connection.execute("delete from billing_documents")
    rows = await _as_tenant(app_connection, tenant_id, "select invoice_id from billing_documents")
    assert [row["invoice_id"] for row in rows] == [uuid.UUID(invoice["id"])]
    # Another tenant's context sees none of it.
    assert await _as_tenant(app_connection, uuid.uuid4(), "select 1 from billing_documents") == []


@pytest.mark.parametrize(
    ("values", "constraint"),
    [
        ("$2, null, encode(sha256('%PDF'::bytea), 'hex'), '%PDF'::bytea, 3", "billing_documents_size"),
        ("$2, null, repeat('0', 64), '%PDF'::bytea, 4", "billing_documents_digest"),
        ("null, null, encode(sha256('%PDF'::bytea), 'hex'), '%PDF'::bytea, 4", "billing_documents_one_subject"),
        ("$2, null, encode(sha256('%PDF'::bytea), 'hex'), '%PDF'::bytea, 4", "billing_documents_invoice_once"),
    ],
)
async def test_the_database_checks_each_documents_bytes_and_subject(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection, values: str, constraint: str
) -> None:
    _, invoice, tenant_id = await _stored_invoice(client, factory)
    with pytest.raises((asyncpg.CheckViolationError, asyncpg.UniqueViolationError)) as raised:
        await _as_tenant(
            app_connection,
            tenant_id,
            # The values are this module's constants.
            f"insert into billing_documents (tenant_id, invoice_id, credit_note_id, sha256, content, byte_size) values ($1, {values})",  # noqa: S608, E501
            tenant_id,
            *([uuid.UUID(invoice["id"])] if "$2" in values else []),
        )
    assert raised.value.constraint_name == constraint


async def test_the_erasure_removes_the_documents_and_keeps_the_invoices(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection
) -> None:
    """A stored document carries the billing address the erasure removes: it goes with it; the invoice stays,
    and its document drawn again has no address left."""
    staff, invoice, tenant_id = await _stored_invoice(client, factory)
    first = await client.get(f"/v1/invoices/{invoice['id']}/pdf", headers=staff.headers)
    assert first.status_code == 200
    erased = await client.delete(f"/v1/tenants/{tenant_id}", headers=staff.headers)
    assert erased.status_code == 202, erased.text
    assert await _as_tenant(app_connection, tenant_id, "select 1 from billing_documents") == []
    again = await client.get(f"/v1/invoices/{invoice['id']}/pdf", headers=staff.headers)
    assert again.status_code == 200, again.text
    assert again.content != first.content
    assert hashlib.sha256(again.content).hexdigest() != hashlib.sha256(first.content).hexdigest()
    from tests.api.billing.test_documents import pdf_text

    assert "Geheimweg 7" in pdf_text(first.content) and "Geheimweg 7" not in pdf_text(again.content)
    assert invoice["number"] in pdf_text(again.content)


async def test_an_erasure_during_a_first_render_leaves_no_erased_address_behind(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first read of an invoice's PDF reads the billing profile, renders (a second for a CJK name), then
    stores. An erasure that commits in between removed the stored documents before this one was stored, so the
    erased address was kept. The store now locks the tenant's row and stores nothing of a tenant being erased;
    the reader gets the document drawn again from what is left."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    tenant_id = uuid.UUID(tenant["id"])
    put = await client.put(f"/v1/tenants/{tenant_id}/billing-profile", json=PROFILE, headers=staff.headers)
    assert put.status_code == 200, put.text
    created = await client.post(
        f"/v1/tenants/{tenant_id}/invoices",
        json={"currency": "EUR", "lines": [{"description": "Setup", "quantity": 1, "unit_amount_minor": 5000}]},
        headers=staff.headers,
    )
    assert created.status_code == 201, created.text
    read_profile = documents._recipient
    erasures = []

    async def profile_then_erasure(tenant: uuid.UUID, name: str | None) -> Any:
        recipient = await read_profile(tenant, name)
        if not erasures:  # once: between this read of the profile and the store
            erasures.append(await client.delete(f"/v1/tenants/{tenant}", headers=staff.headers))
        return recipient

    monkeypatch.setattr(documents, "_recipient", profile_then_erasure)
    response = await client.get(f"/v1/invoices/{created.json()['id']}/pdf", headers=staff.headers)
    assert [erased.status_code for erased in erasures] == [202]
    assert response.status_code == 200, response.text
    from tests.api.billing.test_documents import pdf_text

    text = pdf_text(response.content)
    assert created.json()["number"] in text and "Geheimweg 7" not in text
    assert await _as_tenant(app_connection, tenant_id, "select 1 from billing_documents") == []
    assert response.headers["cache-control"] == "private, no-cache"  # not stored: drawn on each read


async def test_the_migration_numbers_existing_credit_notes_in_the_order_they_were_made(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection
) -> None:
    """Notes made before the number was stored get the numbers they read as (created_at, then id)."""
    staff, invoice, _ = await _stored_invoice(client, factory)
    made = []
    for amount in (100, 200, 300):
        note = await client.post(
            f"/v1/invoices/{invoice['id']}/credit-notes", json={"amount_minor": amount, "reason": "Goodwill"},
            headers=staff.headers,
        )  # fmt: skip
        assert note.status_code == 201, note.text
        made.append(note.json())
    assert [note["number"] for note in made] == [f"{invoice['number']}-CN{n}" for n in (1, 2, 3)]
    select = "select id, number from credit_notes where invoice_id = $1"
    transaction = owner_connection.transaction()
    await transaction.start()
    try:
        await owner_connection.execute("select set_config('app.scope', 'system', true)")
        await owner_connection.execute(
            "alter table credit_notes drop constraint credit_notes_number_once, alter column number drop not null"
        )
        await owner_connection.execute("update credit_notes set number = null")
        await owner_connection.execute(numbering.BACKFILL + numbering.CONSTRAINTS)
        numbered = {row["id"]: row["number"] for row in await owner_connection.fetch(select, uuid.UUID(invoice["id"]))}
    finally:
        await transaction.rollback()
    assert numbered == {uuid.UUID(note["id"]): note["number"] for note in made}
