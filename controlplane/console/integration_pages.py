"""How a tenant hears from the platform, in the console: its webhook endpoint, the signing secret (rotated here,
the new one shown once), the recent deliveries, and the notification emails sent to it. Tenant admins only
(manage_tenant), as the API's routes for the same."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter
from litestar.response import Redirect

from controlplane.console.pages import signed_in, tenant_in_view
from controlplane.console.params import Form, TenantPath
from controlplane.console.rendering import page
from controlplane.core.errors import SecretNotFound
from controlplane.core.pagination import MAX_PAGE_SIZE
from tenants import service as tenants
from tenants.errors import WebhookEndpointNotSet
from tenants.notifications import history
from tenants.roles import Permission

_DELIVERIES = 50


@dataclass
class EndpointForm:
    csrf_token: str
    url: str


@dataclass
class CsrfOnly:
    csrf_token: str


async def _webhooks_page(
    request: Request[Any, Any, Any], tenant_id: uuid.UUID, *, status: int = 200, rotated: Any = None
) -> Response[str]:
    principal = signed_in(request)
    tenant = await tenant_in_view(principal, tenant_id, Permission.MANAGE_TENANT)
    try:
        endpoint = await tenants.get_webhook_endpoint(tenant_id)
    except WebhookEndpointNotSet:
        endpoint = None
    try:
        secret = await tenants.webhook_secret_status(request.app.state.tenant_vault, tenant_id)
    except SecretNotFound:  # never rotated: the first rotation makes it
        secret = None
    deliveries = await tenants.recent_webhook_events(tenant_id, _DELIVERIES)
    return page(
        request,
        "webhooks.html",
        status=status,
        tenant=tenant,
        endpoint=endpoint,
        secret=secret,
        deliveries=deliveries,
        rotated=rotated,
    )


class IntegrationPages(Controller):
    path = "/tenants/{tenant_id:uuid}"
    include_in_schema = False

    @get("/webhooks")
    async def webhooks(self, request: Request[Any, Any, Any], tenant_id: TenantPath) -> Response[str]:
        return await _webhooks_page(request, tenant_id)

    @post("/webhooks/endpoint", status_code=303)
    async def set_endpoint(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[EndpointForm, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_TENANT, method="PUT")
        production = request.app.state.settings.env == "production"
        await tenants.set_webhook_endpoint(principal, tenant_id, data.url.strip()[:2048], production=production)
        return Redirect(f"/console/tenants/{tenant_id}/webhooks", status_code=303)

    @post("/webhooks/endpoint/remove", status_code=303)
    async def remove_endpoint(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[CsrfOnly, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_TENANT, method="DELETE")
        await tenants.remove_webhook_endpoint(principal, tenant_id)
        return Redirect(f"/console/tenants/{tenant_id}/webhooks", status_code=303)

    @post("/webhooks/secret/rotate", status_code=201)
    async def rotate_secret(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[CsrfOnly, Form]
    ) -> Response[str]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_TENANT, method="POST")
        rotated = await tenants.rotate_webhook_secret(principal, request.app.state.tenant_vault, tenant_id)
        # The new secret is in this answer only.
        return await _webhooks_page(request, tenant_id, status=201, rotated=rotated)

    @get("/notifications")
    async def notifications(
        self,
        request: Request[Any, Any, Any],
        tenant_id: TenantPath,
        cursor: Annotated[str | None, QueryParameter(max_length=512, required=False)] = None,
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.MANAGE_TENANT)
        found = await history.tenant_notifications(tenant_id, status=None, limit=MAX_PAGE_SIZE, cursor=cursor)
        return page(
            request, "notifications.html", tenant=tenant, notifications=found.items, next_cursor=found.next_cursor
        )
