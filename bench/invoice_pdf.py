"""Render an invoice PDF and its first page as PNG, so a person can look at one; time the renderer.

    python -m bench.invoice_pdf                       # sample invoices (Latin; Arabic and CJK; Hebrew and Thai)
    python -m bench.invoice_pdf --invoice <id>        # that invoice, from the dev stack (`controlplane devstack up`)
    make invoice-pdf [INVOICE=<id>]

Files go to `--out` (default `.devstack/invoice-pdf/`). With `--invoice`, the stored document is written if the
invoice has one (stored on this read otherwise, as `GET /v1/invoices/{id}/pdf` does), and the tool checks that
rendering it afresh gives the same bytes. Prints figures, asserts nothing about time: a sample's first render
includes cutting its fonts beyond Latin to its characters, which a process then keeps (`renderer`).
"""

from __future__ import annotations

import argparse
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pypdfium2

from billing.documents import layout, renderer
from billing.documents import service as documents
from billing.money import round_minor

FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)
MID = datetime(2026, 2, 14, tzinfo=UTC)
ROUNDS = 5


def sample(name: str, currency: str, address: tuple[str, ...]) -> layout.Document:
    lines = (
        layout.LineFacts("Pro plan", "flat", Decimal(1), Decimal(4900000), 4900000, FEB, MAR),
        layout.LineFacts("Seats", "per_seat", Decimal(12), Decimal(250000), 3000000, FEB, MAR),
        layout.LineFacts("API calls", "metered", Decimal(182340), Decimal("1.5"), 273510, FEB, MAR),
        layout.LineFacts(
            "Upgrade to Pro: unused time on Starter",
            "proration",
            Decimal(1),
            Decimal(-120000),
            -120000,
            MID,
            MAR,
        ),
        layout.LineFacts("WELCOME: 10% off", "discount", Decimal(1), Decimal(-805351), -805351, FEB, MAR),
    )
    subtotal = sum(line.amount_minor for line in lines)
    taxes = (layout.TaxFigure("vat", "VAT", 1500, round_minor(Decimal(subtotal) * 15 / 100)),)
    total = subtotal + taxes[0].amount_minor
    invoice = layout.InvoiceFacts(
        "00000000-0000-4000-8000-000000000001", "ACME-000042", "cycle", currency, FEB, MAR, MAR, subtotal,
        -805351, taxes, total, 50000, total - 50000, lines,
    )  # fmt: skip
    platform = layout.Party("Control Plane Ltd", ("1 Example Street", "10115 Berlin", "Germany", "VAT DE000000000"))
    return layout.invoice_document(invoice, platform, layout.Party(name, address))


def timed(document: layout.Document) -> tuple[bytes, float, float]:
    """The PDF, the first render's seconds, and the best of the next rounds."""
    started = time.perf_counter()
    content = renderer.render(document)
    first = time.perf_counter() - started
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        assert renderer.render(document) == content  # deterministic
        best = min(best, time.perf_counter() - started)
    return content, first, best


def write(out: Path, stem: str, content: bytes) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.pdf").write_bytes(content)
    picture = out / f"{stem}.png"
    pypdfium2.PdfDocument(content)[0].render(scale=2).to_pil().save(picture)
    return picture


def samples(out: Path) -> None:
    for stem, name, currency, address in (
        ("latin", "Müller & Söhne GmbH", "KWD", ("Attn: Jane Roe", "Friedrichstraße 1", "10117 Berlin", "DE")),
        ("cjk-arabic", "示例科技有限公司 · شركة المثال", "JPY", ("شارع الملك فهد 12", "東京都千代田区1-1", "JP")),
        ("hebrew-thai", "חברה לדוגמה בע״מ", "USD", ("บริษัท ตัวอย่าง จำกัด", "רחוב הרצל 5, תל אביב", "IL")),
    ):
        content, first, best = timed(sample(name, currency, address))
        picture = write(out, stem, content)
        print(f"{stem}: {len(content):,} bytes, first render {first * 1000:.0f} ms, best of {ROUNDS} "
              f"{best * 1000:.0f} ms -> {picture}")  # fmt: skip


def stored(invoice_id: uuid.UUID, out: Path) -> None:
    """A real invoice from the dev stack, as the API serves it."""
    from controlplane.core.db import SystemReason, system_tx
    from controlplane.core.pii import PiiCipher
    from controlplane.core.secrets import SecretStore
    from controlplane.ops.environment import settings_from_environment, with_pool
    from tenants import billing_contact

    settings = settings_from_environment()
    documents.configure(settings)
    billing_contact.use(PiiCipher(SecretStore.connect(settings).client))

    async def work() -> tuple[str, bytes, bytes]:
        from billing.invoices import repository as invoices_repository

        async with system_tx(SystemReason.STAFF_VIEW):
            tenant_id = await invoices_repository.resource_tenant("invoices", invoice_id)
        if tenant_id is None:
            raise SystemExit(f"no invoice {invoice_id}")
        filename, _, content = await documents.invoice_pdf_for_attachment(tenant_id, invoice_id)
        return filename, content, await documents.render_invoice(tenant_id, invoice_id)

    filename, content, fresh = with_pool(settings, work)
    picture = write(out, filename.removesuffix(".pdf"), content)
    print(f"{filename}: {len(content):,} bytes -> {picture}")
    print("rendered afresh: the same bytes" if fresh == content else "rendered afresh: DIFFERENT bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoice", type=uuid.UUID, help="an invoice of the dev stack")
    parser.add_argument("--out", type=Path, default=Path(".devstack/invoice-pdf"))
    args = parser.parse_args()
    if args.invoice:
        stored(args.invoice, args.out)
    else:
        samples(args.out)


if __name__ == "__main__":
    main()
