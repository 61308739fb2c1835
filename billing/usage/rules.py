"""Checking a batch of usage events, one event at a time. Pure.

A bad event is rejected with its index, a stable code and a detail; it never takes the rest of the batch
with it. Numbers are decoded as exact decimals (JSON numbers never pass through float).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Context, Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from billing.catalogue.rules import Charge, Plan
from billing.errors import InvalidBatch
from billing.limits import MAX_LINE_MINOR, MAX_PLACES, MAX_USAGE_VALUE

MAX_BATCH = 1000
CLOCK_SKEW = timedelta(minutes=5)
MAX_PROPERTIES_BYTES = 8192
# A value beyond MAX_USAGE_VALUE or with more than MAX_PLACES decimal places is refused rather than stored
# (or rounded): see billing.limits for how the bound keeps invoices within bigint.

Key = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
MetricCode = Annotated[str, Meta(min_length=1, max_length=63, pattern=r"^[^\x00-\x1f\x7f]+$")]


class EventIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    idempotency_key: Key
    metric_code: MetricCode
    timestamp: datetime
    value: Decimal | None = None
    # Kept as the client's JSON text: stored as it came, decoded only when a metric reads a field of it.
    properties: msgspec.Raw = msgspec.Raw(b"null")


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    code: str
    detail: str


class Event(msgspec.Struct, frozen=True, gc=False):
    """A checked event. A Struct rather than a dataclass: a batch makes a thousand of them, and a frozen
    dataclass costs several times as much to build. `number` is the property a metric reads (`properties.field`),
    kept from `check` so it is decoded once."""

    index: int
    idempotency_key: str
    metric_code: str
    occurred_at: datetime
    value: Decimal | None
    properties_json: str | None
    number: Decimal | None = None


class Batch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    events: list[EventIn]
    tenant_id: uuid.UUID | None = None


class RawBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    events: list[msgspec.Raw]
    tenant_id: uuid.UUID | None = None


_DECODER = msgspec.json.Decoder(EventIn, float_hook=Decimal)
_BATCH_DECODER = msgspec.json.Decoder(Batch, float_hook=Decimal)
_RAW_BATCH_DECODER = msgspec.json.Decoder(RawBatch)
_PROPERTIES = msgspec.json.Decoder(dict[str, Any], float_hook=Decimal)
_PATH = re.compile(r"at `\$\.(\w+)")


def _shape_code(message: str) -> str:
    match = _PATH.search(message)
    field = match.group(1) if match else None
    if message.startswith("Object missing required field"):
        return "missing_field"
    if field == "value":
        return "invalid_value"
    if field == "timestamp":
        return "invalid_timestamp"
    return "invalid_event"


def decode_batch(body: bytes) -> tuple[uuid.UUID | None, list[EventIn | Rejection]]:
    """The batch's tenant id and its events, each decoded or rejected on its own.

    One typed decode of the whole body is the fast path; only when some event does not fit is each event
    decoded separately, so the bad ones are rejected by index and the rest are kept.
    """
    try:
        batch = _BATCH_DECODER.decode(body)
        return batch.tenant_id, list(batch.events)
    except msgspec.ValidationError:
        pass
    except msgspec.DecodeError:
        raise InvalidBatch("the body is not JSON") from None
    try:
        raw = _RAW_BATCH_DECODER.decode(body)
    except msgspec.ValidationError as error:
        raise InvalidBatch(str(error)) from None
    return raw.tenant_id, [decode(index, bytes(event)) for index, event in enumerate(raw.events)]


def decode(index: int, raw: bytes) -> EventIn | Rejection:
    try:
        return _DECODER.decode(raw)
    except msgspec.ValidationError as error:
        return Rejection(index, _shape_code(str(error)), str(error))
    except msgspec.DecodeError as error:  # pragma: no cover - the envelope was valid JSON already
        return Rejection(index, "invalid_event", str(error))


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    number = Decimal(value)
    if not number.is_finite():
        return None
    return number


def _in_range(number: Decimal) -> bool:
    # Finite first (a NaN cannot be compared), the cheap bound next: the exponent needs `as_tuple`.
    return number.is_finite() and abs(number) <= MAX_USAGE_VALUE and number.as_tuple().exponent >= -MAX_PLACES  # type: ignore[operator]


def check(
    index: int, event: EventIn, metrics: Mapping[str, Mapping[str, Any]], now: datetime, seen: set[str]
) -> Event | Rejection:
    """One decoded event against its metric, the clock and the keys earlier in the batch."""
    return _check(index, event, metrics, now + CLOCK_SKEW, seen)


def _check(
    index: int, event: EventIn, metrics: Mapping[str, Mapping[str, Any]], latest: datetime, seen: set[str]
) -> Event | Rejection:
    """`check`, with the latest timestamp accepted (now + CLOCK_SKEW) computed once per batch."""
    if event.idempotency_key in seen:
        return Rejection(index, "duplicate_in_batch", "an earlier event in this batch has the same idempotency_key")
    metric = metrics.get(event.metric_code)
    if metric is None:
        return Rejection(index, "unknown_metric", f"no billable metric has the code {event.metric_code!r}")
    if event.timestamp.tzinfo is None:
        return Rejection(index, "invalid_timestamp", "timestamp must be RFC 3339 with a UTC offset")
    if event.timestamp > latest:
        return Rejection(index, "timestamp_in_future", "timestamp is later than now (beyond a 5 minute clock skew)")
    properties_json = None
    raw_properties = bytes(event.properties)
    if raw_properties != b"null":
        if len(raw_properties) > MAX_PROPERTIES_BYTES or not raw_properties.startswith(b"{"):
            return Rejection(index, "invalid_event", "properties must be a JSON object of at most 8 KiB")
        if b"\\u0000" in raw_properties:  # PostgreSQL's jsonb cannot hold NUL
            return Rejection(index, "invalid_event", "properties must not contain the NUL character")
        properties_json = raw_properties.decode()
    if event.value is not None:
        if not _in_range(event.value):
            return Rejection(
                index,
                "invalid_value",
                f"value must be a finite number of at most {MAX_USAGE_VALUE} with at most {MAX_PLACES} decimal places",
            )
        if event.value < 0:
            return Rejection(index, "negative_value", "value must not be negative")
    aggregation, field = metric["aggregation"], metric["field"]
    number: Decimal | None = None
    if aggregation != "count":
        if field:
            properties = _PROPERTIES.decode(properties_json) if properties_json else {}
            if field not in properties:
                return Rejection(index, "missing_field", f"metric {metric['code']} reads properties.{field}")
            raw = properties[field]
            if aggregation == "unique_count":
                if not isinstance(raw, str | int | Decimal) or isinstance(raw, bool):
                    return Rejection(index, "invalid_value", f"properties.{field} must be a string or a number")
            else:
                number = _number(raw)
                if number is None or not _in_range(number):
                    return Rejection(
                        index, "invalid_value", f"properties.{field} must be a number of at most {MAX_USAGE_VALUE}"
                    )
                if number < 0:
                    return Rejection(index, "negative_value", f"properties.{field} must not be negative")
        elif event.value is None:
            return Rejection(index, "missing_field", f"metric {metric['code']} sums the event's value; it is missing")
    seen.add(event.idempotency_key)
    return Event(index, event.idempotency_key, event.metric_code, event.timestamp, event.value, properties_json, number)


def check_batch(
    decoded: Sequence[EventIn | Rejection], metrics: Mapping[str, Mapping[str, Any]], now: datetime
) -> tuple[list[Event], list[Rejection]]:
    events: list[Event] = []
    rejected: list[Rejection] = []
    check_slice(decoded, 0, len(decoded), metrics, now, set(), events, rejected)
    return events, rejected


def check_slice(
    decoded: Sequence[EventIn | Rejection],
    start: int,
    stop: int,
    metrics: Mapping[str, Mapping[str, Any]],
    now: datetime,
    seen: set[str],
    events: list[Event],
    rejected: list[Rejection],
) -> None:
    """`check_batch` of `decoded[start:stop]`, onto `events` and `rejected`; `seen` carries the keys of the slices
    before, so a batch checked slice after slice is checked as a whole."""
    latest = now + CLOCK_SKEW
    for index in range(start, stop):
        item = decoded[index]
        result = item if type(item) is Rejection else _check(index, item, metrics, latest, seen)  # type: ignore[arg-type]
        if type(result) is Event:
            events.append(result)
        else:
            rejected.append(result)  # type: ignore[arg-type]


# -- the open window's bound per metric (see billing.limits) -------------------------------------------

_FLOOR = Context(prec=40, rounding=ROUND_FLOOR)


def max_units(charge: Charge) -> Decimal | None:
    """The largest aggregate of the charge's metric that rates it within MAX_LINE_MINOR, rounded down, or None
    when no usage can pass it (a free charge). Conservative: usage up to it times the charge's dearest price
    per unit, plus what the charge adds whatever the units (flat fees, a package begun, the rounding of a tiered
    charge's lines), stays within the bound."""
    tiers = charge.tiers
    if charge.model == "package":
        fixed, per, size = charge.amount, charge.amount, Decimal(charge.package_size)
    elif charge.model in ("graduated", "volume"):
        flat_fees = [tier.flat_amount for tier in tiers]
        fixed = sum(flat_fees, Decimal(0)) if charge.model == "graduated" else max(flat_fees)
        per, size = max(tier.unit_amount for tier in tiers), Decimal(1)
    elif charge.model == "percentage":
        # The metric's sum bounds the percentage of the values; a fixed fee or a per-event minimum grows with the
        # number of events, not with the sum: `fee_bound` bounds the two together.
        fixed, per, size = Decimal(0), charge.rate.scaleb(-2), Decimal(1)
    else:
        fixed, per, size = Decimal(0), charge.unit_amount, Decimal(1)
    if per <= 0:
        return None
    # Each line is rounded on its own: a tiered charge's (at most two a tier) may add half a unit each.
    room = Decimal(MAX_LINE_MINOR) - fixed - 2 * len(tiers)
    return max(_FLOOR.divide(room * size, per), Decimal(0))


@dataclass(frozen=True, slots=True)
class FeeBound:
    """A percentage charge whose events pay a fee whatever their value (a fixed fee, a per-event minimum): its
    line is at most `per_unit` x the metric's sum + `per_event` x the number of events, which must stay within
    MAX_LINE_MINOR. Conservative: the free events are counted as paying."""

    per_unit: Decimal
    per_event: Decimal

    def reach(self, units: Decimal, events: int) -> Decimal:
        return self.per_unit * units + self.per_event * events


def fee_bound(charge: Charge) -> FeeBound | None:
    """None unless the charge is a percentage with a per-event part. Each event's fee, clamped to
    [per_event_min, per_event_max], is at most value x rate + min(max(fixed, per_event_min), per_event_max)."""
    if charge.model != "percentage" or charge.metric_code is None:
        return None
    per_event = max(charge.fixed_amount, charge.per_event_min or Decimal(0))
    if charge.per_event_max is not None:
        per_event = min(per_event, charge.per_event_max)
    if per_event <= 0:
        return None
    return FeeBound(per_unit=charge.rate.scaleb(-2), per_event=per_event)


def fee_bounds(charges: Iterable[Charge]) -> dict[str, tuple[FeeBound, ...]]:
    """Each metric's `FeeBound`s, one per percentage charge with a per-event part metering it (the plan's, a
    scheduled plan's, the add-ons'): each must hold."""
    found: dict[str, tuple[FeeBound, ...]] = {}
    for charge in charges:
        bound = fee_bound(charge)
        if bound is not None and charge.metric_code is not None:
            found[charge.metric_code] = (*found.get(charge.metric_code, ()), bound)
    return found


def fee_bound_passed(bounds: Iterable[FeeBound], units: Decimal, events: int) -> Decimal | None:
    """The largest line the bounds allow for `events` events summing `units`, when it passes MAX_LINE_MINOR."""
    reach = max((bound.reach(units, events) for bound in bounds), default=Decimal(0))
    return reach if reach > MAX_LINE_MINOR else None


def bounds(charges: Iterable[Charge]) -> dict[str, Decimal]:
    """Each metered metric's bound over the open window: the smallest of the `charges` metering it (every charge
    that may rate the window: the subscription's plan's, a scheduled plan's, which bills usage stored before its
    boundary is crossed, and the live add-ons' metered charges)."""
    found: dict[str, Decimal] = {}
    for charge in charges:
        bound = max_units(charge) if charge.metric_code is not None else None
        if bound is not None and charge.metric_code is not None:
            found[charge.metric_code] = min(bound, found.get(charge.metric_code, bound))
    return found


def charges_of(plans: Iterable[Plan | None]) -> list[Charge]:
    return [charge for plan in plans if plan is not None for charge in plan.charges]


PER_EVENT = frozenset({"max", "latest"})  # a window's aggregate is one event's value: bounded per event


_ONE = Decimal(1)


def _measure(event: Event, metric: Mapping[str, Any]) -> Decimal:
    """What the event adds to its metric's aggregate (count, sum, max, latest; a `unique_count` counts 1)."""
    aggregation, field = metric["aggregation"], metric["field"]
    if aggregation in ("count", "unique_count"):
        return _ONE
    if field:
        number = event.number
        if number is None:
            number = _number(_PROPERTIES.decode(event.properties_json or "{}")[field])
        assert number is not None  # `check` accepted only a number here
        return number
    assert event.value is not None  # `check` refuses a summed event without its value
    return event.value


def _all_fit(
    events: Sequence[Event],
    metrics: Mapping[str, Mapping[str, Any]],
    limits: Mapping[str, Decimal],
    totals: Mapping[str, Decimal],
    fees: Mapping[str, Sequence[FeeBound]],
    counts: Mapping[str, int],
) -> bool:
    """Whether `within_bounds` keeps every event, found from each metric's state after the whole batch: when no
    event measures below 0, the running aggregate and count only grow event after event (a rounded sum or product
    of non-negative numbers is monotone), and so does a fee bound's reach, so no event passes a bound unless the
    last one of its metric does (for `max` and `latest`, the largest value with the final count). The same
    additions in the same order as `within_bounds`, without a rejection's bookkeeping per event."""
    after: dict[str, Decimal] = {}
    seen: dict[str, int] = {}
    for event in events:
        code = event.metric_code
        if code not in limits and not fees.get(code):
            continue
        metric = metrics[code]
        measured = _measure(event, metric)
        if measured < 0:
            return False
        if metric["aggregation"] in PER_EVENT:
            after[code] = max(after.get(code, measured), measured)
        else:
            after[code] = after.get(code, Decimal(totals.get(code, 0))) + measured
        seen[code] = seen.get(code, 0) + 1
    for code, events_of_code in seen.items():
        bound, value = limits.get(code), after[code]
        if bound is not None and value > bound:
            return False
        if fee_bound_passed(fees.get(code, ()), value, counts.get(code, 0) + events_of_code) is not None:
            return False
    return True


def within_bounds(
    events: Sequence[Event],
    metrics: Mapping[str, Mapping[str, Any]],
    limits: Mapping[str, Decimal],
    totals: Mapping[str, Decimal],
    fees: Mapping[str, Sequence[FeeBound]] | None = None,
    counts: Mapping[str, int] | None = None,
) -> tuple[list[Event], list[Rejection]]:
    """The events, in batch order, that keep their metric's aggregate over the open window within its bound
    (`totals`: the aggregates already stored), and each percentage charge's line within MAX_LINE_MINOR (`fees`,
    with `counts` the events already stored), and a `usage_limit_exceeded` rejection for each other one.
    A `unique_count` counts every event as a new value: PostgreSQL's `->>` tells apart values that Python's text
    of them may not (`1E2`, `"1E+2"`, `100`), so comparing them here could undercount (conservative)."""
    fees = fees or {}
    if _all_fit(events, metrics, limits, totals, fees, counts or {}):
        return list(events), []
    return each_within_bounds(events, metrics, limits, totals, fees, counts)


def each_within_bounds(
    events: Sequence[Event],
    metrics: Mapping[str, Mapping[str, Any]],
    limits: Mapping[str, Decimal],
    totals: Mapping[str, Decimal],
    fees: Mapping[str, Sequence[FeeBound]] | None = None,
    counts: Mapping[str, int] | None = None,
) -> tuple[list[Event], list[Rejection]]:
    """`within_bounds`, event after event."""
    fees = fees or {}
    running = {code: Decimal(total) for code, total in totals.items()}
    running_counts = dict(counts or {})
    kept: list[Event] = []
    refused: list[Rejection] = []
    for event in events:
        code = event.metric_code
        bound, fee_limits = limits.get(code), fees.get(code, ())
        if bound is None and not fee_limits:
            kept.append(event)
            continue
        metric = metrics[code]
        measured = _measure(event, metric)
        if metric["aggregation"] in PER_EVENT:
            after = measured
        else:
            after = running.get(code, Decimal(0)) + measured
        count = running_counts.get(code, 0) + 1
        reach = fee_bound_passed(fee_limits, after, count)
        if (bound is not None and after > bound) or reach is not None:
            detail = (
                f"metric {code} would reach {after} in the open period, beyond the {bound} its charges can bill "
                "in one line"
                if reach is None
                else f"{count} events of metric {code} summing {after} in the open period could bill {reach} in "
                f"one line, beyond {MAX_LINE_MINOR}"
            )
            refused.append(Rejection(event.index, "usage_limit_exceeded", f"{detail}; the event was not stored"))
            continue
        if metric["aggregation"] not in PER_EVENT:
            running[code] = after
        running_counts[code] = count
        kept.append(event)
    return kept, refused
