"""Invoice and credit-note PDFs over HTTP: every figure of the JSON invoice is read back from the PDF's text, for
each invoice kind and each currency precision; a finalized document is stored once and answered byte for byte;
a draft is marked and never stored; names in any script come back; the access rules are the JSON's."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import subprocess
import sys
import unicodedata
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pypdf
import pypdfium2
from httpx import AsyncClient, Response
from PIL import Image

from billing.documents import repository as documents_repository
from billing.documents import service as documents
from billing.documents.layout import format_date, format_period, format_rate
from billing.money import display
from controlplane.core.db import tenant_tx
from controlplane.core.mail import Mailer
from controlplane.core.settings import Settings
from controlplane.devstack.mail_store import MailStore
from tenants.notifications import sender
from tests.api._helpers import assert_problem
from tests.api.billing._support import credit_notes, event, invoices, plan, post_usage, subscribe
from tests.api.billing.test_wallets import GOOD_CARD, add_card, card, stripe_client  # noqa: F401 (fixture)
from tests.factories import Actor, Factory

PROFILE = {
    "contact_name": "Jane Roe",
    "tax_id": "DE999999999",
    "address": {"line1": "Friedrichstraße 1", "city": "Berlin", "country": "DE", "postal_code": "10117"},
}


def pdf_text(content: bytes) -> str:
    """pypdf's text of every page, whitespace collapsed (a wrapped description reads as one line)."""
    pages = pypdf.PdfReader(io.BytesIO(content)).pages
    return re.sub(r"\s+", " ", " ".join(page.extract_text() for page in pages))


def pdfium_text(content: bytes) -> str:
    """PDFium's text: it reads the CJK font's two-byte codes as one character each, where pypdf puts a NUL
    before each character."""
    document = pypdfium2.PdfDocument(content)
    return re.sub(r"\s+", " ", " ".join(page.get_textpage().get_text_range() for page in document))


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def assert_shows_invoice(text: str, invoice: dict[str, Any]) -> None:
    """Every figure of the JSON invoice is in the PDF's text: number, dates, period, each line's description and
    amount, each tax, the totals, the credits applied and the amount due, in the currency's precision."""
    currency = invoice["currency"]
    amount = lambda minor: display(minor, currency)  # noqa: E731
    assert invoice["number"] in text
    assert f"Issued {format_date(_moment(invoice['issued_at']))}" in text
    assert f"Period {format_period(_moment(invoice['period_start']), _moment(invoice['period_end']))}" in text
    assert invoice["lines"], invoice
    for line in invoice["lines"]:
        assert " ".join(line["description"].split()) in text, line
        assert amount(line["amount_minor"]) in text, line
    assert f"Subtotal {amount(invoice['subtotal_minor'])}" in text
    if invoice["discount_minor"]:
        assert f"Discounts (in the subtotal) {amount(invoice['discount_minor'])}" in text
    assert sum(tax["amount_minor"] for tax in invoice["taxes"]) == invoice["tax_minor"]
    for tax in invoice["taxes"]:
        assert f"{tax['name']} ({tax['code']}, {format_rate(tax['rate_bps'])}) {amount(tax['amount_minor'])}" in text
    assert f"Total {amount(invoice['total_minor'])}" in text
    assert f"Credits applied {amount(-invoice['credits_applied_minor'])}" in text
    # As issued: a card payment since (a paid top-up's purchase is paid in the same request) is a receipt's.
    due = invoice["amount_due_minor"]
    if invoice["status"] == "paid":
        due = max(invoice["total_minor"] - invoice["credits_applied_minor"], 0)
    assert f"Amount due {amount(due)}" in text
    assert f"Currency {currency}" in text


