"""The fpdf2 renderer: deterministic bytes, fonts embedded from their packages only when the text needs them,
several pages for a long invoice, text that reads back."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import itertools
import threading
import time
import unicodedata
from datetime import UTC, datetime
from decimal import Decimal

import pypdf
import pypdfium2
import pytest

from billing.documents import layout, renderer
from billing.documents import service as documents

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


def _pdfium_text(content: bytes) -> str:
    return " ".join(page.get_textpage().get_text_range() for page in pypdfium2.PdfDocument(content))


def _baseline_of(content: bytes, needle: str) -> list[float]:
    """The bottom of each character of the first `needle` on page 1 (PDF points)."""
    text = pypdfium2.PdfDocument(content)[0].get_textpage()
    whole = text.get_text_range()
    start = whole.index(needle)
    return [round(text.get_charbox(index)[1], 1) for index in range(start, start + len(needle)) if whole[index] != " "]


def test_a_line_separator_in_a_name_breaks_no_line_and_shows() -> None:
    """`str.splitlines` breaks at U+2028, U+2029, U+0085 too: a name (stored before the API refused them) could
    draw lines of its own (`Acme` / `PAID IN FULL`). Only a newline breaks a line; a separator or a control
    character is drawn as its code point, visibly."""
    content = renderer.render(_document("Acme\u2028PAID\x85OK"))
    text = _pdfium_text(content)
    assert "Acme[U+2028]PAID[U+0085]OK" in text, text[:400]
    bottoms = _baseline_of(content, "Acme[U+2028]PAID[U+0085]OK")
    assert max(bottoms) - min(bottoms) < 4, bottoms  # one line (a line is 16 pt high; "[" descends)


def test_hebrew_and_thai_names_come_back_in_their_fonts() -> None:
    for name, font in (("חברה לדוגמה בע״מ", "Heebo"), ("บริษัท ตัวอย่าง จำกัด ชั้น ที่ ๑๒", "NotoSansThai")):
        content = renderer.render(_document(name))
        assert font in _fonts(content)
        text = pypdf.PdfReader(io.BytesIO(content)).pages[0].extract_text()
        for word in unicodedata.normalize("NFKC", name).split():  # SARA AM is drawn as its parts
            assert word in text, (word, text[:300])


def test_a_character_no_font_has_is_shown_as_its_code_point() -> None:
    """An emoji (or any script without an embedded font) is written as `[U+1F600]`, never left blank; an
    invisible format character that no font has (a variation selector) is left out."""
    text = _pdfium_text(renderer.render(_document("Acme \U0001f600\ufe0f Ltd \u16a0")))
    assert "Acme [U+1F600] Ltd [U+16A0]" in text, text[:300]


def test_a_font_beyond_latin_is_cut_once_per_process_for_the_same_characters() -> None:
    """The 16 MB CJK font is parsed and cut once for a set of characters: the second render of a tenant's
    documents reuses the cut (and gives the same bytes as the first)."""
    renderer._subset_bytes.cache_clear()
    first = renderer.render(_document("示例科技有限公司"))
    second = renderer.render(_document("示例科技有限公司", lines=5))
    after = renderer._subset_bytes.cache_info()
    assert (after.misses, after.hits) == (1, 1)
    assert renderer.render(_document("示例科技有限公司")) == first != second
    assert "示例科技有限公司" in _pdfium_text(first)
    assert len(first) < 60_000  # the cut font, not the whole font, is embedded


async def test_a_process_renders_at_most_two_documents_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A render holds a worker thread (up to a second for a new CJK name): a flood of draft reads waits its turn
    instead of taking every thread of the pool."""
    running, most = 0, 0
    lock = threading.Lock()

    def slow_render(document: layout.Document) -> bytes:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return document.number.encode()

    monkeypatch.setattr(renderer, "render", slow_render)
    drawn = await asyncio.gather(*(documents._render(_document()) for _ in range(6)))
    assert drawn == [b"ACME-000001"] * 6
    assert most == documents.RENDERS_AT_ONCE == 2


