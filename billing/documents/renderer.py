"""Draws a `layout.Document` as an A4 PDF with fpdf2: the adapter between the pure layout and the PDF library.

Fonts are embedded from PyPI font packages, found through importlib.resources, never the system's:
- Noto Sans (`fontpkg-noto-sans`, a variable TTF used at its default instance, weight 400): Latin, Greek,
  Cyrillic. Headings are drawn with a stroke around the glyphs (a synthetic bold), because instancing the
  variable font's bold costs seconds per process.
- IBM Plex Sans Arabic (`fontpkg-ibm-plex-sans-arabic`): Arabic, shaped right to left by HarfBuzz (uharfbuzz).
  Noto Sans Arabic splits letters into a base glyph and its dots, which fpdf2 leaves without a Unicode mapping,
  so copied or extracted text would carry stray characters; Plex maps every glyph back to its letters.
- Heebo (`fontpkg-heebo`, variable, default instance 400): Hebrew, right to left.
- Noto Sans Thai (`fontpkg-noto-sans-thai`, variable, default instance 400): Thai, shaped (stacked marks).
- Noto Sans CJK TC (`cvttf-notosanscjk-regular`, a CID-keyed CFF OpenType font): Chinese, Japanese, Korean.
Any other character (emoji, scripts without a font here) is written as its code point (`scripts`).

The fonts beyond Latin are added only to a document whose text needs them, and then cut first to the
characters the document draws in them (`_subset_file`): fpdf2 parses a font on every `add_font` and subsets it
again on every output, which for the 16 MB CJK font cost about 0.8 s a render. The cut is cached per process
(its bytes in memory, by font and characters; its file in a folder of the process's, since fpdf2 and HarfBuzz
read fonts from files), so the documents of one tenant reuse it. fpdf2's own font objects cannot be shared
between documents: each holds its document's subset and its output subsets the parsed font in place. Each
font's character coverage is read once per process.

Deterministic: the same document gives the same bytes. The creation date is the document's own (an invoice's
issue), and fpdf2's trailer /ID is the MD5 of the content and that date (no random part); font subsets are
named from their glyphs, and a cut font depends only on its characters. fpdf2's own fallback-font mechanism is
not used: with text shaping on, it loses the font size after a right-to-left run (fpdf2 2.8.9), so each run is
set in its font here.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import logging
import os
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path

from fontTools import subset as font_subset
from fontTools import ttLib
from fpdf import FPDF
from fpdf.enums import TextMode

from billing.documents.layout import Document, Row
from billing.documents.scripts import RIGHT_TO_LEFT, Run, Script, drawable_runs

# fontTools reports each table it subsets at INFO: noise in the application's logs.
logging.getLogger("fontTools").setLevel(logging.WARNING)

FONT_FILES: dict[Script, tuple[str, str]] = {
    "latin": ("fontpkg_noto_sans", "files/NotoSans[wdth,wght].ttf"),
    "arabic": ("fontpkg_ibm_plex_sans_arabic", "files/IBMPlexSansArabic-Regular.ttf"),
    "hebrew": ("fontpkg_heebo", "files/Heebo[wght].ttf"),
    "thai": ("fontpkg_noto_sans_thai", "files/NotoSansThai[wdth,wght].ttf"),
    "cjk": ("cvttf_NotoSansCJK_Regular", "NotoSansCJKtc-Regular.otf"),
}
# HarfBuzz's script tags of the scripts that are shaped (the others are drawn glyph by glyph).
SHAPED: dict[Script, str] = {"arabic": "arab", "hebrew": "hebr", "thai": "thai"}
SUBSETS_KEPT = 64

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


@functools.cache
def _coverage(script: Script) -> frozenset[int]:
    """The code points the font of `script` has a glyph for (read once per process)."""
    font = ttLib.TTFont(str(font_path(script)), lazy=True)
    try:
        return frozenset(font.getBestCmap())
    finally:
        font.close()


def covers(script: Script, char: str) -> bool:
    return ord(char) in _coverage(script)


@functools.lru_cache(maxsize=SUBSETS_KEPT)
def _subset_bytes(script: Script, chars: frozenset[str]) -> bytes:
    """The font of `script` cut to `chars` (and what shaping them needs: every layout feature is kept)."""
    options = font_subset.Options()
    options.layout_features = ["*"]
    options.name_IDs = ["*"]
    options.notdef_outline = True
    options.drop_tables += ["meta"]  # fpdf2 drops it too; the subsetter would warn that it cannot cut it
    font = ttLib.TTFont(str(font_path(script)), recalcTimestamp=False, lazy=True)
    try:
        subsetter = font_subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(_with_parts(chars)))
        subsetter.subset(font)
        out = io.BytesIO()
        font.save(out)
        return out.getvalue()
    finally:
        font.close()


def _with_parts(chars: frozenset[str]) -> set[int]:
    """The code points of `chars` and of their decompositions: a shaper may draw a character as its parts
    (HarfBuzz draws Thai SARA AM as NIKHAHIT and SARA AA), which the cut font must then have."""
    found = {ord(char) for char in chars}
    for char in chars:
        found.update(int(part, 16) for part in unicodedata.decomposition(char).split() if not part.startswith("<"))
    return found


@functools.cache
def _font_folder(pid: int) -> Path:
    """This process's folder of cut fonts (a forked worker makes its own), removed when it exits."""
    folder = Path(tempfile.mkdtemp(prefix=f"controlplane-fonts-{pid}-"))
    atexit.register(_remove_folder, folder, pid)
    return folder


