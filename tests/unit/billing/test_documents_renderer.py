"""The fpdf2 renderer: deterministic bytes, fonts embedded from their packages only when the text needs them,
several pages for a long invoice, text that reads back."""

from __future__ import annotations

import io
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pypdf
import pypdfium2

from billing.documents import layout, renderer

FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


def _document(name: str = "Acme GmbH", lines: int = 3, number: str | None = "ACME-000001") -> layout.Document:
    rows = tuple(
        layout.LineFacts(f"Seat {n} of the Pro plan", "per_seat", Decimal(n), Decimal(1000), 1000 * n, FEB, MAR)
        for n in range(1, lines + 1)
    )
    subtotal = sum(row.amount_minor for row in rows)
    invoice = layout.InvoiceFacts(
        "00000000-0000-4000-8000-000000000001", number, "cycle", "EUR", FEB, MAR, MAR if number else None,
        subtotal, 0, (), subtotal, 0, subtotal, rows,
    )  # fmt: skip
    return layout.invoice_document(invoice, layout.Party("Platform Ltd", ("1 Road",)), layout.Party(name))


def _fonts(content: bytes) -> set[str]:
    names = set()
    for page in pypdf.PdfReader(io.BytesIO(content)).pages:
        for font in page["/Resources"]["/Font"].values():
            names.add(str(font.get_object()["/BaseFont"]).split("+")[-1])
    return names


def test_the_same_document_renders_to_the_same_bytes() -> None:
    first, second = renderer.render(_document()), renderer.render(_document())
    assert first == second
    trailer = pypdf.PdfReader(io.BytesIO(first)).trailer
    assert trailer["/ID"][0] == trailer["/ID"][1]  # derived from the content, not random
    assert pypdf.PdfReader(io.BytesIO(first)).metadata["/CreationDate"].startswith("D:20260301")


def test_a_latin_invoice_embeds_only_the_latin_font() -> None:
    content = renderer.render(_document("ООО «Ромашка» Ωμέγα"))  # noqa: RUF001 (Cyrillic and Greek on purpose)
    assert _fonts(content) == {"NotoSans"}
    assert len(content) < 40_000


def test_arabic_and_cjk_fonts_are_embedded_when_the_text_needs_them() -> None:
    content = renderer.render(_document("شركة 示例"))
    assert _fonts(content) == {"NotoSans", "IBMPlexSansArabic", "NotoSansCJKTCRegular"}
    assert "示例" in pypdfium2.PdfDocument(content)[0].get_textpage().get_text_range()
    assert "شركة" in pypdf.PdfReader(io.BytesIO(content)).pages[0].extract_text()


def test_a_long_invoice_continues_on_more_pages_with_every_line() -> None:
    content = renderer.render(_document(lines=80))
    reader = pypdf.PdfReader(io.BytesIO(content))
    assert len(reader.pages) > 1
    text = " ".join(page.extract_text() for page in reader.pages)
    assert all(f"Seat {n} of the Pro plan" in text for n in range(1, 81))
    assert f"Page 1 of {len(reader.pages)}" in text
    assert all(page.mediabox.width == 595.28 and page.mediabox.height == 841.89 for page in reader.pages)  # A4


def test_a_draft_carries_its_mark_on_every_page() -> None:
    reader = pypdf.PdfReader(io.BytesIO(renderer.render(_document(lines=80, number=None))))
    assert all("DRAFT" in page.extract_text() for page in reader.pages)


def test_the_largest_figures_stay_inside_their_columns() -> None:
    """A quantity of 10^9 with twelve decimals and a 10^15 amount are drawn smaller: no two characters of a line
    overlap (a figure never runs into the next column) and nothing passes the right margin."""
    line = layout.LineFacts(
        "Huge", "metered", Decimal("1000000000.000000000001"), Decimal("0.000000000001"), 10**15, FEB, MAR
    )
    invoice = layout.InvoiceFacts(
        "i", "ACME-1", "one_off", "USD", FEB, MAR, MAR, 10**15, 0, (), 10**15, 0, 10**15, (line,)
    )  # fmt: skip
    document = layout.invoice_document(invoice, layout.Party("P"), layout.Party("T"))
    page = pypdfium2.PdfDocument(renderer.render(document))[0]
    text = page.get_textpage()
    assert "1,000,000,000.000000000001" in text.get_text_range()
    lines: dict[int, list[tuple[float, float]]] = {}
    for index in range(text.count_chars()):
        left, bottom, right, _top = text.get_charbox(index)
        if right > left:
            lines.setdefault(round(bottom), []).append((left, right))
    assert max(right for boxes in lines.values() for _, right in boxes) <= page.get_width() - 18 / 25.4 * 72 + 1
    for boxes in lines.values():
        boxes.sort()
        assert all(left >= before_right - 0.5 for (_, before_right), (left, _) in itertools.pairwise(boxes)), boxes