MM = 72 / 25.4  # PDF points per millimetre
CJK_200 = "".join(chr(0x4E00 + (n * 37) % 0x5000) for n in range(200))  # 200 ideographs, as the API allows
LONGEST_PROFILE = layout.Party(
    CJK_200,
    layout.address_lines(
        contact_name=CJK_200[::-1],
        line1=CJK_200[1:] + "一",
        line2=CJK_200[2:] + "二二",
        postal_code="1" * 20,
        city=CJK_200[3:] + "三三三",
        region=CJK_200[4:] + "四四四四",
        country="JP",
        tax_id="T" * 64,
    ),
)


def _boxes(content: bytes) -> list[list[tuple[float, float, float, float]]]:
    """Each page's character boxes (left, bottom, right, top in points), blanks left out."""
    pages = []
    for page in pypdfium2.PdfDocument(content):
        text = page.get_textpage()
        boxes = [text.get_charbox(index) for index in range(text.count_chars())]
        pages.append([box for box in boxes if box[2] > box[0] and box[3] > box[1]])
    return pages


def assert_laid_out(content: bytes) -> None:
    """Every character on its page, above the body's bottom (or in the footer), within the margins, and over
    no other character."""
    width, height = 210 * MM, 297 * MM
    for boxes in _boxes(content):
        for left, bottom, right, top in boxes:
            assert 18 * MM - 1 <= left and right <= width - 18 * MM + 1, (left, right)  # 1 pt: a bold stroke
            in_footer = top <= (297 - renderer.FOOTER_Y) * MM + 1
            assert in_footer or (bottom >= (297 - renderer.BODY_BOTTOM) * MM - 1 and top <= height), (bottom, top)
        ordered = sorted(boxes)
        for index, (left, bottom, right, top) in enumerate(ordered):
            for other in ordered[index + 1 :]:
                if other[0] >= right - 0.6:
                    break
                shared = min(top, other[3]) - max(bottom, other[1])
                assert shared < 0.5 * min(top - bottom, other[3] - other[1]), ((left, bottom, right, top), other)


def test_the_longest_recipient_continues_on_the_next_page_and_keeps_every_line() -> None:
    """A 200-character CJK name, contact and address lines (the API's limits) once ran to y=317 mm on a 297 mm
    page: the block now breaks to the next page line by line, and its last line is there."""
    document = dataclasses.replace(_document(), recipient=LONGEST_PROFILE)
    content = renderer.render(document)
    assert_laid_out(content)
    assert len(pypdfium2.PdfDocument(content)) > 1
    text = _pdfium_text(content).replace("\r\n", "")
    assert "Tax ID:" in text and "T" * 64 in text and "1" * 20 in text  # the last line, wrapped
    assert "Seat 3 of the Pro plan" in text and "Amount due" in text


def test_a_row_taller_than_a_page_continues_on_the_next_pages() -> None:
    """A credit note whose reason is 100 lines (`"line\\n" * 100`, within the API's 500 characters) once drew its
    row to y=474 mm: the row now breaks between its lines, under the table's header again."""
    note = layout.CreditNoteFacts(
        "n", "ACME-000001-CN1", "ACME-000001", MAR, "EUR", 1200, "line\n" * 100, (), MAR
    )  # fmt: skip
    document = layout.credit_note_document(note, layout.Party("Platform Ltd", ("1 Road",)), layout.Party("Acme"))
    content = renderer.render(document)
    assert_laid_out(content)
    text = _pdfium_text(content)
    assert text.count("line") >= 200  # the row's 100 and the reason's 100 in the notes
    pages = pypdfium2.PdfDocument(content)
    assert len(pages) >= 3
    assert "Description" in pages[1].get_textpage().get_text_range()  # the header again above the row's rest


def test_a_long_invoice_number_stays_clear_of_its_label_and_the_heading() -> None:
    """A 63-character slug makes a 70-character invoice number: beside the recipient it wraps under its own
    column (it once ran over its label and the recipient), and at the top it is drawn smaller."""
    number = "A" * 8 + "-" + "W" * 54 + "-000012"
    assert len(number) == 70
    content = renderer.render(_document(number=number))
    assert_laid_out(content)
    text = _pdfium_text(content).replace("\r\n", "")
    assert text.count(number) >= 2  # the heading and the footer; beside the recipient it is wrapped


def test_an_ordinary_invoice_is_laid_out() -> None:
    assert_laid_out(renderer.render(_document(lines=80)))
