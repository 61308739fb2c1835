"""Semantic versions and ranges: the spec's own examples, refused inputs, node-semver range sugar, and properties
checked against a reference comparison written straight from SemVer 2.0.0 clause 11."""

from __future__ import annotations

import dataclasses
import itertools
import random
from functools import cmp_to_key
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.core.errors import DomainError
from plugins_registry.errors import InvalidVersion, InvalidVersionRange
from plugins_registry.semver import MAX_NUMBER, Version, VersionRange, caret_range_of, latest

PROPERTY = settings(max_examples=300, deadline=None)
V = Version.parse
R = VersionRange.parse


# -- a reference comparison, on the text, as the spec words it ---------------------------------------------------


def reference_cmp(a: Version, b: Version) -> int:
    """SemVer 2.0.0 clause 11 applied to the printed forms; independent of `Version.sort_key`."""

    def split(v: Version) -> tuple[list[int], list[str]]:
        text = str(v).split("+", 1)[0]
        core, _, pre = text.partition("-")
        return [int(n) for n in core.split(".")], (pre.split(".") if pre else [])

    def sign(x: int) -> int:
        return (x > 0) - (x < 0)

    (core_a, pre_a), (core_b, pre_b) = split(a), split(b)
    for x, y in zip(core_a, core_b, strict=True):
        if x != y:
            return sign(x - y)
    if not pre_a or not pre_b:
        return sign(len(pre_b) - len(pre_a))  # a release ranks above its pre-releases
    for p, q in zip(pre_a, pre_b, strict=False):
        if p == q:
            continue
        if p.isdigit() and q.isdigit():
            return sign(int(p) - int(q))
        if p.isdigit() != q.isdigit():
            return -1 if p.isdigit() else 1  # numeric identifiers rank below alphanumeric ones
        return -1 if p < q else 1
    return sign(len(pre_a) - len(pre_b))


# -- generated versions: small alphabets so that equal parts and near neighbours are common ----------------------

numbers = st.one_of(st.integers(0, 3), st.integers(0, MAX_NUMBER))
small = st.integers(0, 3)
alphanumeric = st.text(alphabet="ab-0Z1", min_size=1, max_size=3).filter(lambda s: not s.isdigit())
identifiers = st.one_of(st.integers(0, 12), st.integers(0, MAX_NUMBER), alphanumeric)
builds = st.lists(st.text(alphabet="0a-Z", min_size=1, max_size=3), max_size=2).map(".".join)


@st.composite
def versions(draw: st.DrawFn, part: st.SearchStrategy[int] = numbers) -> Version:
    return Version(draw(part), draw(part), draw(part), tuple(draw(st.lists(identifiers, max_size=3))), draw(builds))


near = versions(small)  # for ranges: many versions share a major, minor or patch
stable = st.builds(Version, small, small, small)


def partial_text(draw: st.DrawFn) -> str:
    count = draw(st.integers(0, 3))
    parts = [str(draw(small)) for _ in range(count)] + [draw(st.sampled_from("xX*"))] * (3 - count)
    if count == 3 and draw(st.booleans()):
        parts[2] += "-" + draw(st.sampled_from(["alpha", "alpha.1", "beta.2", "0"]))
    return ".".join(parts[: max(count, draw(st.integers(1, 3)))])


@st.composite
def comparator_sets(draw: st.DrawFn, hyphens: bool = True) -> str:
    if hyphens and draw(st.integers(0, 4)) == 0:
        return f"{partial_text(draw)} - {partial_text(draw)}"
    ops = st.sampled_from(["", "=", ">", ">=", "<", "<=", "^", "~"])
    return " ".join(draw(ops) + partial_text(draw) for _ in range(draw(st.integers(1, 3))))


range_texts = st.lists(comparator_sets(), min_size=1, max_size=3).map(" || ".join)


# -- parsing and printing ------------------------------------------------------------------------------------------


