"""Checking a batch of usage events, one event at a time. Pure.

A bad event is rejected with its index, a stable code and a detail; it never takes the rest of the batch
with it. Numbers are decoded as exact decimals (JSON numbers never pass through float).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from billing.limits import MAX_PLACES, MAX_USAGE_VALUE

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


@dataclass(frozen=True, slots=True)
class Event:
    index: int
    idempotency_key: str
    metric_code: str
    occurred_at: datetime
    value: Decimal | None
    properties_json: str | None


class Batch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    events: list[EventIn]
    tenant_id: uuid.UUID | None = None


class RawBatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    events: list[msgspec.Raw]
    tenant_id: uuid.UUID | None = None


class InvalidBatch(ValueError):
    """The body is not `{"events": [...], "tenant_id"?}` at all."""


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
    exponent = number.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= -MAX_PLACES and abs(number) <= MAX_USAGE_VALUE


def check(
    index: int, event: EventIn, metrics: Mapping[str, Mapping[str, Any]], now: datetime, seen: set[str]
) -> Event | Rejection:
    """One decoded event against its metric, the clock and the keys earlier in the batch."""
    if event.idempotency_key in seen:
        return Rejection(index, "duplicate_in_batch", "an earlier event in this batch has the same idempotency_key")
    metric = metrics.get(event.metric_code)
    if metric is None:
        return Rejection(index, "unknown_metric", f"no billable metric has the code {event.metric_code!r}")
    if event.timestamp.tzinfo is None:
        return Rejection(index, "invalid_timestamp", "timestamp must be RFC 3339 with a UTC offset")
    if event.timestamp > now + CLOCK_SKEW:
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
        if not event.value.is_finite() or not _in_range(event.value):
            return Rejection(
                index,
                "invalid_value",
                f"value must be a finite number of at most {MAX_USAGE_VALUE} with at most {MAX_PLACES} decimal places",
            )
        if event.value < 0:
            return Rejection(index, "negative_value", "value must not be negative")
    aggregation, field = metric["aggregation"], metric["field"]
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
    return Event(
        index=index,
        idempotency_key=event.idempotency_key,
        metric_code=event.metric_code,
        occurred_at=event.timestamp,
        value=event.value,
        properties_json=properties_json,
    )


def check_batch(
    decoded: Sequence[EventIn | Rejection], metrics: Mapping[str, Mapping[str, Any]], now: datetime
) -> tuple[list[Event], list[Rejection]]:
    events: list[Event] = []
    rejected: list[Rejection] = []
    seen: set[str] = set()
    for index, item in enumerate(decoded):
        result = item if isinstance(item, Rejection) else check(index, item, metrics, now, seen)
        (rejected if isinstance(result, Rejection) else events).append(result)  # type: ignore[arg-type]
    return events, rejected
