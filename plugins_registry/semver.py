"""Semantic Versioning 2.0.0 (https://semver.org) and npm-style version ranges. Pure: standard library only.

`Version` compares by SemVer precedence. Build metadata is kept (and printed) but, as the spec says, plays no
part in precedence; equality and hashing ignore it too, so that `a == b` exactly when neither `a < b` nor
`a > b`, and sets, dicts and sorting all agree: `1.0.0+a == 1.0.0+b`.

`VersionRange` follows node-semver: `>=1.2.3 <2` (AND), `a || b` (OR), `^1.2.3`, `~1.2.3`, `1.x`, `1.2.*`,
`*`, `1.2.3 - 2.3.4`. Upper bounds made from sugar are `<X.Y.Z-0`, so `^1.2.3` never admits `2.0.0-rc.1`.
A pre-release version matches only a comparator set naming a pre-release of the same major.minor.patch,
unless `include_prerelease=True` (then wildcard lower bounds also admit their own pre-releases: `1.x`
matches `1.0.0-rc.1`, as in node-semver).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from plugins_registry.errors import InvalidVersion, InvalidVersionRange

__all__ = ["MAX_LENGTH", "MAX_NUMBER", "Version", "VersionRange", "caret_range_of", "latest"]

MAX_LENGTH = 256
# JavaScript's Number.MAX_SAFE_INTEGER: versions must survive a JSON round trip through any client.
MAX_NUMBER = 2**53 - 1
MAX_COMPARATORS = 32

_NUM = r"0|[1-9][0-9]*"
_IDENT = r"[0-9A-Za-z-]+"
_DOTTED = rf"{_IDENT}(?:\.{_IDENT})*"
# Explicit ASCII classes: `\d` would accept other scripts' digits.
_VERSION_RE = re.compile(rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_DOTTED}))?(?:\+({_DOTTED}))?")
_ALPHANUMERIC_RE = re.compile(r"[0-9A-Za-z-]*[A-Za-z-][0-9A-Za-z-]*")
_BUILD_RE = re.compile(_DOTTED)
_PART = rf"{_NUM}|[xX*]"
_PARTIAL_RE = re.compile(rf"({_PART})(?:\.({_PART}))?(?:\.({_PART}))?")
_COMPARATOR_RE = re.compile(r"(>=|<=|>|<|=|\^|~)?(.+)")
# `>= 1.2.3` is `>=1.2.3`, but `> =1.2.3` stays two tokens and is refused.
_GLUE_RE = re.compile(r"(>=|<=|[<>=^~])\s+(?=[^\s<>=^~|])")
_WILDCARDS = frozenset({"x", "X", "*"})

_SortKey = tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _check_number(value: object, what: str) -> None:
    # `type(...) is int` also refuses bool.
    if type(value) is not int or not 0 <= value <= MAX_NUMBER:
        raise InvalidVersion(f"The {what} must be a whole number from 0 to {MAX_NUMBER}, not {value!r}.")


@dataclass(frozen=True, slots=True, eq=False)  # eq=False: equality is by precedence, defined below.
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[str | int, ...] = ()
    build: str = ""

    def __post_init__(self) -> None:
        _check_number(self.major, "major version")
        _check_number(self.minor, "minor version")
        _check_number(self.patch, "patch version")
        if type(self.prerelease) is not tuple:
            raise InvalidVersion("The pre-release must be a tuple of identifiers.")
        for ident in self.prerelease:
            if isinstance(ident, str):
                # An all-digit string would print like a number but sort like text.
                if not _ALPHANUMERIC_RE.fullmatch(ident):
                    raise InvalidVersion(f"{ident!r} is not a pre-release identifier (use an int for numbers).")
            else:
                _check_number(ident, "numeric pre-release identifier")
        if type(self.build) is not str or (self.build and not _BUILD_RE.fullmatch(self.build)):
            raise InvalidVersion(f"{self.build!r} is not build metadata: dot-separated [0-9A-Za-z-] identifiers.")

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse strict SemVer 2.0.0 text: no `v` prefix, no whitespace, no leading zeros."""
        if not isinstance(text, str):
            raise InvalidVersion("A version must be given as text.")
        if len(text) > MAX_LENGTH:
            raise InvalidVersion(f"A version is at most {MAX_LENGTH} characters long.")
        match = _VERSION_RE.fullmatch(text)
        if match is None:
            hint = " (write it without the leading 'v')" if text[:1] in ("v", "V") else ""
            raise InvalidVersion(f"{_shown(text)} is not a semantic version MAJOR.MINOR.PATCH[-PRE][+BUILD]{hint}.")
        major, minor, patch, pre, build = match.groups()
        return cls(
            int(major),
            int(minor),
            int(patch),
            tuple(_prerelease_identifier(ident) for ident in pre.split(".")) if pre else (),
            build or "",
        )

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(ident) for ident in self.prerelease)
        return text + ("+" + self.build if self.build else "")

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    @property
    def sort_key(self) -> _SortKey:
        """Orders as SemVer precedence: a release after its pre-releases; numbers before text, numerically."""
        idents = tuple((0, i, "") if isinstance(i, int) else (1, 0, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, idents)

    def __eq__(self, other: object) -> bool:
        return self.sort_key == other.sort_key if isinstance(other, Version) else NotImplemented

    def __hash__(self) -> int:
        return hash(self.sort_key)

    def __lt__(self, other: object) -> bool:
        return self.sort_key < other.sort_key if isinstance(other, Version) else NotImplemented

    def __le__(self, other: object) -> bool:
        return self.sort_key <= other.sort_key if isinstance(other, Version) else NotImplemented

    def __gt__(self, other: object) -> bool:
        return self.sort_key > other.sort_key if isinstance(other, Version) else NotImplemented

    def __ge__(self, other: object) -> bool:
        return self.sort_key >= other.sort_key if isinstance(other, Version) else NotImplemented


def _prerelease_identifier(ident: str) -> str | int:
    if not ident.isdigit():
        return ident
    if len(ident) > 1 and ident[0] == "0":
        raise InvalidVersion(f"The numeric pre-release identifier {_shown(ident)} has a leading zero.")
    return int(ident)


# A partial version as written in a range: a full Version, or the numbers before the first wildcard (0 to 2).
_Partial = Version | tuple[int, ...]
_Comparator = tuple[Callable[[Version, Version], bool], Version]
_TESTS: dict[str, Callable[[Version, Version], bool]] = {
    "=": operator.eq,
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
}
_NOTHING: list[_Comparator] = [(operator.lt, Version(0, 0, 0, (0,)))]


def _partial(text: str) -> _Partial:
    match = _PARTIAL_RE.fullmatch(text)
    if match is None:
        return Version.parse(text)  # has a pre-release or build, or is garbage: parse says which
    parts = [part for part in match.groups() if part is not None]
    numbers = [int(part) for part in parts if part not in _WILDCARDS]
    if any(part in _WILDCARDS for part in parts[: len(numbers)]):
        raise InvalidVersionRange(f"{_shown(text)} has a number after a wildcard.")
    for number in numbers:
        _check_number(number, "version number")
    return Version(numbers[0], numbers[1], numbers[2]) if len(numbers) == 3 else tuple(numbers)


def _padded(numbers: tuple[int, ...], prerelease: tuple[int, ...]) -> Version:
    major, minor, patch = (*numbers, 0, 0, 0)[:3]
    return Version(major, minor, patch, prerelease)


def _bumped(numbers: tuple[int, ...], at: int, prerelease: tuple[int, ...]) -> Version | None:
    """The least version whose number at `at` is one more; None past MAX_NUMBER (no valid version is there)."""
    if numbers[at] >= MAX_NUMBER:
        return None
    return _padded((*numbers[:at], numbers[at] + 1), prerelease)


def _at_least(partial: _Partial, floor: tuple[int, ...]) -> list[_Comparator]:
    if isinstance(partial, Version):
        return [(operator.ge, partial)]
    return [(operator.ge, _padded(partial, floor))] if partial else []


def _below_bump(numbers: tuple[int, ...], at: int) -> list[_Comparator]:
    bound = _bumped(numbers, at, (0,))
    return [] if bound is None else [(operator.lt, bound)]


def _desugar(op: str, partial: _Partial, floor: tuple[int, ...]) -> list[_Comparator]:
    """One written comparator as primitive ones; `floor` is the pre-release given to wildcard lower bounds."""
    numbers = partial.core if isinstance(partial, Version) else partial
    if op in ("^", "~") and not numbers:
        return []
    if op == "^":  # may change only right of the first non-zero number
        nonzero = [i for i, n in enumerate(numbers) if n]
        return _at_least(partial, floor) + _below_bump(numbers, nonzero[0] if nonzero else len(numbers) - 1)
    if op == "~":  # may change the patch (the minor if none is given)
        return _at_least(partial, floor) + _below_bump(numbers, min(1, len(numbers) - 1))
    if isinstance(partial, Version):
        return [(_TESTS[op or "="], partial)]
    if not partial:  # `*`: everything, or nothing for `>*` and `<*`
        return _NOTHING if op in (">", "<") else []
    if op in ("", "="):
        return _at_least(partial, floor) + _below_bump(partial, len(partial) - 1)
    if op == ">=":
        return _at_least(partial, floor)
    if op == "<=":
        return _below_bump(partial, len(partial) - 1)
    if op == "<":
        return [(operator.lt, _padded(partial, (0,)))]
    above = _bumped(partial, len(partial) - 1, floor)  # `>1.2` is `>=1.3.0`
    return _NOTHING if above is None else [(operator.ge, above)]


def _parse_range(text: str, floor: tuple[int, ...]) -> tuple[str, tuple[tuple[_Comparator, ...], ...]]:
    """The normalised text and the comparator sets (ORed) of primitive comparators (ANDed)."""
    if len(text) > MAX_LENGTH:
        raise InvalidVersionRange(f"A version range is at most {MAX_LENGTH} characters long.")
    if not text.strip():
        raise InvalidVersionRange("A version range cannot be empty (use * for any version).")
    written: list[str] = []
    sets: list[tuple[_Comparator, ...]] = []
    count = 0  # as written; a hyphen range counts two
    for alternative in text.split("||"):
        tokens = _GLUE_RE.sub(r"\1", alternative).split()
        if not tokens:
            raise InvalidVersionRange(f"{_shown(text)} has an empty alternative (nothing around '||').")
        if len(tokens) == 3 and tokens[1] == "-":
            low, high = _partial(tokens[0]), _partial(tokens[2])
            upper: list[_Comparator] = [(operator.le, high)] if isinstance(high, Version) else _desugar("<=", high, ())
            written.append(f"{tokens[0]} - {tokens[2]}")
            sets.append(tuple(_desugar(">=", low, floor) + upper))
            count += 2
            continue
        comparators: list[_Comparator] = []
        for token in tokens:
            match = _COMPARATOR_RE.fullmatch(token)
            if match is None or match[2][:1] in "<>=^~":
                raise InvalidVersionRange(f"{_shown(token)} is not a comparator such as >=1.2.3, ^1.2 or 1.x.")
            comparators += _desugar(match[1] or "", _partial(match[2]), floor)
        written.append(" ".join(tokens))
        sets.append(tuple(comparators))
        count += len(tokens)
    if count > MAX_COMPARATORS:
        raise InvalidVersionRange(f"A version range has at most {MAX_COMPARATORS} comparators.")
    return " || ".join(written), tuple(sets)


@dataclass(frozen=True, slots=True)
class VersionRange:
    """A parsed range; compares equal to another with the same normalised text."""

    text: str
    _strict: tuple[tuple[_Comparator, ...], ...] = field(init=False, repr=False, compare=False)
    _loose: tuple[tuple[_Comparator, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise InvalidVersionRange("A version range must be given as text.")
        try:
            normalised, strict = _parse_range(self.text, ())
            _, loose = _parse_range(self.text, (0,))
        except InvalidVersion as exc:
            raise InvalidVersionRange(f"The version range {_shown(self.text)} is not valid: {exc.detail}") from exc
        object.__setattr__(self, "text", normalised)
        object.__setattr__(self, "_strict", strict)
        object.__setattr__(self, "_loose", loose)

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        return cls(text)

    def __str__(self) -> str:
        return self.text

    def matches(self, version: Version, *, include_prerelease: bool = False) -> bool:
        sets = self._loose if include_prerelease else self._strict
        return any(_set_matches(comparators, version, include_prerelease) for comparators in sets)


def _set_matches(comparators: tuple[_Comparator, ...], version: Version, include_prerelease: bool) -> bool:
    if not all(test(version, bound) for test, bound in comparators):
        return False
    if include_prerelease or not version.prerelease:
        return True
    # Opting into one pre-release line (`>=1.2.3-beta`) must not admit every other unstable version.
    return any(bound.prerelease and bound.core == version.core for _, bound in comparators)


def latest(versions: Iterable[Version], *, include_prerelease: bool = False) -> Version | None:
    """The highest version (the first seen among equals), skipping pre-releases unless asked; None if none."""
    candidates = [v for v in versions if include_prerelease or not v.prerelease]
    return max(candidates, default=None)


def caret_range_of(version: Version) -> VersionRange:
    """`^version`: the compatible versions a license for `version` covers (build metadata dropped)."""
    return VersionRange(f"^{Version(*version.core, version.prerelease)}")