def _remove_folder(folder: Path, pid: int) -> None:
    if os.getpid() == pid:  # not from a forked child that inherited the exit handler
        shutil.rmtree(folder, ignore_errors=True)


def _subset_file(script: Script, chars: frozenset[str]) -> Path:
    """The cut font as a file (fpdf2 and HarfBuzz read fonts from files), written once per process."""
    content = _subset_bytes(script, chars)
    suffix = Path(FONT_FILES[script][1]).suffix
    folder = _font_folder(os.getpid())
    path = folder / f"{script}-{hashlib.sha256(content).hexdigest()[:24]}{suffix}"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)  # a temporary-files cleaner may have removed it
        partial = path.with_suffix(f".{threading.get_ident()}.partial")
        partial.write_bytes(content)
        partial.replace(path)  # atomic: a render in another thread reads it whole or not at all
    return path


def _fonts_of(document: Document) -> dict[Script, frozenset[str]]:
    """The scripts beyond Latin that the document draws, each with the characters drawn in its font. A line
    drawn is a part of one of the document's texts, and a part's runs give a character the script its whole
    text gives it, or Latin (a space at a part's edge): so these characters are all a font is asked for."""
    used: dict[Script, set[str]] = {}
    for text in document.texts():
        for run in _runs(text):
            if run.script != "latin":
                used.setdefault(run.script, set()).update(run.text)
    return {script: frozenset(chars) for script, chars in used.items()}


@functools.lru_cache(maxsize=4096)
def _runs(text: str) -> tuple[Run, ...]:
    """The runs `text` is drawn in (cached: wrapping measures the same texts again and again)."""
    return tuple(
        Run(run.script, _thai_parts(run.text)) if run.script == "thai" else run for run in drawable_runs(text, covers)
    )


class _Pdf(FPDF):
    def footer(self) -> None:  # fpdf2 calls it on each page
        canvas = self._canvas
        page = f"Page {self.page_no()} of {{nb}}"
        room = CONTENT_WIDTH - canvas.width(page.replace("{nb}", "000"), 7.5) - 4
        canvas.line_text(MARGIN, FOOTER_Y, self._footer_text, canvas.fitting(self._footer_text, 7.5, room), color=MUTED)
        canvas.line_text(MARGIN, FOOTER_Y, page, 7.5, color=MUTED, width=CONTENT_WIDTH, align="R")

    _canvas: _Canvas
    _footer_text: str