def test_parse_reads_every_part() -> None:
    v = V("1.22.333-alpha.7.x-y-z.--+build.001")
    assert (v.major, v.minor, v.patch) == (1, 22, 333)
    assert v.prerelease == ("alpha", 7, "x-y-z", "--")
    assert v.build == "build.001"
    assert v.core == (1, 22, 333)
    assert v.is_prerelease
    assert not V("1.0.0+build").is_prerelease


@pytest.mark.parametrize(
    "text",
    ["0.0.0", "1.2.3-0", "1.2.3-0a", "1.2.3-a.0", "1.2.3+001", "1.2.3-rc.1+exp.sha.5114f85", f"{MAX_NUMBER}.0.0"],
)
def test_valid_edge_cases_round_trip(text: str) -> None:
    assert str(V(text)) == text


def test_a_version_of_exactly_the_maximum_length_is_accepted() -> None:
    text = "1.2.3-" + "a" * 250
    assert len(text) == 256
    assert str(V(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "v1.2.3",
        "V1.2.3",
        "=1.2.3",
        " 1.2.3",
        "1.2.3 ",
        "1.2.3\n",
        "1. 2.3",
        "-1.2.3",
        "1.-2.3",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-01",
        "1.2.3-alpha.007",
        "1.2.3-a..b",
        "1.2.3-.a",
        "1.2.3-a_b",
        "1.2.3+a..b",
        "1.2.3+b+c",
        "1.2.3-é",
        "１.2.3",  # noqa: RUF001 - a fullwidth digit must not pass for an ASCII one
        "1.2.3-\u0663",  # an Arabic-Indic digit
        "1.2.x",
        f"{MAX_NUMBER + 1}.0.0",
        f"1.{2**64}.0",
        f"1.2.3-{MAX_NUMBER + 1}",
        "1.2.3-" + "a" * 251,
    ],
)
def test_invalid_versions_are_refused(text: str) -> None:
    with pytest.raises(InvalidVersion) as caught:
        V(text)
    assert isinstance(caught.value, DomainError)
    assert caught.value.detail


def test_a_long_input_is_not_echoed_whole_in_the_message() -> None:
    with pytest.raises(InvalidVersion) as caught:
        V("x" * 200)
    assert len(caught.value.detail) < 150


@pytest.mark.parametrize(
    "fields",
    [
        {"major": -1},
        {"minor": MAX_NUMBER + 1},
        {"patch": True},
        {"prerelease": ("",)},
        {"prerelease": ("01",)},
        {"prerelease": ("1",)},  # digits must be an int, or the version would print like a number and sort as text
        {"prerelease": (-1,)},
        {"prerelease": ("a b",)},
        {"prerelease": ["alpha"]},
        {"build": "a..b"},
        {"build": "+b"},
    ],
)
def test_the_constructor_validates_like_parse(fields: dict[str, Any]) -> None:
    with pytest.raises(InvalidVersion):
        Version(**{"major": 1, "minor": 2, "patch": 3, **fields})


@PROPERTY
@given(versions())
def test_str_and_parse_round_trip_every_field(v: Version) -> None:
    text = str(v)
    again = V(text)
    assert dataclasses.astuple(again) == dataclasses.astuple(v)
    assert str(again) == text


# -- precedence ----------------------------------------------------------------------------------------------------

SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
    "10.0.0",
]


def test_the_specs_example_ordering() -> None:
    parsed = [V(text) for text in SPEC_ORDER]
    for lower, higher in itertools.pairwise(parsed):
        assert lower < higher and higher > lower and lower <= higher and lower != higher
    shuffled = parsed[:]
    random.Random(7).shuffle(shuffled)
    assert [str(v) for v in sorted(shuffled)] == SPEC_ORDER


def test_build_metadata_is_ignored_by_precedence_equality_and_hash() -> None:
    a, b = V("1.0.0+aaa"), V("1.0.0+zzz")
    assert a == b and hash(a) == hash(b) and not a < b and not b < a
    assert len({a, b}) == 1
    assert str(a) != str(b)


