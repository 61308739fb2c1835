"""HTTP for tenants, members, API keys and audit events. Thin: parse, call the service, shape."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, put
from litestar.params import JSONBody, PathParameter, QueryParameter
from msgspec import UNSET, structs

from controlplane.core.pagination import PageRequest
from controlplane.core.problems import problem_responses
from controlplane.core.web import BEARER, IDEMPOTENCY_ERRORS, Cursor, Limit, TenantId, idempotent_post, to_struct
from tenants import service
from tenants.api.guards import allow, principal_of
from tenants.api.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    ApiKeyRead,
    AuditEventPage,
    AuditEventRead,
    BillingProfile,
    BillingProfileRead,
    MemberCreate,
    MemberPage,
    MemberRead,
    MemberUpdate,
    TenantCreate,
    TenantPage,
    TenantRead,
    TenantUpdate,
    WebhookEndpoint,
    WebhookEndpointRead,
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


class TenantController(Controller):
    path = "/v1/tenants"
    tags = ["tenants"]
    security = BEARER

    @idempotent_post("/", status_code=201, responses=problem_responses(400, 401, 403, 404, 409, *IDEMPOTENCY_ERRORS))
    async def create_tenant(self, request: Request[Any, Any, Any], data: JSONBody[TenantCreate]) -> TenantRead:
        values = {name: value for name, value in structs.asdict(data).items() if value is not UNSET}
        row = await service.create_tenant(principal_of(request), values)
        return to_struct(TenantRead, row)

    @get("/", responses=problem_responses(400, 401, 422))
    async def list_tenants(
        self, request: Request[Any, Any, Any], limit: Limit = None, cursor: Cursor = None
    ) -> TenantPage:
        rows, next_cursor = await service.list_tenants(principal_of(request), PageRequest.parse(limit, cursor))
        return TenantPage(items=[to_struct(TenantRead, row) for row in rows], next_cursor=next_cursor)

    @get("/{tenant_id:uuid}", **allow(Permission.READ_TENANT))
    async def get_tenant(self, tenant_id: TenantId) -> TenantRead:
        return to_struct(TenantRead, await service.get_tenant(tenant_id))

    @patch("/{tenant_id:uuid}", **allow(Permission.MANAGE_TENANT, 409, 413))
    async def update_tenant(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[TenantUpdate]
    ) -> TenantRead:
        changes = {name: value for name, value in structs.asdict(data).items() if value is not UNSET}
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

    @delete("/{tenant_id:uuid}", status_code=202, **allow(Permission.MANAGE_TENANT))
    async def request_erasure(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> TenantRead:
        row = await service.request_erasure(principal_of(request), tenant_id, request.app.state.tenant_vault)
        return to_struct(TenantRead, row)


class TenantSecretsController(Controller):
    """A tenant's personal data (encrypted at rest) and its webhook signing secret (in its OpenBao namespace)."""

    path = "/v1/tenants/{tenant_id:uuid}"
    tags = ["tenants"]
    security = BEARER

    @get("/billing-profile", **allow(Permission.READ_BILLING, 503))
    async def get_billing_profile(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> BillingProfileRead:
        row = await service.get_billing_profile(request.app.state.pii_cipher, tenant_id)
        return to_struct(BillingProfileRead, row)

    @put("/billing-profile", **allow(Permission.MANAGE_BILLING, 413, 503))
    async def put_billing_profile(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[BillingProfile]
    ) -> BillingProfileRead:
        values = structs.asdict(data)
        values["address"] = structs.asdict(data.address) if data.address else None
        row = await service.put_billing_profile(principal_of(request), request.app.state.pii_cipher, tenant_id, values)
        return to_struct(BillingProfileRead, row)

    @idempotent_post(
        "/webhook-secret/rotations",
        status_code=201,
        **allow(Permission.MANAGE_TENANT, 503, *IDEMPOTENCY_ERRORS, shown_once=("secret",)),
    )
    async def rotate_webhook_secret(self, request: Request[Any, Any, Any], tenant_id: TenantId) -> WebhookSecretRotated:
        row = await service.rotate_webhook_secret(principal_of(request), request.app.state.tenant_vault, tenant_id)
        return to_struct(WebhookSecretRotated, row)

    @put("/webhook-endpoint", **allow(Permission.MANAGE_TENANT, 413, 422))
    async def set_webhook_endpoint(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[WebhookEndpoint]
    ) -> WebhookEndpointRead:
        production = request.app.state.settings.env == "production"
        row = await service.set_webhook_endpoint(principal_of(request), tenant_id, data.url, production=production)
        return to_struct(WebhookEndpointRead, row)

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
        row = await service.webhook_secret_status(request.app.state.tenant_vault, tenant_id)
        return to_struct(WebhookSecretStatus, row)


class MemberController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/members"
    tags = ["members"]
    security = BEARER

    @idempotent_post("/", status_code=201, **allow(Permission.MANAGE_MEMBERS, *IDEMPOTENCY_ERRORS))
    async def add_member(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[MemberCreate]
    ) -> MemberRead:
        row = await service.add_member(principal_of(request), tenant_id, data.email, data.role)
        return to_struct(MemberRead, row)

    @get("/", **allow(Permission.READ_MEMBERS, 422))
    async def list_members(self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None) -> MemberPage:
        rows, next_cursor = await service.list_members(tenant_id, PageRequest.parse(limit, cursor))
        return MemberPage(items=[to_struct(MemberRead, row) for row in rows], next_cursor=next_cursor)

    @get("/{user_id:uuid}", **allow(Permission.READ_MEMBERS))
    async def get_member(self, tenant_id: TenantId, user_id: UserId) -> MemberRead:
        return to_struct(MemberRead, await service.get_member(tenant_id, user_id))

    @patch("/{user_id:uuid}", **allow(Permission.MANAGE_MEMBERS, 409, 413))
    async def update_member(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, user_id: UserId, data: JSONBody[MemberUpdate]
    ) -> MemberRead:
        row = await service.change_member_role(principal_of(request), tenant_id, user_id, data.role)
        return to_struct(MemberRead, row)

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
        row, secret = await service.create_api_key(principal_of(request), tenant_id, data.name, data.role)
        return to_struct(ApiKeyCreated, {**row, "secret": secret})

    @get("/", **allow(Permission.MANAGE_API_KEYS, 422))
    async def list_api_keys(self, tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None) -> ApiKeyPage:
        rows, next_cursor = await service.list_api_keys(tenant_id, PageRequest.parse(limit, cursor))
        return ApiKeyPage(items=[to_struct(ApiKeyRead, row) for row in rows], next_cursor=next_cursor)

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
        rows, next_cursor = await service.list_audit_events(tenant_id, PageRequest.parse(limit, cursor))
        items = [
            to_struct(AuditEventRead, {**row, "before": _json(row["before"]), "after": _json(row["after"])})
            for row in rows
        ]
        return AuditEventPage(items=items, next_cursor=next_cursor)


def _json(value: Any) -> Any:
    # asyncpg hands jsonb back as text.
    return json.loads(value) if isinstance(value, str) else value
