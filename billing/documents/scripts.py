"""Which embedded font each stretch of a text needs. Pure.

Names and addresses may be in any script. The renderer embeds Noto Sans (Latin, Greek, Cyrillic) always, and a
font for Arabic or for CJK (Chinese, Japanese, Korean) only when a document's text has such characters, so a
Latin invoice stays small and fast. A text is cut into runs of one script: Arabic runs are shaped right to
left; whitespace and punctuation between two characters of one script stay in that script's run, and go to
the Latin font at a boundary. A line whose first letter is Arabic reads right to left, so its runs are laid
out in reverse (a simplified bidi: enough for names and addresses, not for nested embeddings).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import Literal

Script = Literal["latin", "arabic", "cjk"]

_ARABIC = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x0870, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF))
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


def script_of(char: str) -> Script | None:
    """The script whose font draws `char`; None for whitespace and punctuation any font has."""
    code = ord(char)
    if _in(code, _ARABIC):
        return "arabic"
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
    """Whether the line reads right to left: its first letter is Arabic."""
    for char in text:
        script = script_of(char)
        if script is not None and (script != "latin" or char.isalpha()):
            return script == "arabic"
    return False


def visual_runs(text: str) -> list[Run]:
    """The runs in the order they are drawn from left to right. In a right-to-left line, a left-to-right run's
    leading and trailing spaces swap sides, so the gap stays between it and its Arabic neighbour."""
    found = runs(text)
    if not right_to_left(text):
        return found
    mirrored = []
    for run in reversed(found):
        if run.script == "arabic":
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


def scripts_needed(texts: Iterable[str]) -> frozenset[Script]:
    """The scripts beyond Latin that a document's texts use: the fonts to embed besides the Latin one."""
    found: set[Script] = set()
    for text in texts:
        for char in text:
            script = script_of(char)
            if script is not None and script != "latin":
                found.add(script)
    return frozenset(found)