def test_comparing_with_other_types() -> None:
    assert V("1.0.0") != "1.0.0"
    with pytest.raises(TypeError):
        assert V("1.0.0") < "2.0.0"


@PROPERTY
@given(versions(), versions())
def test_comparisons_agree_with_the_reference(a: Version, b: Version) -> None:
    expected = reference_cmp(a, b)
    assert (a < b) == (expected < 0)
    assert (a <= b) == (expected <= 0)
    assert (a > b) == (expected > 0)
    assert (a >= b) == (expected >= 0)
    assert (a == b) == (expected == 0)
    assert (a != b) == (expected != 0)
    assert (a.sort_key < b.sort_key) == (a < b)
    if a == b:
        assert hash(a) == hash(b)


@PROPERTY
@given(versions(small), versions(small))
def test_order_is_total_and_antisymmetric(a: Version, b: Version) -> None:
    assert [a < b, a == b, a > b].count(True) == 1
    if a <= b and b <= a:
        assert a == b


@PROPERTY
@given(versions(small), versions(small), versions(small))
def test_order_is_transitive(a: Version, b: Version, c: Version) -> None:
    x, y, z = sorted([a, b, c])
    assert x <= y <= z and x <= z
    if a < b and b < c:
        assert a < c


@PROPERTY
@given(st.lists(versions(small), max_size=12), st.randoms(use_true_random=False))
def test_sorting_matches_the_reference_and_is_stable(vs: list[Version], rng: random.Random) -> None:
    ordered = sorted(vs)
    assert [str(v) for v in ordered] == [str(v) for v in sorted(vs, key=cmp_to_key(reference_cmp))]
    shuffled = vs[:]
    rng.shuffle(shuffled)
    assert [v.sort_key for v in sorted(shuffled)] == [v.sort_key for v in ordered]
    assert all(x <= y for x, y in itertools.pairwise(ordered))


@PROPERTY
@given(versions(), builds)
def test_build_metadata_never_changes_precedence(v: Version, build: str) -> None:
    other = dataclasses.replace(v, build=build)
    assert other == v and hash(other) == hash(v) and not other < v and not v < other


# -- ranges: hand examples -----------------------------------------------------------------------------------------

SUGAR = [  # (sugar, what node-semver documents it to mean)
    ("^1.2.3", ">=1.2.3 <2.0.0"),
    ("^0.2.3", ">=0.2.3 <0.3.0"),
    ("^0.0.3", ">=0.0.3 <0.0.4"),
    ("^1.2.x", ">=1.2.0 <2.0.0"),
    ("^0.0.x", ">=0.0.0 <0.1.0"),
    ("^0.0", ">=0.0.0 <0.1.0"),
    ("^1.x", ">=1.0.0 <2.0.0"),
    ("^0.x", ">=0.0.0 <1.0.0"),
    ("^*", ">=0.0.0"),
    ("~1.2.3", ">=1.2.3 <1.3.0"),
    ("~1.2", ">=1.2.0 <1.3.0"),
    ("~1", ">=1.0.0 <2.0.0"),
    ("~0.2.3", ">=0.2.3 <0.3.0"),
    ("~0", ">=0.0.0 <1.0.0"),
    ("*", ">=0.0.0"),
    ("x", ">=0.0.0"),
    ("1.x", ">=1.0.0 <2.0.0"),
    ("1.2.*", ">=1.2.0 <1.3.0"),
    ("1", ">=1.0.0 <2.0.0"),
    ("1.2", ">=1.2.0 <1.3.0"),
    ("=1.2", ">=1.2.0 <1.3.0"),
    (">1", ">=2.0.0"),
    (">1.2", ">=1.3.0"),
    (">=1.2", ">=1.2.0"),
    ("<1.2", "<1.2.0"),
    ("<=1.2", "<1.3.0"),
    ("<=1", "<2.0.0"),
    ("1.2.3 - 2.3.4", ">=1.2.3 <=2.3.4"),
    ("1.2 - 2.3.4", ">=1.2.0 <=2.3.4"),
    ("1.2.3 - 2.3", ">=1.2.3 <2.4.0"),
    ("1.2.3 - 2", ">=1.2.3 <3.0.0"),
    ("* - 2", "<3.0.0"),
    ("1.2.3 - *", ">=1.2.3"),
]


