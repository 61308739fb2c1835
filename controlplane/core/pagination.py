"""Keyset pagination over (created_at, id): stable under inserts, cheap at any depth."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from controlplane.core.errors import InvalidCursor, InvalidInput
from controlplane.core.views import Page

T = TypeVar("T")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int = DEFAULT_PAGE_SIZE
    after: tuple[datetime, uuid.UUID] | None = None

    @classmethod
    def parse(cls, limit: int | None, cursor: str | None) -> PageRequest:
        if limit is not None and not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_SIZE}")
        return cls(limit=limit or DEFAULT_PAGE_SIZE, after=decode_cursor(cursor) if cursor else None)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, row_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        # In UTC here, so a timestamp that cannot be one (year 1 at +01:00) is refused, not a 500 later.
        return created_at.astimezone(UTC), uuid.UUID(row_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError) as exc:
        raise InvalidCursor() from exc


def page_of(rows: list[dict[str, Any]], page: PageRequest) -> tuple[list[dict[str, Any]], str | None]:
    """Rows fetched with limit + 1 -> (this page, cursor of the next page or None)."""
    items = rows[: page.limit]
    if len(rows) <= page.limit:
        return items, None
    last = items[-1]
    return items, encode_cursor(last["created_at"], last["id"])


def page_of_views(rows: list[dict[str, Any]], page: PageRequest, view: Callable[[dict[str, Any]], T]) -> Page[T]:
    """Rows fetched with limit + 1 -> this page's views and the cursor of the next page (None on the last)."""
    items, next_cursor = page_of(rows, page)
    return Page([view(row) for row in items], next_cursor)


def keyset_clause(page: PageRequest, alias: str = "") -> tuple[str, list[Any]]:
    """SQL `and (created_at, id) > (…)` for raw queries with `{}` placeholders (`alias`: e.g. "m.")."""
    if page.after is None:
        return "", []
    return f" and ({alias}created_at, {alias}id) > ({{}}, {{}})", list(page.after)