async def get_pdf(client: AsyncClient, url: str, headers: dict[str, str]) -> Response:
    response = await client.get(url, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    return response


async def invoice_and_pdf(
    client: AsyncClient, headers: dict[str, str], invoice_id: str
) -> tuple[dict[str, Any], bytes]:
    invoice = (await client.get(f"/v1/invoices/{invoice_id}", headers=headers)).json()
    response = await get_pdf(client, f"/v1/invoices/{invoice_id}/pdf", headers)
    assert response.headers["content-disposition"] == f'inline; filename="{invoice["number"]}.pdf"'
    assert response.headers["cache-control"] == "private"
    return invoice, response.content


async def _tenant(
    client: AsyncClient, factory: Factory, staff: Actor, currency: str = "EUR", **fields: Any
) -> tuple[str, Actor]:
    tenant = await factory.tenant(staff, currency=currency, **fields)
    admin = await factory.member(tenant["id"], "tenant_admin")
    put = await client.put(f"/v1/tenants/{tenant['id']}/billing-profile", json=PROFILE, headers=admin.headers)
    assert put.status_code == 200, put.text
    return tenant["id"], admin


async def _one_off(
    client: AsyncClient, staff: Actor, tenant_id: str, currency: str, lines: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/tenants/{tenant_id}/invoices", json={"currency": currency, "lines": lines, **extra}, headers=staff.headers
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _tax_rates(client: AsyncClient, staff: Actor, tenant_id: str) -> None:
    codes = []
    for code, name, bps in ((f"vat-{uuid.uuid4().hex[:6]}", "VAT", 2000), (f"city-{uuid.uuid4().hex[:6]}", "City", 75)):
        body = {"code": code, "name": name, "rate_bps": bps, "jurisdiction": "Somewhere"}
        assert (await client.post("/v1/tax-rates", json=body, headers=staff.headers)).status_code == 201
        codes.append(code)
    put = await client.put(f"/v1/tenants/{tenant_id}/tax-rates", json={"codes": codes}, headers=staff.headers)
    assert put.status_code == 200, put.text


async def test_every_kind_of_invoice_shows_every_figure_of_its_json(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,  # noqa: F811
) -> None:
    """One tenant gets a cycle invoice (subscribing), a change invoice (an upgrade), a final invoice (cancelling
    now with usage) with credit notes for the unused time, a one-off invoice and a credit purchase (a paid
    top-up); each PDF shows its JSON's figures, and the tenant's name and billing address."""
    staff = await factory.staff()
    await client.post("/v1/metrics", json={"code": "calls", "name": "Calls", "aggregation": "count"},
                      headers=staff.headers)  # fmt: skip
    metered = {"type": "metered", "metric_code": "calls", "model": "per_unit", "unit_amount_minor": "12.5"}
    await plan(client, staff.headers, "small", [{"type": "flat", "name": "Small", "amount_minor": 10000}, metered])
    await plan(client, staff.headers, "large", [{"type": "flat", "name": "Large", "amount_minor": 20000}, metered])
    tenant_id, admin = await _tenant(client, factory, staff, name="Müller & Söhne GmbH", tax_rate_bps=1900)
    first_reads: dict[str, bytes] = {}

    async def read_new_invoices() -> None:
        """Each invoice's PDF read when it is made, so its JSON is still the invoice as issued."""
        for item in await invoices(client, admin.headers, tenant_id):
            if item["id"] in first_reads:
                continue
            invoice, content = await invoice_and_pdf(client, admin.headers, item["id"])
            text = pdf_text(content)
            assert_shows_invoice(text, invoice)
            for part in ("Müller & Söhne GmbH", "Attn: Jane Roe", "Friedrichstraße 1", "10117 Berlin",
                         "Tax ID: DE999999999", "Control Plane (development)"):  # fmt: skip
                assert part in text, part
            assert "DRAFT" not in text
            first_reads[item["id"]] = content

    subscription = await subscribe(client, staff.headers, tenant_id, "small")
    await read_new_invoices()
    changed = await client.post(
        f"/v1/subscriptions/{subscription['id']}/change", json={"plan_code": "large"}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    await read_new_invoices()
    usage = await post_usage(client, staff.headers, [event(f"e{n}", "calls") for n in range(3)], tenant_id=tenant_id)
    assert usage.status_code in (200, 201, 202), usage.text
    cancelled = await client.post(
        f"/v1/subscriptions/{subscription['id']}/cancel", json={"at_period_end": False}, headers=admin.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    await read_new_invoices()
    await _one_off(client, staff, tenant_id, "EUR", [{"description": "Onboarding workshop", "quantity": "2.5",
                                                       "unit_amount_minor": 40000}])  # fmt: skip
    await read_new_invoices()
    await add_card(client, admin.headers, tenant_id, card(stripe_client, GOOD_CARD))
    topped = await client.post(
        f"/v1/tenants/{tenant_id}/wallet/top-ups", json={"amount_minor": 5000, "paid": True}, headers=admin.headers
    )
    assert topped.status_code == 201, topped.text
    await read_new_invoices()

    listed = await invoices(client, admin.headers, tenant_id)
    assert {invoice["kind"] for invoice in listed} == {"cycle", "change", "final", "one_off", "credit_purchase"}
    # Credited, cancelled, paid since: each document is still the one first read, byte for byte, and rendering
    # it afresh gives those bytes too (the document is the invoice as issued, not as it stands).
    for item in listed:
        again = await get_pdf(client, f"/v1/invoices/{item['id']}/pdf", staff.headers)
        assert again.content == first_reads[item["id"]], item["kind"]
        fresh = await documents.render_invoice(uuid.UUID(tenant_id), uuid.UUID(item["id"]))
        assert fresh == first_reads[item["id"]], item["kind"]

    notes = [note for item in listed for note in await credit_notes(client, admin.headers, item["id"])]
    assert notes, "cancelling now credits the unused time"
    for note in notes:
        assert (await client.get(f"/v1/credit-notes/{note['id']}", headers=admin.headers)).json() == note
        response = await get_pdf(client, f"/v1/credit-notes/{note['id']}/pdf", admin.headers)
        credited = next(item for item in listed if item["id"] == note["invoice_id"])
        assert re.fullmatch(
            rf'inline; filename="{credited["number"]}-CN\d+\.pdf"', response.headers["content-disposition"]
        )
        text = pdf_text(response.content)
        assert f"Credits invoice {credited['number']} of {format_date(_moment(credited['issued_at']))}" in text
        assert f"Date {format_date(_moment(note['created_at']))}" in text
        assert note["reason"] in text
        assert f"Total credited {display(note['amount_minor'], 'EUR')}" in text
        tax = sum(item["amount_minor"] for item in note["taxes"])
        assert f"Credit before tax {display(note['amount_minor'] - tax, 'EUR')}" in text
        for item in note["taxes"]:
            assert f"({item['code']}, {format_rate(item['rate_bps'])}) {display(item['amount_minor'], 'EUR')}" in text


async def test_each_currency_precision_and_several_taxes(client: AsyncClient, factory: Factory, tmp_path: Path) -> None:
    """JPY (no decimals), USD (two), KWD (three): the amounts read as the currency writes them, and each of two
    tax rates shows its code, name, rate and amount. Page 1 renders to a non-blank A4 picture."""
    staff = await factory.staff()
    lines = [
        {"description": "Consulting", "quantity": 1, "unit_amount_minor": 1234567},
        {"description": "Support hours", "quantity": "3.5", "unit_amount_minor": 999},
    ]
    for currency, first_line in (("JPY", "1,234,567 JPY"), ("USD", "12,345.67 USD"), ("KWD", "1,234.567 KWD")):
        tenant_id, admin = await _tenant(client, factory, staff, currency)
        await _tax_rates(client, staff, tenant_id)
        created = await _one_off(client, staff, tenant_id, currency, lines)
        invoice, content = await invoice_and_pdf(client, admin.headers, created["id"])
        text = pdf_text(content)
        assert len(invoice["taxes"]) == 2
        assert_shows_invoice(text, invoice)
        assert first_line in text  # written by hand here, not by the code under test
        if currency == "KWD":
            page = pypdfium2.PdfDocument(content)[0]
            picture = tmp_path / "invoice-page-1.png"
            page.render(scale=1).to_pil().save(picture)
            with Image.open(picture) as image:
                width, height = image.size
                assert abs(height / width - 297 / 210) < 0.01, image.size
                grey = image.convert("L")
                dark = sum(grey.histogram()[:128])  # pixels darker than mid-grey
                assert 0.005 < dark / (width * height) < 0.5, dark  # ink, but not a black page


async def test_a_finalized_invoice_is_stored_once_and_answered_byte_for_byte(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff)
    # Granted credit pays part of the invoice at its finalization: the document shows it applied.
    granted = await client.post(
        f"/v1/tenants/{tenant_id}/wallet/top-ups", json={"amount_minor": 1200, "paid": False}, headers=staff.headers
    )
    assert granted.status_code == 201, granted.text
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip
    assert created["credits_applied_minor"] == 1200
    first = await get_pdf(client, f"/v1/invoices/{created['id']}/pdf", admin.headers)
    assert_shows_invoice(pdf_text(first.content), created)
    assert "Credits applied -12.00 EUR" in pdf_text(first.content)
    second = await get_pdf(client, f"/v1/invoices/{created['id']}/pdf", staff.headers)
    assert second.content == first.content and second.headers["etag"] == first.headers["etag"]
    async with tenant_tx(uuid.UUID(tenant_id)):
        kept = await documents_repository.stored("invoice_id", uuid.UUID(created["id"]))
    assert kept is not None
    assert bytes(kept["content"]) == first.content
    assert kept["sha256"] == hashlib.sha256(first.content).hexdigest()
    # Rendered again from the database, without the store: the same bytes (the render is deterministic).
    again = await documents.render_invoice(uuid.UUID(tenant_id), uuid.UUID(created["id"]))
    assert again == first.content


async def test_two_first_reads_at_once_store_one_document(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant_id, _ = await _tenant(client, factory, staff)
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip
    tenant, invoice = uuid.UUID(tenant_id), uuid.UUID(created["id"])
    first, second = await asyncio.gather(
        documents.invoice_pdf_for_attachment(tenant, invoice), documents.invoice_pdf_for_attachment(tenant, invoice)
    )
    assert first == second == (f"{created['number']}.pdf", "application/pdf", first[2])
    async with tenant_tx(tenant):
        [row] = await _documents_of(tenant)
    assert row["invoice_id"] == invoice


async def _documents_of(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    from controlplane.core.db import fetch

    return await fetch("select invoice_id, credit_note_id from billing_documents where tenant_id = {}", tenant_id)


async def test_a_draft_is_marked_and_never_stored(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff)
    draft = await _one_off(
        client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1, "unit_amount_minor": 5000}],
        finalize=False,
    )  # fmt: skip
    assert draft["status"] == "draft"
    response = await get_pdf(client, f"/v1/invoices/{draft['id']}/pdf", admin.headers)
    assert response.headers["content-disposition"] == f'inline; filename="draft-{draft["id"]}.pdf"'
    assert response.headers["cache-control"] == "private, no-cache"
    text = pdf_text(response.content)
    assert "DRAFT" in text and "Not issued (draft)" in text
    assert f"Total {display(draft['total_minor'], 'EUR')}" in text
    async with tenant_tx(uuid.UUID(tenant_id)):
        assert await _documents_of(uuid.UUID(tenant_id)) == []
    # Finalized, it is stored on its next read, numbered and without the mark.
    finalized = await client.post(f"/v1/invoices/{draft['id']}/finalize", headers=staff.headers)
    assert finalized.status_code == 200, finalized.text
    invoice, content = await invoice_and_pdf(client, admin.headers, draft["id"])
    text = pdf_text(content)
    assert "DRAFT" not in text
    assert_shows_invoice(text, invoice)
    async with tenant_tx(uuid.UUID(tenant_id)):
        assert len(await _documents_of(uuid.UUID(tenant_id))) == 1


async def test_names_in_cyrillic_arabic_hebrew_thai_and_chinese_come_back(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    for name, extract in (
        ("\u041e\u041e\u041e «Ромашка»", pdf_text),
        ("شركة المثال للتجارة", pdf_text),
        ("חברה לדוגמה בע״מ", pdf_text),
        ("บริษัท ตัวอย่าง จำกัด", pdf_text),
        ("示例科技有限公司", pdfium_text),
    ):
        tenant_id, admin = await _tenant(client, factory, staff, name=name)
        created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                                   "unit_amount_minor": 5000}])  # fmt: skip
        content = (await get_pdf(client, f"/v1/invoices/{created['id']}/pdf", admin.headers)).content
        # Thai SARA AM is drawn as its two parts, which copied text keeps: NFKC's form of the name.
        text = unicodedata.normalize("NFKC", extract(content))
        # A right-to-left name is drawn right to left: extractors read its words from the left of the page.
        for word in unicodedata.normalize("NFKC", name).split():
            assert word in text, (word, text[:300])


async def test_another_tenants_admin_gets_404_as_for_the_json(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff)
    _, other_admin = await _tenant(client, factory, staff)
    viewer = await factory.member(tenant_id, "billing_viewer")
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip
    note = await client.post(
        f"/v1/invoices/{created['id']}/credit-notes", json={"amount_minor": 1000, "reason": "Goodwill"},
        headers=staff.headers,
    )  # fmt: skip
    assert note.status_code == 201, note.text
    urls = [f"/v1/invoices/{created['id']}", f"/v1/credit-notes/{note.json()['id']}"]
    for url in urls:
        for path in (url, f"{url}/pdf"):
            assert_problem(await client.get(path, headers=other_admin.headers), 404)
            assert_problem(await client.get(path), 401)
            assert (await client.get(path, headers=viewer.headers)).status_code == 200
            assert (await client.get(path, headers=admin.headers)).status_code == 200
    assert_problem(await client.get(f"/v1/credit-notes/{uuid.uuid4()}/pdf", headers=admin.headers), 404,
                   "credit_note_not_found")  # fmt: skip
    assert_problem(await client.get(f"/v1/invoices/{uuid.uuid4()}/pdf", headers=admin.headers), 404,
                   "invoice_not_found")  # fmt: skip


async def test_the_command_renders_a_stored_invoice_for_a_person_to_look_at(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], tmp_path: Path
) -> None:
    """`python -m bench.invoice_pdf --invoice <id>` (`make invoice-pdf INVOICE=<id>`) writes the PDF the API
    serves and its first page as PNG, and finds a fresh render identical."""
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff)
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip
    served = (await get_pdf(client, f"/v1/invoices/{created['id']}/pdf", admin.headers)).content
    command = [sys.executable, "-m", "bench.invoice_pdf", "--invoice", created["id"], "--out", str(tmp_path)]
    ran = await asyncio.to_thread(
        subprocess.run, command, env={**os.environ, **stack_env}, capture_output=True, text=True, timeout=120
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "rendered afresh: the same bytes" in ran.stdout, ran.stdout
    assert (tmp_path / f"{created['number']}.pdf").read_bytes() == served
    with Image.open(tmp_path / f"{created['number']}.png") as image:
        assert abs(image.size[1] / image.size[0] - 297 / 210) < 0.01


async def test_the_finalized_invoices_email_carries_its_stored_pdf(
    client: AsyncClient, factory: Factory, settings: Settings, mailbox: MailStore
) -> None:
    """The composition root's provider: the `invoice.finalized` email attaches the very bytes the API serves."""
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff, billing_email="accounts@pdf-mail.example")
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip

    report = await sender.send_due(Mailer.from_settings(settings), settings.public_url)

    served = (await get_pdf(client, f"/v1/invoices/{created['id']}/pdf", admin.headers)).content
    assert report.sent == 2  # the billing contact and the admin
    for message in mailbox.messages():
        [attached] = list(message.iter_attachments())
        assert (attached.get_filename(), attached.get_content()) == (f"{created['number']}.pdf", served)


