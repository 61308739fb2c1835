"""What was sent to whom, as the tenant's (or partner's) admins see it: the outbox rows, newest first, without
addresses (a recipient is `billing_contact` or `user:<id>`) and without the event's data."""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import datetime

from controlplane.core.auth.principal import Principal
from controlplane.core.db import partner_tx, tenant_tx
from controlplane.core.errors import InvalidCursor
from controlplane.core.pagination import PageRequest
from controlplane.core.views import Page, view_of
from tenants import service
from tenants.errors import ForbiddenForRole
from tenants.notifications import repository


@dataclass(frozen=True, slots=True)
class NotificationView:
    id: int
    event_type: str
    event_key: str
    recipient: str
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None
    created_at: datetime


def encode_cursor(notification_id: int) -> str:
    return base64.urlsafe_b64encode(f"n{notification_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The id a page ends with; ids grow with time, so the next page is the ids below it."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("n") or not raw[1:].isdigit() or len(raw) > 20:
            raise ValueError(raw)
        return int(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor() from exc


async def tenant_notifications(
    tenant_id: uuid.UUID, *, status: str | None, limit: int | None, cursor: str | None
) -> Page[NotificationView]:
    size, before = _page(limit, cursor)
    async with tenant_tx(tenant_id):
        rows = await repository.outbox_page(tenant_id=tenant_id, status=status, before_id=before, limit=size + 1)
    return _page_of(rows, size)


async def partner_notifications(
    actor: Principal, partner_id: uuid.UUID, *, status: str | None, limit: int | None, cursor: str | None
) -> Page[NotificationView]:
    """For the partner's admins and staff; a viewer may not, anyone else finds no partner."""
    size, before = _page(limit, cursor)
    async with partner_tx(partner_id):
        if await service.ensure_partner_access(actor, partner_id) not in {"staff", "reseller_admin"}:
            raise ForbiddenForRole("only the partner's admins see its notifications")
        rows = await repository.outbox_page(partner_id=partner_id, status=status, before_id=before, limit=size + 1)
    return _page_of(rows, size)


def _page(limit: int | None, cursor: str | None) -> tuple[int, int | None]:
    return PageRequest.parse(limit, None).limit, decode_cursor(cursor) if cursor else None


def _page_of(rows: list[dict[str, object]], size: int) -> Page[NotificationView]:
    items = [view_of(NotificationView, row) for row in rows[:size]]
    return Page(items, encode_cursor(items[-1].id) if len(rows) > size else None)
