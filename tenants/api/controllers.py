"""HTTP for tenants, members, API keys and audit events. Thin: parse, call the service, shape."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, put
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import UNSET

from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, IDEMPOTENCY_ERRORS, Cursor, Limit, TenantId, idempotent_post, to_struct
from tenants import service
from tenants.api.guards import allow, principal_of
from tenants.api.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    AuditEventPage,
    BillingProfile,
    BillingProfileRead,
    RateLimitOverride,
    RateLimitOverrideRead,
    TenantCreate,
    TenantMemberCreate,
    TenantMemberPage,
    TenantMemberRead,
    TenantMemberUpdate,
    TenantPage,
    TenantRead,
    TenantUpdate,
    WebhookEndpoint,
    WebhookEndpointRead,
    WebhookEventList,
    WebhookEventRead,
    WebhookSecretRotated,
    WebhookSecretStatus,
)
from tenants.roles import Permission

UserId = Annotated[uuid.UUID, PathParameter(description="The member's user id")]
LiftNonPayment = Annotated[
    bool,
    QueryParameter(
        description="Also lift a suspension for non-payment (its invoice stays uncollectible); without it, "
        "reactivating a tenant suspended for non-payment is refused (409 suspended_for_non_payment_open)",
        required=False,
    ),
]
KeyId = Annotated[uuid.UUID, PathParameter(description="The API key's id")]


def _new_tenant(data: TenantCreate) -> service.NewTenant:
    return service.NewTenant(
        name=data.name,
        slug=data.slug,
        currency=None if data.currency is UNSET else data.currency,
        billing_email=data.billing_email,
        reseller_id=data.reseller_id,
        tax_rate_bps=None if data.tax_rate_bps is UNSET else data.tax_rate_bps,
        invoice_grace_hours=None if data.invoice_grace_hours is UNSET else data.invoice_grace_hours,
    )


def _tenant_changes(data: TenantUpdate) -> service.TenantChanges:
    """Exactly the fields sent."""
    changes: service.TenantChanges = {}
    if data.name is not UNSET:
        changes["name"] = data.name
    if data.billing_email is not UNSET:
        changes["billing_email"] = data.billing_email
    if data.currency is not UNSET:
        changes["currency"] = data.currency
    if data.tax_rate_bps is not UNSET:
        changes["tax_rate_bps"] = data.tax_rate_bps
    if data.invoice_grace_hours is not UNSET:
        changes["invoice_grace_hours"] = data.invoice_grace_hours
    return changes


def _billing_profile(data: BillingProfile) -> service.BillingProfileValues:
    address = data.address
    return service.BillingProfileValues(
        contact_name=data.contact_name,
        contact_email=data.contact_email,
        tax_id=data.tax_id,
        address=service.PostalAddress(
            line1=address.line1,
            city=address.city,
            country=address.country,
            line2=address.line2,
            postal_code=address.postal_code,
            region=address.region,
        )
        if address
        else None,
    )


class TenantController(Controller):
    path = "/v1/tenants"
    tags = ["tenants"]
    security = BEARER

    @idempotent_post("/", status_code=201, responses=problem_responses(400, 401, 403, 404, 409, *IDEMPOTENCY_ERRORS))
    async def create_tenant(self, request: Request[Any, Any, Any], data: JSONBody[TenantCreate]) -> TenantRead:
        tenant = await service.create_tenant(principal_of(request), _new_tenant(data))
        return to_struct(TenantRead, tenant)

    @get("/", responses=problem_responses(400, 401, 422))
    async def list_tenants(
        self, request: Request[Any, Any, Any], limit: Limit = None, cursor: Cursor = None
    ) -> TenantPage:
        page = await service.list_tenants(principal_of(request), PageRequest.parse(limit, cursor))
        return to_struct(TenantPage, page)

    @get("/{tenant_id:uuid}", **allow(Permission.READ_TENANT))
    async def get_tenant(self, tenant_id: TenantId) -> TenantRead:
        return to_struct(TenantRead, await service.get_tenant(tenant_id))

    @patch("/{tenant_id:uuid}", **allow(Permission.MANAGE_TENANT, 409, 413))
    async def update_tenant(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[TenantUpdate]
    ) -> TenantRead:
        changes = _tenant_changes(data)
        return to_struct(TenantRead, await service.update_tenant(principal_of(request), tenant_id, changes))

    @idempotent_post("/{tenant_id:uuid}/suspend", status_code=200, **allow(Permission.STAFF_ONLY, *IDEMPOTENCY_ERRORS))
    async def suspend_tenant(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> TenantRead:
        return to_struct(TenantRead, await service.change_status(principal_of(request), tenant_id, "suspend"))

    @idempotent_post(
        "/{tenant_id:uuid}/reactivate", status_code=200, **allow(Permission.STAFF_ONLY, *IDEMPOTENCY_ERRORS)
    )
    async def reactivate_tenant(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, lift_non_payment_suspension: LiftNonPayment = False
    ) -> TenantRead:
        return to_struct(
            TenantRead,
            await service.change_status(
                principal_of(request), tenant_id, "reactivate", lift_non_payment=lift_non_payment_suspension
            ),
        )

    @put("/{tenant_id:uuid}/rate-limit-override", **allow(Permission.STAFF_ONLY, 413))
    async def set_rate_limit_override(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[RateLimitOverride]
    ) -> RateLimitOverrideRead:
        """Staff scale the tenant's API rate limits (percent of the defaults), over its plan's; null removes the
        override. Repeating the same body changes nothing."""
        override = await service.set_rate_limit_override(principal_of(request), tenant_id, data.rate_limit_percent)
        return to_struct(RateLimitOverrideRead, override)

    @delete("/{tenant_id:uuid}", status_code=202, **allow(Permission.MANAGE_TENANT))
    async def request_erasure(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> TenantRead:
        tenant = await service.request_erasure(principal_of(request), tenant_id, request.app.state.tenant_vault)
        return to_struct(TenantRead, tenant)


class TenantSecretsController(Controller):
    """A tenant's personal data (encrypted at rest) and its webhook signing secret (in its OpenBao namespace)."""

    path = "/v1/tenants/{tenant_id:uuid}"
    tags = ["tenants"]
    security = BEARER

    @get("/billing-profile", **allow(Permission.READ_BILLING, 503))
    async def get_billing_profile(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> BillingProfileRead:
        profile = await service.get_billing_profile(request.app.state.pii_cipher, tenant_id)
        return to_struct(BillingProfileRead, profile)

    @put("/billing-profile", **allow(Permission.MANAGE_BILLING, 413, 503))
    async def put_billing_profile(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[BillingProfile]
    ) -> BillingProfileRead:
        profile = await service.put_billing_profile(
            principal_of(request), request.app.state.pii_cipher, tenant_id, _billing_profile(data)
        )
        return to_struct(BillingProfileRead, profile)

    @idempotent_post(
        "/webhook-secret/rotations",
        status_code=201,
        **allow(Permission.MANAGE_TENANT, 503, *IDEMPOTENCY_ERRORS, shown_once=("secret",)),
    )
    async def rotate_webhook_secret(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> WebhookSecretRotated:
        rotation = await service.rotate_webhook_secret(principal_of(request), request.app.state.tenant_vault, tenant_id)
        return to_struct(WebhookSecretRotated, rotation)

    @put("/webhook-endpoint", **allow(Permission.MANAGE_TENANT, 413, 422))
    async def set_webhook_endpoint(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[WebhookEndpoint]
    ) -> WebhookEndpointRead:
        production = request.app.state.settings.env == "production"
        endpoint = await service.set_webhook_endpoint(principal_of(request), tenant_id, data.url, production=production)
        return to_struct(WebhookEndpointRead, endpoint)

    @get("/webhook-endpoint", **allow(Permission.MANAGE_TENANT))
    async def get_webhook_endpoint(self, tenant_id: TenantId) -> WebhookEndpointRead:
        return to_struct(WebhookEndpointRead, await service.get_webhook_endpoint(tenant_id))

    @delete("/webhook-endpoint", status_code=204, **allow(Permission.MANAGE_TENANT))
    async def remove_webhook_endpoint(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> None:
        await service.remove_webhook_endpoint(principal_of(request), tenant_id)

    @get("/webhook-secret", **allow(Permission.MANAGE_TENANT, 503))
    async def get_webhook_secret_status(
        self, request: Request[Any, Any, Any], tenant_id: TenantId
    ) -> WebhookSecretStatus:
        status = await service.webhook_secret_status(request.app.state.tenant_vault, tenant_id)
        return to_struct(WebhookSecretStatus, status)


class TenantWebhookEventController(Controller):
    """What happened to the tenant's webhook deliveries (plugin, billing and tenant events)."""

    path = "/v1/tenants/{tenant_id:uuid}/webhook-events"
    tags = ["tenants"]
    security = BEARER

    @get("/", **allow(Permission.MANAGE_TENANT, 422))
    async def list_webhook_events(
        self,
        tenant_id: TenantId,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100, required=False)] = 50,
    ) -> WebhookEventList:
        views = await service.recent_webhook_events(tenant_id, limit)
        return WebhookEventList(items=[to_struct(WebhookEventRead, view) for view in views])


class MemberController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/members"
    tags = ["members"]
    security = BEARER

    @idempotent_post("/", status_code=201, **allow(Permission.MANAGE_MEMBERS, *IDEMPOTENCY_ERRORS))
    async def add_member(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[TenantMemberCreate]
    ) -> TenantMemberRead:
        member = await service.add_member(principal_of(request), tenant_id, data.email, data.role)
        return to_struct(TenantMemberRead, member)

    @get("/", **allow(Permission.READ_MEMBERS, 422))
    async def list_members(self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None) -> TenantMemberPage:
        return to_struct(TenantMemberPage, await service.list_members(tenant_id, PageRequest.parse(limit, cursor)))

    @get("/{user_id:uuid}", **allow(Permission.READ_MEMBERS))
    async def get_member(self, tenant_id: TenantId, user_id: UserId) -> TenantMemberRead:
        return to_struct(TenantMemberRead, await service.get_member(tenant_id, user_id))

    @patch("/{user_id:uuid}", **allow(Permission.MANAGE_MEMBERS, 409, 413))
    async def update_member(
        self,
        request: Request[Any, Any, Any],
        tenant_id: TenantId,
        user_id: UserId,
        data: JSONBody[TenantMemberUpdate],
    ) -> TenantMemberRead:
        member = await service.change_member_role(principal_of(request), tenant_id, user_id, data.role)
        return to_struct(TenantMemberRead, member)

    @delete("/{user_id:uuid}", status_code=204, **allow(Permission.MANAGE_MEMBERS, 409))
    async def remove_member(self, request: Request[Any, Any, Any], tenant_id: TenantId, user_id: UserId) -> None:
        await service.remove_member(principal_of(request), tenant_id, user_id)


class ApiKeyController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/api-keys"
    tags = ["api keys"]
    security = BEARER

    @idempotent_post(
        "/", status_code=201, **allow(Permission.MANAGE_API_KEYS, *IDEMPOTENCY_ERRORS, shown_once=("secret",))
    )
    async def create_api_key(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[ApiKeyCreate]
    ) -> ApiKeyCreated:
        new = await service.create_api_key(principal_of(request), tenant_id, data.name, data.role)
        return to_struct(ApiKeyCreated, {**dataclasses.asdict(new.key), "secret": new.secret})

    @get("/", **allow(Permission.MANAGE_API_KEYS, 422))
    async def list_api_keys(self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None) -> ApiKeyPage:
        return to_struct(ApiKeyPage, await service.list_api_keys(tenant_id, PageRequest.parse(limit, cursor)))

    @delete("/{key_id:uuid}", status_code=204, **allow(Permission.MANAGE_API_KEYS))
    async def revoke_api_key(self, request: Request[Any, Any, Any], tenant_id: TenantId, key_id: KeyId) -> None:
        await service.revoke_api_key(principal_of(request), tenant_id, key_id)


class AuditController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/audit-events"
    tags = ["audit"]
    security = BEARER

    @get("/", **allow(Permission.READ_AUDIT, 422))
    async def list_audit_events(
        self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> AuditEventPage:
        return to_struct(AuditEventPage, await service.list_audit_events(tenant_id, PageRequest.parse(limit, cursor)))
