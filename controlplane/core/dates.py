"""Dates from clients, checked once: every aware datetime an input carries is converted to UTC here.

A value can parse and still have no UTC equivalent (`0001-01-01T00:00:00+05:00` is in year 0 in UTC,
`9999-12-31T23:59:59-05:00` in year 10000): converting it later (PostgreSQL's driver does) overflows, which
would be a 500. Converting it at the edge refuses it as bad input instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.core.errors import DateOutOfRange


def to_utc(value: datetime) -> datetime:
    """`value` in UTC (a naive value is left as it is: whether it is allowed is the caller's rule);
    `ValueError` when it has no UTC equivalent."""
    if value.tzinfo is None:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as error:
        raise ValueError(f"{value.isoformat()} is outside the dates that can be expressed in UTC") from error


def query_date(value: datetime | None) -> datetime | None:
    """A date from a query parameter in UTC; `DateOutOfRange` (400) when it has none."""
    if value is None:
        return None
    try:
        return to_utc(value)
    except ValueError as error:
        raise DateOutOfRange(str(error)) from error
