"""Reading a tenant's audit trail (writing it is `tenants.audit`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import repository


@dataclass(frozen=True, slots=True)
class AuditEventView:
    """Who did what to which target; `before` and `after` are the free-form summaries recorded with it."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    actor_type: str
    actor_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime


def _json(value: Any) -> Any:
    # asyncpg hands jsonb back as text.
    return json.loads(value) if isinstance(value, str) else value


def _event(row: dict[str, Any]) -> AuditEventView:
    return view_of(AuditEventView, row, before=_json(row["before"]), after=_json(row["after"]))


async def list_audit_events(tenant_id: uuid.UUID, page: PageRequest) -> Page[AuditEventView]:
    async with tenant_tx(tenant_id):
        rows = await repository.list_audit_events(tenant_id, page)
    return page_of_views(rows, page, _event)