class _Canvas:
    """Text in any script at a position: each run in its own font, shaped where its script needs it."""

    def __init__(self, pdf: FPDF, fonts: dict[Script, frozenset[str]]) -> None:
        self.pdf = pdf
        pdf.add_font("latin", "", str(font_path("latin")))
        for script in sorted(fonts):
            pdf.add_font(script, "", str(_subset_file(script, fonts[script])))
        self.scripts = frozenset(fonts) | {"latin"}

    @staticmethod
    def runs(text: str) -> tuple[Run, ...]:
        return _runs(text)

    def _use(self, run: Run, size: float) -> None:
        if run.script not in self.scripts:  # the document's texts named every script drawn
            raise RuntimeError(f"no font added for {run.script} text")
        self.pdf.set_font(run.script, "", size)
        if run.script in SHAPED:
            direction = "rtl" if run.script in RIGHT_TO_LEFT else "ltr"
            self.pdf.set_text_shaping(True, direction=direction, script=SHAPED[run.script])
        else:
            self.pdf.set_text_shaping(False)

    def width(self, text: str, size: float) -> float:
        total = 0.0
        for run in self.runs(text):
            self._use(run, size)
            total += self.pdf.get_string_width(run.text)
        return total

    def fitting(self, text: str, size: float, width: float) -> float:
        """`size`, or smaller so that `text` fits `width` (a figure is never cut or wrapped)."""
        used = self.width(text, size)
        return size if used <= width else size * width / used

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
            for run in self.runs(text):
                self._use(run, size)
                run_width = self.pdf.get_string_width(run.text)
                self.pdf.set_xy(start, y)
                self.pdf.cell(w=run_width, h=height, text=run.text)
                start += run_width

    def wrap(self, text: str, size: float, width: float) -> list[str]:
        """`text` broken into lines no wider than `width`: at each newline (and nowhere else a separator might
        suggest: U+2028 and the like are drawn as characters), then at spaces; a word too long is cut between
        characters, a mark kept with its letter."""
        lines: list[str] = []
        for paragraph in text.split("\n"):
            line = ""
            for word in paragraph.split(" "):
                candidate = f"{line} {word}" if line else word
                if self.width(candidate, size) <= width:
                    line = candidate
                    continue
                if line:
                    lines.append(line)
                line = ""
                for cluster in _clusters(word):
                    if self.width(line + cluster, size) > width and line:
                        lines.append(line)
                        line = ""
                    line += cluster
            lines.append(line)
        return lines


THAI_TONE_MARKS = "\u0e48\u0e49\u0e4a\u0e4b"


def _thai_parts(text: str) -> str:
    """SARA AM as its parts, NIKHAHIT before the tone mark it follows, SARA AA after (as HarfBuzz draws it):
    fpdf2 maps only the first glyph of a character drawn as two back to the character, so the second would
    read as a stray code in copied text. Copied text has the parts (`unicodedata.normalize("NFKC", ...)`'s)."""
    if "\u0e33" not in text:
        return text
    out: list[str] = []
    for char in text:
        if char != "\u0e33":
            out.append(char)
            continue
        marks = 0
        while marks < len(out) and out[-1 - marks] in THAI_TONE_MARKS:
            marks += 1
        out.insert(len(out) - marks, "\u0e4d")
        out.append("\u0e32")
    return "".join(out)


