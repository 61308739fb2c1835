"""Which embedded font each stretch of a text needs. Pure.

Names and addresses may be in any script. The renderer embeds Noto Sans (Latin, Greek, Cyrillic) always, and a
font for Arabic, Hebrew, Thai or CJK (Chinese, Japanese, Korean) only when a document's text has such
characters, so a Latin invoice stays small and fast. A text is cut into runs of one script: Arabic and Hebrew
runs are shaped right to left, Thai runs left to right (its marks stack on their letters); whitespace and
punctuation between two characters of one script stay in that script's run, and go to the Latin font at a
boundary. A line whose first letter is Arabic or Hebrew reads right to left, so its runs are laid out in
reverse (a simplified bidi: enough for names and addresses, not for nested embeddings).

A character that its run's font cannot draw goes to the Latin font if that has it, and is otherwise written as
its code point (`[U+1F600]`: emoji and scripts without a font here), never left blank; so are control
characters and line or paragraph separators, which draw nothing or would break a line. Only `\n` breaks a
line (the renderer's business); a tab is a space; an invisible format character that no font has (a variation
selector, a zero-width joiner) is left out.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Literal

Script = Literal["latin", "arabic", "hebrew", "thai", "cjk"]
RIGHT_TO_LEFT: frozenset[Script] = frozenset({"arabic", "hebrew"})

_ARABIC = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x0870, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))
_HEBREW = ((0x0590, 0x05FF), (0xFB1D, 0xFB4F))
_THAI = ((0x0E00, 0x0E7F),)
_CJK = (
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x2E80, 0x2FFF),  # radicals, ideographic description
    (0x3000, 0x303F),  # CJK punctuation
    (0x3040, 0x31FF),  # kana, bopomofo, Hangul compatibility Jamo
    (0x3200, 0x4DBF),  # enclosed, compatibility, extension A
    (0x4E00, 0x9FFF),  # unified ideographs
    (0xA960, 0xA97F),
    (0xAC00, 0xD7FF),  # Hangul syllables
    (0xF900, 0xFAFF),  # compatibility ideographs
    (0xFE30, 0xFE4F),
    (0xFF00, 0xFFEF),  # half- and full-width forms
    (0x20000, 0x3134F),  # extensions B to G
)


@dataclass(frozen=True, slots=True)
class Run:
    script: Script
    text: str


def _in(code: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(low <= code <= high for low, high in ranges)


@functools.cache  # a document's few distinct characters, asked about again and again
def script_of(char: str) -> Script | None:
    """The script whose font draws `char`; None for whitespace and punctuation any font has."""
    code = ord(char)
    if _in(code, _ARABIC):
        return "arabic"
    if _in(code, _HEBREW):
        return "hebrew"
    if _in(code, _THAI):
        return "thai"
    if _in(code, _CJK):
        return "cjk"
    if char.isspace() or (code < 0x80 and not char.isalnum()) or unicodedata.category(char).startswith("P"):
        return None
    return "latin"


def runs(text: str) -> list[Run]:
    """`text` cut into runs of one script, in logical (reading) order."""
    pieces: list[tuple[Script, str]] = []
    before: Script | None = None  # the script of the last character that has one
    neutral_from = 0  # where the whitespace and punctuation since then start: placed once the next script is known
    for index, char in enumerate(text):
        script = script_of(char)
        if script is None:
            continue
        if neutral_from < index:
            pieces.append((script if script == before else "latin", text[neutral_from:index]))
        pieces.append((script, char))
        before, neutral_from = script, index + 1
    if neutral_from < len(text):
        pieces.append(("latin", text[neutral_from:]))
    return [Run(script, "".join(part for _, part in group)) for script, group in groupby(pieces, key=itemgetter(0))]


def right_to_left(text: str) -> bool:
    """Whether the line reads right to left: its first letter is Arabic or Hebrew."""
    for char in text:
        script = script_of(char)
        if script is not None and (script != "latin" or char.isalpha()):
            return script in RIGHT_TO_LEFT
    return False


def visual_runs(text: str) -> list[Run]:
    """The runs in the order they are drawn from left to right. In a right-to-left line, a left-to-right run's
    leading and trailing spaces swap sides, so the gap stays between it and its right-to-left neighbour."""
    found = runs(text)
    if not right_to_left(text):
        return found
    mirrored = []
    for run in reversed(found):
        if run.script in RIGHT_TO_LEFT:
            mirrored.append(run)
            continue
        body = run.text.strip(" ")
        if not body:
            mirrored.append(run)
            continue
        leading = len(run.text) - len(run.text.lstrip(" "))
        trailing = len(run.text) - len(run.text.rstrip(" "))
        mirrored.append(Run(run.script, " " * trailing + body + " " * leading))
    return mirrored


def drawable_runs(text: str, covers: Callable[[Script, str], bool]) -> list[Run]:
    """`visual_runs(text)` as drawn: each character in a font that `covers` it (its run's, else the Latin
    one), or written as its code point in the Latin font; see the module's docstring."""
    drawn: list[Run] = []
    for run in visual_runs(text):
        pieces: list[tuple[Script, str]] = []
        for char in run.text:
            category = unicodedata.category(char)
            if char == "\t":
                pieces.append((run.script, " "))
            elif category in ("Cc", "Zl", "Zp"):
                pieces.append(("latin", code_point(char)))
            elif covers(run.script, char):
                pieces.append((run.script, char))
            elif covers("latin", char):
                pieces.append(("latin", char))
            elif category != "Cf" and not _variation_selector(char):
                pieces.append(("latin", code_point(char)))
        if run.script in RIGHT_TO_LEFT:
            # A right-to-left run is drawn reversed by its shaping: so are the pieces it was cut into.
            pieces = _reversed_groups(pieces)
        for script, group in groupby(pieces, key=itemgetter(0)):
            piece = "".join(part for _, part in group)
            if drawn and drawn[-1].script == script and script not in RIGHT_TO_LEFT:
                drawn[-1] = Run(script, drawn[-1].text + piece)
            else:
                drawn.append(Run(script, piece))
    return drawn


def _reversed_groups(pieces: list[tuple[Script, str]]) -> list[tuple[Script, str]]:
    groups = [list(group) for _, group in groupby(pieces, key=itemgetter(0))]
    return [piece for group in reversed(groups) for piece in group]


def code_point(char: str) -> str:
    """How a character that cannot be drawn is written: `[U+1F600]`."""
    return f"[U+{ord(char):04X}]"


def _variation_selector(char: str) -> bool:
    code = ord(char)
    return 0xFE00 <= code <= 0xFE0F or 0xE0100 <= code <= 0xE01EF
