"""Draws a `layout.Document` as an A4 PDF with fpdf2: the adapter between the pure layout and the PDF library.

Fonts are embedded from PyPI font packages, found through importlib.resources, never the system's:
- Noto Sans (`fontpkg-noto-sans`, a variable TTF used at its default instance, weight 400): Latin, Greek,
  Cyrillic. Headings are drawn with a stroke around the glyphs (a synthetic bold), because instancing the
  variable font's bold costs seconds per process.
- IBM Plex Sans Arabic (`fontpkg-ibm-plex-sans-arabic`): Arabic, shaped right to left by HarfBuzz (uharfbuzz).
  Noto Sans Arabic splits letters into a base glyph and its dots, which fpdf2 leaves without a Unicode mapping,
  so copied or extracted text would carry stray characters; Plex maps every glyph back to its letters.
- Noto Sans CJK TC (`cvttf-notosanscjk-regular`, a CID-keyed CFF OpenType font): Chinese, Japanese, Korean.
The Arabic and CJK fonts are added only to a document whose text needs them (see `scripts`): parsing the 16 MB
CJK font takes about half a second, and the Latin-only invoice stays around 15 kB.

Deterministic: the same document gives the same bytes. The creation date is the document's own (an invoice's
issue), and fpdf2's trailer /ID is the MD5 of the content and that date (no random part); font subsets are
named from their glyphs. fpdf2's own fallback-font mechanism is not used: with text shaping on, it loses the
font size after a right-to-left run (fpdf2 2.8.9), so each run is set in its font here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import TextMode

from billing.documents.layout import Document, Row
from billing.documents.scripts import Run, Script, scripts_needed, visual_runs

# fontTools reports each table it subsets at INFO: noise in the application's logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FONT_FILES: dict[Script, tuple[str, str]] = {
    "latin": ("fontpkg_noto_sans", "files/NotoSans[wdth,wght].ttf"),
    "arabic": ("fontpkg_ibm_plex_sans_arabic", "files/IBMPlexSansArabic-Regular.ttf"),
    "cjk": ("cvttf_NotoSansCJK_Regular", "NotoSansCJKtc-Regular.otf"),
}

PAGE_WIDTH = 210.0
PAGE_HEIGHT = 297.0
MARGIN = 18.0
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
FOOTER_Y = PAGE_HEIGHT - 12.0
BODY_BOTTOM = PAGE_HEIGHT - 22.0
# The table's columns: description, quantity, unit price, amount (mm); numbers are right-aligned.
COLUMNS = (78.0, 20.0, 34.0, 42.0)
INK = (33, 37, 41)
MUTED = (108, 117, 125)
RULE = (206, 212, 218)
SHADE = (241, 243, 245)
MM_PER_PT = 25.4 / 72


def font_path(script: Script) -> Path:
    """The font file of `script`, inside its installed package."""
    package, name = FONT_FILES[script]
    path = Path(str(files(package).joinpath(name)))
    if not path.is_file():
        raise FileNotFoundError(f"the font {name} is missing from the package {package}")
    return path


class _Pdf(FPDF):
    def footer(self) -> None:  # fpdf2 calls it on each page
        self._canvas.line_text(MARGIN, FOOTER_Y, self._footer_text, 7.5, color=MUTED, width=CONTENT_WIDTH, align="L")
        self._canvas.line_text(
            MARGIN, FOOTER_Y, f"Page {self.page_no()} of {{nb}}", 7.5, color=MUTED, width=CONTENT_WIDTH, align="R"
        )

    _canvas: _Canvas
    _footer_text: str


class _Canvas:
    """Text in any of the three scripts at a position: each run in its own font, Arabic shaped."""

    def __init__(self, pdf: FPDF, scripts: frozenset[Script]) -> None:
        self.pdf = pdf
        latin: Script = "latin"
        self.scripts: frozenset[Script] = scripts | {latin}
        for script in sorted(self.scripts):
            pdf.add_font(script, "", str(font_path(script)))

    def _use(self, run: Run, size: float) -> None:
        script = run.script if run.script in self.scripts else "latin"
        self.pdf.set_font(script, "", size)
        if script == "arabic":
            self.pdf.set_text_shaping(True, direction="rtl", script="arab")
        else:
            self.pdf.set_text_shaping(False)

    def width(self, text: str, size: float) -> float:
        total = 0.0
        for run in visual_runs(text):
            self._use(run, size)
            total += self.pdf.get_string_width(run.text)
        return total

    @contextmanager
    def _bold(self, bold: bool, size: float) -> Iterator[None]:
        if not bold:
            yield
            return
        self.pdf.text_mode = TextMode.FILL_STROKE
        self.pdf.set_line_width(size * 0.045 * MM_PER_PT)
        try:
            yield
        finally:
            self.pdf.text_mode = TextMode.FILL
            self.pdf.set_line_width(0.2)

    def line_text(
        self,
        x: float,
        y: float,
        text: str,
        size: float,
        *,
        bold: bool = False,
        color: tuple[int, int, int] = INK,
        width: float | None = None,
        align: str = "L",
    ) -> None:
        """One line of `text` with its top at `y`, from `x` (or aligned within `width`)."""
        if not text:
            return
        height = size * MM_PER_PT * 1.25
        start = x
        if width is not None and align != "L":
            used = self.width(text, size)
            start = x + (width - used if align == "R" else (width - used) / 2)
        self.pdf.set_text_color(*color)
        self.pdf.set_draw_color(*color)
        with self._bold(bold, size):
            for run in visual_runs(text):
                self._use(run, size)
                run_width = self.pdf.get_string_width(run.text)
                self.pdf.set_xy(start, y)
                self.pdf.cell(w=run_width, h=height, text=run.text)
                start += run_width

    def wrap(self, text: str, size: float, width: float) -> list[str]:
        """`text` broken into lines no wider than `width` (at spaces; a word too long is cut)."""
        lines: list[str] = []
        for paragraph in text.splitlines() or [""]:
            line = ""
            for word in paragraph.split(" "):
                candidate = f"{line} {word}" if line else word
                if self.width(candidate, size) <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = ""
                for char in word:
                    if self.width(line + char, size) > width and line:
                        lines.append(line)
                        line = ""
                    line += char
            lines.append(line)
        return lines


def render(document: Document) -> bytes:
    """The document as PDF bytes: the same bytes for the same document."""
    pdf = _Pdf(orientation="portrait", unit="mm", format="A4")
    pdf.set_creation_date(document.created_at)
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.c_margin = 0  # runs are placed exactly: no padding inside each cell
    pdf.set_title(f"{document.title} {document.number}")
    pdf.set_author(document.issuer.name)
    pdf.set_subject(f"{document.title} {document.number} for {document.recipient.name}")
    pdf.set_creator(document.issuer.name)
    canvas = _Canvas(pdf, scripts_needed(document.texts()))
    pdf._canvas = canvas
    pdf._footer_text = f"{document.issuer.name} · {document.title} {document.number}"
    _Page(pdf, canvas, document).draw()
    return bytes(pdf.output())


class _Page:
    def __init__(self, pdf: _Pdf, canvas: _Canvas, document: Document) -> None:
        self.pdf = pdf
        self.canvas = canvas
        self.document = document
        self.y = MARGIN

    def draw(self) -> None:
        self._new_page()
        self._heading()
        self._parties()
        self._table()
        self._totals()
        self._notes()

    def _new_page(self) -> None:
        self.pdf.add_page()
        self.y = MARGIN
        if self.document.mark:
            self._mark(self.document.mark)

    def _mark(self, text: str) -> None:
        pdf = self.pdf
        with pdf.rotation(35, PAGE_WIDTH / 2, PAGE_HEIGHT / 2):
            self.canvas.line_text(
                0, PAGE_HEIGHT / 2 - 25, text, 110, bold=True, color=(232, 200, 200), width=PAGE_WIDTH, align="C"
            )

    def _room(self, height: float, *, table: bool = False) -> None:
        if self.y + height > BODY_BOTTOM:
            self._new_page()
            if table:
                self._table_header()

    def _heading(self) -> None:
        doc = self.document
        self.canvas.line_text(MARGIN, self.y, doc.issuer.name, 14, bold=True)
        self.canvas.line_text(MARGIN, self.y, doc.title.upper(), 20, bold=True, width=CONTENT_WIDTH, align="R")
        y = self.y + 7.5
        for line in doc.issuer.lines:
            self.canvas.line_text(MARGIN, y, line, 8.5, color=MUTED)
            y += 4.2
        self.canvas.line_text(MARGIN, self.y + 9.5, doc.number, 11, color=MUTED, width=CONTENT_WIDTH, align="R")
        self.y = max(y, self.y + 16) + 6
        self.pdf.set_draw_color(*RULE)
        self.pdf.set_line_width(0.3)
        self.pdf.line(MARGIN, self.y, PAGE_WIDTH - MARGIN, self.y)
        self.y += 6

    def _parties(self) -> None:
        doc = self.document
        left_width = CONTENT_WIDTH * 0.5
        self.canvas.line_text(MARGIN, self.y, "BILL TO", 7.5, bold=True, color=MUTED)
        y = self.y + 5
        for index, line in enumerate((doc.recipient.name, *doc.recipient.lines)):
            size = 11 if index == 0 else 9
            for part in self.canvas.wrap(line, size, left_width - 4):
                self.canvas.line_text(MARGIN, y, part, size, bold=index == 0)
                y += size * MM_PER_PT * 1.45
        label_x = MARGIN + left_width
        facts_y = self.y
        for label, value in doc.facts:
            self.canvas.line_text(label_x, facts_y, label, 8.5, color=MUTED)
            self.canvas.line_text(label_x + 30, facts_y, value, 9, width=CONTENT_WIDTH - left_width - 30, align="R")
            facts_y += 5.2
        self.y = max(y, facts_y) + 8

    def _table_header(self) -> None:
        pdf = self.pdf
        pdf.set_fill_color(*SHADE)
        pdf.rect(MARGIN, self.y, CONTENT_WIDTH, 7, style="F")
        x = MARGIN
        for (title, align), width in zip(
            (("Description", "L"), ("Qty", "R"), ("Unit price", "R"), ("Amount", "R")), COLUMNS, strict=True
        ):
            self.canvas.line_text(x + 2, self.y + 1.8, title, 8, bold=True, color=MUTED, width=width - 4, align=align)
            x += width
        self.y += 9

    def _table(self) -> None:
        self._room(20)
        self._table_header()
        for row in self.document.rows:
            self._row(row)

    def _row(self, row: Row) -> None:
        description = self.canvas.wrap(row.description, 9, COLUMNS[0] - 4)
        detail = self.canvas.wrap(row.detail, 7.5, COLUMNS[0] - 4) if row.detail else []
        height = len(description) * 4.4 + len(detail) * 3.6 + 3
        self._room(height, table=True)
        y = self.y
        for line in description:
            self.canvas.line_text(MARGIN + 2, y, line, 9)
            y += 4.4
        for line in detail:
            self.canvas.line_text(MARGIN + 2, y, line, 7.5, color=MUTED)
            y += 3.6
        x = MARGIN + COLUMNS[0]
        for value, width in zip((row.quantity, row.unit_price, row.amount), COLUMNS[1:], strict=True):
            self.canvas.line_text(x + 2, self.y, value, self._fitting(value, 9, width - 4), width=width - 4, align="R")
            x += width
        self.y += height
        self.pdf.set_draw_color(*RULE)
        self.pdf.set_line_width(0.2)
        self.pdf.line(MARGIN, self.y - 1.5, PAGE_WIDTH - MARGIN, self.y - 1.5)

    def _fitting(self, text: str, size: float, width: float) -> float:
        """`size`, or smaller so that `text` fits `width` (a figure is never cut or wrapped)."""
        used = self.canvas.width(text, size)
        return size if used <= width else size * width / used

    def _totals(self) -> None:
        totals = self.document.totals
        self._room(len(totals) * 6 + 6)
        self.y += 3
        label_x = MARGIN + CONTENT_WIDTH - 100
        for total in totals:
            size = 10.5 if total.strong else 9
            if total.strong:
                self.pdf.set_draw_color(*RULE)
                self.pdf.line(label_x, self.y - 0.8, PAGE_WIDTH - MARGIN, self.y - 0.8)
            self.canvas.line_text(label_x, self.y, total.label, size, bold=total.strong)
            value_size = self._fitting(total.value, size, 60)
            self.canvas.line_text(label_x, self.y, total.value, value_size, bold=total.strong, width=98, align="R")
            self.y += 6.5 if total.strong else 5.5

    def _notes(self) -> None:
        self.y += 6
        for note in self.document.notes:
            for line in self.canvas.wrap(note, 8, CONTENT_WIDTH):
                self._room(4)
                self.canvas.line_text(MARGIN, self.y, line, 8, color=MUTED)
                self.y += 4