@pytest.mark.parametrize(("sugar", "explicit"), SUGAR)
def test_sugar_means_what_node_semver_says(sugar: str, explicit: str) -> None:
    sugared, plain = R(sugar), R(explicit)
    for major in range(4):
        for minor in range(4):
            for patch in range(5):
                v = Version(major, minor, patch)
                assert sugared.matches(v) == plain.matches(v), (sugar, str(v))


@pytest.mark.parametrize(
    ("text", "version", "expected"),
    [
        ("^1.2.3", "1.2.3", True),
        ("^1.2.3", "1.9.9", True),
        ("^1.2.3", "1.2.2", False),
        ("^1.2.3", "2.0.0", False),
        ("^0.2.3", "0.2.9", True),
        ("^0.2.3", "0.3.0", False),
        ("^0.0.3", "0.0.3", True),
        ("^0.0.3", "0.0.4", False),
        ("~1.2.3", "1.2.9", True),
        ("~1.2.3", "1.3.0", False),
        ("1.2.3", "1.2.3+build", True),
        ("=1.2.3", "1.2.4", False),
        (">=1.0.0 <1.5.0", "1.4.99", True),
        (">=1.0.0 <1.5.0", "1.5.0", False),
        (">= 1.0.0  < 1.5.0", "1.2.0", True),
        ("<1.0.0 || >=2.0.0", "1.5.0", False),
        ("<1.0.0 || >=2.0.0", "2.5.0", True),
        (">*", "0.0.0", False),
        ("<*", "0.0.0", False),
        (">=*", "7.0.0", True),
        (f">{MAX_NUMBER}", f"{MAX_NUMBER}.{MAX_NUMBER}.{MAX_NUMBER}", False),
        (f"^{MAX_NUMBER}.0.0", f"{MAX_NUMBER}.5.0", True),
        (f"~1.{MAX_NUMBER}.0", f"1.{MAX_NUMBER}.9", True),
    ],
)
def test_range_examples(text: str, version: str, expected: bool) -> None:
    assert R(text).matches(V(version)) is expected


@pytest.mark.parametrize(
    ("text", "version", "expected"),
    [
        (">=1.2.3-alpha.1", "1.2.3-alpha.7", True),
        (">=1.2.3-alpha.1", "1.2.3-alpha.0", False),
        (">=1.2.3-alpha.1", "3.4.5-alpha.9", False),
        (">=1.2.3-alpha.1", "3.4.5", True),
        (">1.2.3-alpha.3", "1.2.3-alpha.4", True),
        ("^1.2.3-beta.2", "1.2.3-beta.4", True),
        ("^1.2.3-beta.2", "1.2.4-beta.2", False),
        ("^1.2.3-beta.2", "1.2.4", True),
        ("~1.2.3-beta.2", "1.2.3-beta.4", True),
        ("~1.2.3-beta.2", "1.2.4-beta.2", False),
        ("^1.2.3", "1.5.0-rc.1", False),
        ("^1.2.3", "2.0.0-rc.1", False),
        ("*", "1.0.0-alpha", False),
        ("1.2.3-alpha", "1.2.3-alpha", True),
        ("1.2.3-alpha - 2", "1.2.3-beta", True),
        ("1.2.3-alpha - 2", "1.5.0-beta", False),
        ("<1.2.3-rc.1", "1.2.3-beta", True),
        ("<1.2.3-rc.1", "1.2.2-beta", False),
        # the rule is per comparator set: each alternative admits only its own pre-release line
        (">=1.0.0-alpha <1.0.1 || >=2.0.0-beta <3", "1.0.0-rc", True),
        (">=1.0.0-alpha <1.0.1 || >=2.0.0-beta <3", "2.0.0-rc.1", True),
        (">=1.0.0-alpha <1.0.1 || >=2.0.0-beta <3", "2.5.0-alpha", False),
        (">=1.0.0-alpha <3", "2.0.0-rc.1", False),
    ],
)
def test_prerelease_rule(text: str, version: str, expected: bool) -> None:
    assert R(text).matches(V(version)) is expected


