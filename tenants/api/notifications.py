"""HTTP for the notification outbox: what was emailed to a tenant's (or partner's) people, and how it went."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from litestar import Controller, Request, get
from litestar.params import PathParameter, QueryParameter
from msgspec import Struct

from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, Cursor, Limit, TenantId, to_struct
from tenants.api.guards import allow, principal_of
from tenants.notifications import history
from tenants.roles import Permission

PartnerId = Annotated[uuid.UUID, PathParameter(description="The partner's id (a reseller's id is its partner id)")]
StatusFilter = Annotated[
    Literal["pending", "sent", "failed", "skipped"] | None,
    QueryParameter(description="Only notifications in this state", required=False),
]


class NotificationRead(Struct):
    id: int
    event_type: str
    event_key: str
    recipient: str  # `billing_contact` or `user:<id>`: never an address
    status: str  # pending | sent | failed | skipped
    attempts: int
    last_error: str | None  # a coarse code: mail_unavailable, mail_rejected, no_address, duplicate_address, ...
    next_attempt_at: datetime | None
    sent_at: datetime | None
    failed_at: datetime | None
    created_at: datetime


class TenantNotificationRead(NotificationRead):
    pass


class TenantNotificationPage(Struct):
    items: list[TenantNotificationRead]
    next_cursor: str | None


class PartnerNotificationRead(NotificationRead):
    pass


class PartnerNotificationPage(Struct):
    items: list[PartnerNotificationRead]
    next_cursor: str | None


class TenantNotificationController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/notifications"
    tags = ["notifications"]
    security = BEARER

    @get("/", **allow(Permission.MANAGE_TENANT, 422))
    async def list_notifications(
        self, tenant_id: TenantId, status: StatusFilter = None, limit: Limit = None, cursor: Cursor = None
    ) -> TenantNotificationPage:
        """The tenant's notification emails, newest first: to whom (billing contact or member, no address),
        their state, attempts and last error."""
        page = await history.tenant_notifications(tenant_id, status=status, limit=limit, cursor=cursor)
        return to_struct(TenantNotificationPage, page)


class PartnerNotificationController(Controller):
    path = "/v1/partners/{partner_id:uuid}/notifications"
    tags = ["notifications"]
    security = BEARER

    @get("/", responses=problem_responses(400, 401, 403, 404, 422))
    async def list_notifications(
        self,
        request: Request[Any, Any, Any],
        partner_id: PartnerId,
        status: StatusFilter = None,
        limit: Limit = None,
        cursor: Cursor = None,
    ) -> PartnerNotificationPage:
        """The partner's notification emails, newest first, for its admins."""
        page = await history.partner_notifications(
            principal_of(request), partner_id, status=status, limit=limit, cursor=cursor
        )
        return to_struct(PartnerNotificationPage, page)