async def test_credit_notes_keep_the_number_given_when_they_were_made(client: AsyncClient, factory: Factory) -> None:
    """Two notes made at once on one invoice are CN1 and CN2 (never both CN1), in the JSON and in their PDFs,
    and a third note changes neither (numbers were once computed at each read from the notes' order)."""
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff)
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip
    url = f"/v1/invoices/{created['id']}/credit-notes"
    made = await asyncio.gather(
        *(client.post(url, json={"amount_minor": 1000, "reason": f"Goodwill {n}"}, headers=staff.headers)
          for n in (1, 2))
    )  # fmt: skip
    assert [response.status_code for response in made] == [201, 201], [response.text for response in made]
    first_two = {response.json()["id"]: response.json()["number"] for response in made}
    assert sorted(first_two.values()) == [f"{created['number']}-CN1", f"{created['number']}-CN2"]
    pdfs = {}
    for note_id, number in first_two.items():
        assert (await client.get(f"/v1/credit-notes/{note_id}", headers=admin.headers)).json()["number"] == number
        response = await get_pdf(client, f"/v1/credit-notes/{note_id}/pdf", admin.headers)
        assert response.headers["content-disposition"] == f'inline; filename="{number}.pdf"'
        assert f"Credit note number {number}" in pdf_text(response.content)
        pdfs[note_id] = response.content
    third = await client.post(url, json={"amount_minor": 500, "reason": "Late"}, headers=staff.headers)
    assert third.status_code == 201, third.text
    assert third.json()["number"] == f"{created['number']}-CN3"
    listed = await credit_notes(client, admin.headers, created["id"])
    assert {note["id"]: note["number"] for note in listed} == {**first_two, third.json()["id"]: third.json()["number"]}
    for note_id in first_two:
        again = await get_pdf(client, f"/v1/credit-notes/{note_id}/pdf", admin.headers)
        assert again.content == pdfs[note_id]