@pytest.mark.parametrize(
    ("text", "version", "expected"),
    [
        ("*", "1.0.0-alpha", True),
        ("^1.2.3", "1.5.0-rc.1", True),
        ("^1.2.3", "2.0.0-rc.1", False),  # `<2.0.0-0`: the next major's pre-releases stay out
        (">=1.2.3-alpha.1", "3.4.5-alpha.9", True),
        ("1.x", "1.0.0-rc.1", True),  # a wildcard's lower bound admits its own pre-releases, as in node-semver
        (">1.2", "1.3.0-rc.1", True),
        ("^1.2.3", "1.2.3-rc.1", False),  # an exact lower bound stays exact
        ("1.2.3", "1.2.3-rc.1", False),
    ],
)
def test_include_prerelease_lets_prereleases_match_by_precedence(text: str, version: str, expected: bool) -> None:
    assert R(text).matches(V(version), include_prerelease=True) is expected


def test_range_text_is_normalised() -> None:
    r = R("  >=  1.2.3   <2||^3  ||1.0.0   -   1.2 ")
    assert str(r) == ">=1.2.3 <2 || ^3 || 1.0.0 - 1.2"
    assert r == R(str(r)) and hash(r) == hash(R(str(r)))
    assert VersionRange("^1.2") == R("^1.2")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "||",
        "1.2.3 ||",
        "|| 1.2.3",
        "1.2.3 || || 2",
        "1.2.3 ||| 2",
        ">=",
        ">= ",
        "> =1.2.3",
        "=>1.2.3",
        "<>1",
        "^^1",
        "~>1.2",
        "!1.2.3",
        "v1.2.3",
        "^v1",
        "1.2.3 -",
        "- 1.2.3",
        "1.2.3 - 2.3.4 - 5",
        "1.2.3 - 2.3.4 >3",
        "1.2.3 -2.3.4",
        "1.x.3",
        "*.1",
        "01.2",
        "1.02",
        "1.2.03",
        "1.2.3-01",
        "1.2-beta",
        "1.x-beta",
        "1.2.3.4",
        "garbage",
        "1.2.3 garbage",
        ">=1.2.3,<2",
        "1.2.3 && 2",
        f"{MAX_NUMBER + 1}",
        f"^1.{MAX_NUMBER + 1}",
        "1.2.3-" + "a" * 251,
        " ".join(["1"] * 33),
        " || ".join(["1"] * 33),
        " || ".join(["1 - 2"] * 17),
    ],
)
def test_invalid_ranges_are_refused(text: str) -> None:
    with pytest.raises(InvalidVersionRange) as caught:
        R(text)
    assert isinstance(caught.value, DomainError)
    assert caught.value.detail


def test_thirty_two_comparators_are_allowed() -> None:
    assert R(" ".join([">=1"] * 16 + ["<2"] * 16)).matches(V("1.5.0"))
    assert R(" || ".join(["1"] * 32)).matches(V("1.5.0"))


# -- ranges: properties --------------------------------------------------------------------------------------------


@PROPERTY
@given(range_texts)
def test_range_text_round_trips(text: str) -> None:
    r = R(text)
    assert str(R(str(r))) == str(r)
    assert R(str(r)) == r


@PROPERTY
@given(versions(small), near)
def test_caret_of_a_version_matches_same_major_at_or_above_it(v: Version, w: Version) -> None:
    covered = caret_range_of(v)
    if v.major > 0 and w.major == v.major and w >= v and not w.is_prerelease:
        assert covered.matches(w)
    if w.major != v.major or w < v:
        assert not covered.matches(w, include_prerelease=True)


