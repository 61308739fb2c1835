"""`within_bounds` answers a batch whose every event fits from each metric's state after the batch, and walks the
batch event by event otherwise: both ways give the same answer, whatever the metrics, bounds and values."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from billing.limits import MAX_LINE_MINOR
from billing.usage.rules import Event, FeeBound, each_within_bounds, within_bounds

METRICS: dict[str, dict[str, Any]] = {
    "calls": {"code": "calls", "aggregation": "count", "field": None},
    "bytes": {"code": "bytes", "aggregation": "sum", "field": None},
    "seconds": {"code": "seconds", "aggregation": "sum", "field": "n"},
    "peak": {"code": "peak", "aggregation": "max", "field": None},
    "level": {"code": "level", "aggregation": "latest", "field": "n"},
    "users": {"code": "users", "aggregation": "unique_count", "field": "user"},
}
AT = datetime(2026, 1, 10, tzinfo=UTC)
PROPERTY = settings(max_examples=400, deadline=None)

BIG = 10**9
values = st.one_of(
    st.sampled_from([Decimal(0), Decimal(1), Decimal("0.5"), Decimal(BIG), Decimal(BIG // 4), Decimal("123.456")]),
    st.decimals(min_value=0, max_value=BIG, places=3, allow_nan=False, allow_infinity=False),
)
# Bounds and totals on the scale of a few events, so that batches cross them.
amounts = st.integers(min_value=0, max_value=40).map(lambda halves: Decimal(halves * BIG) / 2)
fee_bounds = st.lists(
    st.builds(
        FeeBound,
        per_unit=st.sampled_from([Decimal(0), Decimal("0.01"), Decimal(1)]),
        per_event=st.integers(min_value=1, max_value=40).map(lambda k: Decimal(MAX_LINE_MINOR) / k),
    ),
    min_size=1,
    max_size=2,
).map(tuple)


def _event(index: int, code: str, value: Decimal, keep_number: bool) -> Event:
    field = METRICS[code]["field"]
    if code == "users":
        return Event(index, f"k{index}", code, AT, None, f'{{"user": "u{index % 3}"}}')
    if field:
        return Event(index, f"k{index}", code, AT, None, f'{{"{field}": {value}}}', value if keep_number else None)
    return Event(index, f"k{index}", code, AT, value, None)


@PROPERTY
@given(
    picks=st.lists(st.tuples(st.sampled_from(sorted(METRICS)), values, st.booleans()), max_size=60),
    # Now and then a negative value (`check` refuses them; the pure function must still agree with itself).
    negative=st.one_of(st.none(), st.none(), st.none(), st.integers(min_value=0, max_value=59)),
    limits=st.dictionaries(st.sampled_from(sorted(METRICS)), amounts),
    totals=st.dictionaries(st.sampled_from(sorted(METRICS)), amounts),
    fees=st.dictionaries(st.sampled_from(["bytes", "seconds"]), fee_bounds),
    counts=st.dictionaries(st.sampled_from(sorted(METRICS)), st.integers(min_value=0, max_value=30)),
)
def test_a_batch_is_answered_as_event_by_event(
    picks: list[tuple[str, Decimal, bool]],
    limits: dict[str, Decimal],
    totals: dict[str, Decimal],
    fees: dict[str, tuple[FeeBound, ...]],
    counts: dict[str, int],
    negative: int | None,
) -> None:
    events = [
        _event(index, code, Decimal(-BIG) if index == negative else value, keep)
        for index, (code, value, keep) in enumerate(picks)
    ]
    assert within_bounds(events, METRICS, limits, totals, fees, counts) == each_within_bounds(
        events, METRICS, limits, totals, fees, counts
    )


def test_a_batch_that_fits_is_kept_whole_and_one_that_does_not_is_cut_where_it_passes() -> None:
    events = [_event(index, "bytes", Decimal(10**9), False) for index in range(10)]
    kept, refused = within_bounds(events, METRICS, {"bytes": Decimal(10 * 10**9)}, {})
    assert (len(kept), refused) == (10, [])
    kept, refused = within_bounds(events, METRICS, {"bytes": Decimal(10 * 10**9)}, {"bytes": Decimal(3 * 10**9)})
    assert [event.index for event in kept] == list(range(7))
    assert [(rejection.index, rejection.code) for rejection in refused] == [
        (index, "usage_limit_exceeded") for index in range(7, 10)
    ]
    # A fee bound's reach passes MAX_LINE_MINOR at the tenth event: 9 events stored, one more fits.
    per_event = FeeBound(per_unit=Decimal(0), per_event=Decimal(MAX_LINE_MINOR // 10))
    kept, refused = within_bounds(events, METRICS, {}, {}, {"bytes": (per_event,)}, {"bytes": 9})
    assert ([event.index for event in kept], [rejection.index for rejection in refused]) == ([0], list(range(1, 10)))


def test_a_negative_value_takes_the_batch_event_by_event() -> None:
    """The state after the batch says nothing of the events before a negative one (`check` refuses them; the rule
    must not rely on it)."""
    events = [_event(0, "bytes", Decimal(BIG), False), _event(1, "bytes", Decimal(-BIG), False)]
    kept, refused = within_bounds(events, METRICS, {"bytes": Decimal(10 * BIG)}, {"bytes": Decimal(BIG * 19) / 2})
    assert ([event.index for event in kept], [rejection.index for rejection in refused]) == ([1], [0])