async def test_a_void_invoice_is_served_marked_and_its_document_as_issued_is_kept(
    client: AsyncClient, factory: Factory
) -> None:
    """Its PDF once showed "Amount due" unmarked. The document as issued stays stored, byte for byte (what the
    invoice.finalized email carried); the invoice's PDF is now that document marked VOID with a note, drawn on
    each read (the same bytes each time) and never stored."""
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff)
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip
    url = f"/v1/invoices/{created['id']}/pdf"
    issued = (await get_pdf(client, url, admin.headers)).content
    voided = await client.post(f"/v1/invoices/{created['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text

    marked = await get_pdf(client, url, admin.headers)
    assert marked.headers["cache-control"] == "private, no-cache"
    text = pdf_text(marked.content)
    assert "VOID" in text and "voided after its issue; nothing is due on it" in text
    assert f"Total {display(created['total_minor'], 'EUR')}" in text  # the figures as issued
    assert (await get_pdf(client, url, staff.headers)).content == marked.content
    async with tenant_tx(uuid.UUID(tenant_id)):
        kept = await documents_repository.stored("invoice_id", uuid.UUID(created["id"]))
    assert kept is not None and bytes(kept["content"]) == issued != marked.content
    assert "VOID" not in pdf_text(issued)


async def test_a_pdf_asked_for_with_its_etag_is_not_modified(client: AsyncClient, factory: Factory) -> None:
    """`If-None-Match` with the PDF's ETag (alone, in a list, weak, or `*`) answers 304 with no body; another
    ETag answers the PDF. For the invoice's and the credit note's PDF alike."""
    staff = await factory.staff()
    tenant_id, admin = await _tenant(client, factory, staff)
    created = await _one_off(client, staff, tenant_id, "EUR", [{"description": "Setup", "quantity": 1,
                                                               "unit_amount_minor": 5000}])  # fmt: skip
    note = await client.post(
        f"/v1/invoices/{created['id']}/credit-notes", json={"amount_minor": 1000, "reason": "Goodwill"},
        headers=staff.headers,
    )  # fmt: skip
    assert note.status_code == 201, note.text
    for url in (f"/v1/invoices/{created['id']}/pdf", f"/v1/credit-notes/{note.json()['id']}/pdf"):
        first = await get_pdf(client, url, admin.headers)
        etag = first.headers["etag"]
        for asked in (etag, f'"other", {etag}', f"W/{etag}", "*"):
            again = await client.get(url, headers={**admin.headers, "If-None-Match": asked})
            assert again.status_code == 304, (asked, again.status_code)
            assert again.content == b"" and again.headers["etag"] == etag
        changed = await client.get(url, headers={**admin.headers, "If-None-Match": '"other"'})
        assert changed.status_code == 200 and changed.content == first.content