def _clusters(word: str) -> list[str]:
    """`word` as its letters, each with the combining marks after it (a Thai tone mark stays on its letter)."""
    found: list[str] = []
    for char in word:
        if found and unicodedata.category(char).startswith("M"):
            found[-1] += char
        else:
            found.append(char)
    return found


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
    canvas = _Canvas(pdf, _fonts_of(document))
    pdf._canvas = canvas
    pdf._footer_text = document.footer
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
            size = self.canvas.fitting(text, 110, PAGE_WIDTH + 40)  # "UNCOLLECTIBLE" along the diagonal
            self.canvas.line_text(
                0, PAGE_HEIGHT / 2 - 25, text, size, bold=True, color=(232, 200, 200), width=PAGE_WIDTH, align="C"
            )

    def _room(self, height: float, *, table: bool = False) -> None:
        if self.y + height > BODY_BOTTOM:
            self._new_page()
            if table:
                self._table_header()

    def _heading(self) -> None:
        doc = self.document
        canvas, half = self.canvas, CONTENT_WIDTH / 2
        title = doc.title.upper()
        name_room = CONTENT_WIDTH - canvas.width(title, 20) - 6
        canvas.line_text(MARGIN, self.y, doc.issuer.name, canvas.fitting(doc.issuer.name, 14, name_room), bold=True)
        canvas.line_text(MARGIN, self.y, title, 20, bold=True, width=CONTENT_WIDTH, align="R")
        y = self.y + 7.5
        for line in doc.issuer.lines:
            canvas.line_text(MARGIN, y, line, canvas.fitting(line, 8.5, half - 4), color=MUTED)
            y += 4.2
        # The number again beside the recipient, at full size (wrapped there if long): here it is made to fit.
        size = canvas.fitting(doc.number, 11, half)
        canvas.line_text(MARGIN, self.y + 9.5, doc.number, size, color=MUTED, width=CONTENT_WIDTH, align="R")
        self.y = max(y, self.y + 16) + 6
        self.pdf.set_draw_color(*RULE)
        self.pdf.set_line_width(0.3)
        self.pdf.line(MARGIN, self.y, PAGE_WIDTH - MARGIN, self.y)
        self.y += 6

    def _parties(self) -> None:
        """The recipient on the left, line by line (a long one goes on over the next page); the facts on the
        right, each value wrapped within its own column so it never runs over its label."""
        doc = self.document
        left_width = CONTENT_WIDTH * 0.5
        label_x = MARGIN + left_width
        value_width = CONTENT_WIDTH - left_width - 30
        facts_y = self.y
        for label, value in doc.facts:
            self.canvas.line_text(label_x, facts_y, label, self.canvas.fitting(label, 8.5, 29), color=MUTED)
            for part in self.canvas.wrap(value, 9, value_width):
                self.canvas.line_text(label_x + 30, facts_y, part, 9, width=value_width, align="R")
                facts_y += 4.4
            facts_y += 0.8
        self.canvas.line_text(MARGIN, self.y, "BILL TO", 7.5, bold=True, color=MUTED)
        self.y += 5
        first_page = self.pdf.page_no()
        for index, line in enumerate((doc.recipient.name, *doc.recipient.lines)):
            size = 11 if index == 0 else 9
            step = size * MM_PER_PT * 1.45
            for part in self.canvas.wrap(line, size, left_width - 4):
                self._room(step)
                self.canvas.line_text(MARGIN, self.y, part, size, bold=index == 0)
                self.y += step
        if self.pdf.page_no() == first_page:
            self.y = max(self.y, facts_y)
        self.y += 8

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
        """A row kept whole on one page when it fits on one; a taller one (a 100-line reason) goes on over the
        next pages, line by line, under the table's header again."""
        lines = [(text, 9.0, INK, 4.4) for text in self.canvas.wrap(row.description, 9, COLUMNS[0] - 4)]
        if row.detail:
            lines += [(text, 7.5, MUTED, 3.6) for text in self.canvas.wrap(row.detail, 7.5, COLUMNS[0] - 4)]
        height = sum(step for *_, step in lines) + 3
        whole = height <= BODY_BOTTOM - MARGIN - 9
        self._room(height if whole else lines[0][3] + 3, table=True)
        x = MARGIN + COLUMNS[0]
        for value, width in zip((row.quantity, row.unit_price, row.amount), COLUMNS[1:], strict=True):
            size = self.canvas.fitting(value, 9, width - 4)
            self.canvas.line_text(x + 2, self.y, value, size, width=width - 4, align="R")
            x += width
        for index, (text, size, color, step) in enumerate(lines):
            if not whole:
                self._room(step + (3 if index == len(lines) - 1 else 0), table=True)
            self.canvas.line_text(MARGIN + 2, self.y, text, size, color=color)
            self.y += step
        self.y += 3
        self.pdf.set_draw_color(*RULE)
        self.pdf.set_line_width(0.2)
        self.pdf.line(MARGIN, self.y - 1.5, PAGE_WIDTH - MARGIN, self.y - 1.5)

    def _totals(self) -> None:
        """The totals kept together when they fit on a page; each label wrapped beside its value (a tax's
        name may be long), the value made smaller rather than cut."""
        label_x = MARGIN + CONTENT_WIDTH - 100
        drawn = []
        for total in self.document.totals:
            size = 10.5 if total.strong else 9
            value_size = self.canvas.fitting(total.value, size, 60)
            room = 98 - self.canvas.width(total.value, value_size) - 4
            labels = self.canvas.wrap(total.label, size, room)
            step = size * MM_PER_PT * 1.45
            height = (len(labels) - 1) * step + (6.5 if total.strong else 5.5)
            drawn.append((total, size, value_size, labels, step, height))
        whole = sum(height for *_, height in drawn) + 6
        self._room(whole if whole <= BODY_BOTTOM - MARGIN else drawn[0][-1] + 3)
        self.y += 3
        for total, size, value_size, labels, step, height in drawn:
            self._room(height)
            if total.strong:
                self.pdf.set_draw_color(*RULE)
                self.pdf.line(label_x, self.y - 0.8, PAGE_WIDTH - MARGIN, self.y - 0.8)
            # The label's first line, then the value: text extraction reads "Total 60.00 EUR".
            for index, label in enumerate(labels):
                self.canvas.line_text(label_x, self.y + index * step, label, size, bold=total.strong)
                if index == 0:
                    self.canvas.line_text(
                        label_x, self.y, total.value, value_size, bold=total.strong, width=98, align="R"
                    )
            self.y += height

    def _notes(self) -> None:
        self.y += 6
        for note in self.document.notes:
            for line in self.canvas.wrap(note, 8, CONTENT_WIDTH):
                self._room(4)
                self.canvas.line_text(MARGIN, self.y, line, 8, color=MUTED)
                self.y += 4