@PROPERTY
@given(versions(small).filter(lambda v: v.major > 0), near)
def test_caret_of_a_version_is_exactly_the_compatible_set(v: Version, w: Version) -> None:
    same_line = w.core == v.core and v.is_prerelease
    expected = w.major == v.major and w >= v and (not w.is_prerelease or same_line)
    assert caret_range_of(v).matches(w) == expected
    assert caret_range_of(v).matches(v)


@PROPERTY
@given(versions(small), versions(small), near)
def test_between_bounds_agrees_with_direct_comparison(a: Version, b: Version, w: Version) -> None:
    r = R(f">={a} <{b}")
    inside = a <= w < b
    named = (w.core == a.core and a.is_prerelease) or (w.core == b.core and b.is_prerelease)
    assert r.matches(w) == (inside and (not w.is_prerelease or named))
    assert r.matches(w, include_prerelease=True) == inside


@PROPERTY
@given(versions(small), near)
def test_a_bare_version_matches_only_itself(v: Version, w: Version) -> None:
    assert R(str(v)).matches(w) == (w == v)
    assert R(str(v)).matches(w, include_prerelease=True) == (w == v)


@PROPERTY
@given(range_texts, range_texts, near)
def test_or_is_the_union(left: str, right: str, w: Version) -> None:
    for include in (False, True):
        expected = R(left).matches(w, include_prerelease=include) or R(right).matches(w, include_prerelease=include)
        assert R(f"{left} || {right}").matches(w, include_prerelease=include) == expected


@PROPERTY
@given(comparator_sets(hyphens=False), comparator_sets(hyphens=False), near)
def test_and_is_the_intersection(left: str, right: str, w: Version) -> None:
    both = R(f"{left} {right}").matches(w, include_prerelease=True)
    assert both == (R(left).matches(w, include_prerelease=True) and R(right).matches(w, include_prerelease=True))


@PROPERTY
@given(range_texts, near)
def test_include_prerelease_only_widens(text: str, w: Version) -> None:
    r = R(text)
    if r.matches(w):
        assert r.matches(w, include_prerelease=True)
    if not w.is_prerelease:
        assert r.matches(w) == r.matches(w, include_prerelease=True)


@PROPERTY
@given(range_texts, near, builds)
def test_build_metadata_never_changes_matching(text: str, w: Version, build: str) -> None:
    assert R(text).matches(w) == R(text).matches(dataclasses.replace(w, build=build))


# -- latest and caret_range_of -------------------------------------------------------------------------------------


def test_latest_examples() -> None:
    assert latest([]) is None
    assert latest([V("1.0.0-rc.1")]) is None
    assert latest([V("1.0.0-rc.1")], include_prerelease=True) == V("1.0.0-rc.1")
    assert latest(V(t) for t in ["1.0.0", "2.0.0-beta", "1.10.0", "1.9.0"]) == V("1.10.0")
    assert latest((V(t) for t in ["1.0.0", "2.0.0-beta", "1.10.0"]), include_prerelease=True) == V("2.0.0-beta")
    first = latest([V("1.0.0+a"), V("1.0.0+b")])
    assert first is not None and first.build == "a"


@PROPERTY
@given(st.lists(versions(small), max_size=10), st.booleans())
def test_latest_is_the_highest_candidate(vs: list[Version], include: bool) -> None:
    candidates = [v for v in vs if include or not v.is_prerelease]
    best = latest(vs, include_prerelease=include)
    if not candidates:
        assert best is None
        return
    assert best is not None and any(best is v for v in candidates)
    assert all(reference_cmp(best, v) >= 0 for v in candidates)


def test_caret_range_of() -> None:
    assert str(caret_range_of(V("1.2.3"))) == "^1.2.3"
    assert str(caret_range_of(V("1.2.3-beta.1+sha.5"))) == "^1.2.3-beta.1"
    assert caret_range_of(V("0.3.1")).matches(V("0.3.9"))
    assert not caret_range_of(V("0.3.1")).matches(V("0.4.0"))
    assert caret_range_of(V("1.2.3-beta.1")).matches(V("1.2.3-beta.2"))
