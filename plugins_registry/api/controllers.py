"""HTTP for the plugin registry: catalogue, installs, licenses, activations, the entitlement check and the
public licensing keys and revocation list."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from controlplane.core.dates import query_date
from controlplane.core.pagination import PageRequest, decode_cursor
from controlplane.core.problems import problem_responses
from controlplane.core.web import (
    BEARER,
    IDEMPOTENCY_ERRORS,
    Cursor,
    Limit,
    TenantId,
    answer_created,
    created_or_stored,
    idempotent_post,
    to_struct,
)
from plugins_registry import service
from plugins_registry.api.schemas import (
    FEATURE_PATTERN,
    SLUG_PATTERN,
    ActivationCreate,
    ActivationList,
    ActivationRead,
    EntitlementRead,
    InstallCreate,
    InstallPage,
    InstallRead,
    InstallUpdate,
    Jwks,
    LicensePage,
    LicenseRead,
    PluginCreate,
    PluginPage,
    PluginRead,
    PublisherCreate,
    PublisherPage,
    PublisherRead,
    RevocationList,
    RevokedLicense,
    VersionCreate,
    VersionList,
    VersionRead,
    VersionYank,
    WebhookEventList,
    WebhookEventRead,
    version_read,
)
from tenants.api.guards import allow, principal_of, staff_only
from tenants.roles import Permission

Slug = Annotated[str, PathParameter(description="The plugin's slug", max_length=63)]
PublisherId = Annotated[uuid.UUID, PathParameter(description="The publisher's id")]
LicenseId = Annotated[uuid.UUID, PathParameter(description="The license's id")]
ActivationId = Annotated[uuid.UUID, PathParameter(description="The activation's id")]
ById = problem_responses(400, 401, 403, 404, 409, *IDEMPOTENCY_ERRORS)


def _licensing(request: Request[Any, Any, Any]) -> service.Licensing:
    return request.app.state.licensing


def _created_or_installed() -> dict[str, Any]:
    """The install route's guard and answers: 201 for a new install, 200 when it was installed already."""
    options = allow(Permission.MANAGE_PLUGINS, 409, 413, 422, *IDEMPOTENCY_ERRORS)
    options["responses"][200] = ResponseSpec(InstallRead, description="Installed already, as asked; here it is")
    return options


class PublisherController(Controller):
    path = "/v1/publishers"
    tags = ["plugins"]
    security = BEARER
    guards = [staff_only]

    @idempotent_post("/", status_code=201, responses=problem_responses(401, 403, 404, 413, 422, *IDEMPOTENCY_ERRORS))
    async def create_publisher(self, data: JSONBody[PublisherCreate]) -> PublisherRead:
        return to_struct(PublisherRead, await service.create_publisher(msgspec.structs.asdict(data)))

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def list_publishers(self, limit: Limit = None, cursor: Cursor = None) -> PublisherPage:
        rows, next_cursor = await service.list_publishers(PageRequest.parse(limit, cursor))
        return PublisherPage(items=[to_struct(PublisherRead, row) for row in rows], next_cursor=next_cursor)

    @get("/{publisher_id:uuid}", responses=problem_responses(400, 401, 403, 404))
    async def get_publisher(self, publisher_id: PublisherId) -> PublisherRead:
        return to_struct(PublisherRead, await service.get_publisher(publisher_id))


class PluginController(Controller):
    """The catalogue: staff publish; every signed-in user and API key reads."""

    path = "/v1/plugins"
    tags = ["plugins"]
    security = BEARER

    @idempotent_post("/", guards=[staff_only], status_code=201, responses=created_or_stored(PluginRead))
    async def create_plugin(self, data: JSONBody[PluginCreate]) -> Response[PluginRead]:
        row, created = await service.create_plugin(msgspec.to_builtins(data))
        return answer_created(to_struct(PluginRead, row), created)

    @get("/", responses=problem_responses(400, 401, 422))
    async def list_plugins(self, limit: Limit = None, cursor: Cursor = None) -> PluginPage:
        rows, next_cursor = await service.list_plugins(PageRequest.parse(limit, cursor))
        return PluginPage(items=[to_struct(PluginRead, row) for row in rows], next_cursor=next_cursor)

    @get("/{slug:str}", responses=problem_responses(400, 401, 404))
    async def get_plugin(self, slug: Slug) -> PluginRead:
        return to_struct(PluginRead, await service.get_plugin(slug))

    @idempotent_post(
        "/{slug:str}/versions", guards=[staff_only], status_code=201, responses=created_or_stored(VersionRead)
    )
    async def publish_version(self, slug: Slug, data: JSONBody[VersionCreate]) -> Response[VersionRead]:
        row, created = await service.publish_version(slug, msgspec.structs.asdict(data))
        return answer_created(to_struct(VersionRead, version_read(row)), created)

    @get("/{slug:str}/versions", responses=problem_responses(400, 401, 404))
    async def list_versions(self, slug: Slug) -> VersionList:
        rows = await service.list_versions(slug)
        return VersionList(items=[to_struct(VersionRead, version_read(row)) for row in rows])

    @idempotent_post(
        "/{slug:str}/versions/{version:str}/yank",
        guards=[staff_only],
        status_code=200,
        responses=problem_responses(401, 403, 404, 413, 422, *IDEMPOTENCY_ERRORS),
    )
    async def yank_version(
        self, slug: Slug, version: Annotated[str, PathParameter(max_length=256)], data: JSONBody[VersionYank]
    ) -> VersionRead:
        return to_struct(VersionRead, version_read(await service.yank_version(slug, version, data.reason)))


class TenantPluginController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/plugins"
    tags = ["plugins"]
    security = BEARER

    @idempotent_post("/", status_code=201, **_created_or_installed())
    async def install_plugin(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[InstallCreate]
    ) -> Response[InstallRead]:
        row, created = await service.install(
            principal_of(request), _licensing(request), tenant_id, data.slug, data.version, data.seats
        )
        return answer_created(to_struct(InstallRead, row), created)

    @get("/", **allow(Permission.READ_PLUGINS, 422))
    async def list_installs(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> InstallPage:
        rows, next_cursor = await service.list_installs(
            _licensing(request), tenant_id, PageRequest.parse(limit, cursor)
        )
        return InstallPage(items=[to_struct(InstallRead, row) for row in rows], next_cursor=next_cursor)

    @patch("/{slug:str}", **allow(Permission.MANAGE_PLUGINS, 409, 413, 422))
    async def update_install(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, slug: Slug, data: JSONBody[InstallUpdate]
    ) -> InstallRead:
        version = None if data.version is msgspec.UNSET else data.version
        seats = None if data.seats is msgspec.UNSET else data.seats
        row = await service.update(principal_of(request), _licensing(request), tenant_id, slug, version, seats)
        return to_struct(InstallRead, row)

    @idempotent_post(
        "/{slug:str}/rollback", status_code=200, **allow(Permission.MANAGE_PLUGINS, 409, *IDEMPOTENCY_ERRORS)
    )
    async def rollback_install(self, request: Request[Any, Any, Any], tenant_id: TenantId, slug: Slug) -> InstallRead:
        row = await service.rollback(principal_of(request), _licensing(request), tenant_id, slug)
        return to_struct(InstallRead, row)

    @delete("/{slug:str}", status_code=204, **allow(Permission.MANAGE_PLUGINS))
    async def uninstall(self, request: Request[Any, Any, Any], tenant_id: TenantId, slug: Slug) -> None:
        await service.uninstall(principal_of(request), tenant_id, slug)


class TenantLicenseController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/licenses"
    tags = ["licenses"]
    security = BEARER

    @get("/", **allow(Permission.READ_PLUGINS, 422))
    async def list_licenses(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> LicensePage:
        rows, next_cursor = await service.list_licenses(
            _licensing(request), tenant_id, PageRequest.parse(limit, cursor)
        )
        return LicensePage(items=[to_struct(LicenseRead, row) for row in rows], next_cursor=next_cursor)


class TenantWebhookEventController(Controller):
    """What happened to the tenant's webhook deliveries (plugin events)."""

    path = "/v1/tenants/{tenant_id:uuid}/webhook-events"
    tags = ["tenants"]
    security = BEARER

    @get("/", **allow(Permission.MANAGE_TENANT, 422))
    async def list_webhook_events(
        self,
        tenant_id: TenantId,
        limit: Annotated[int, QueryParameter(name="limit", ge=1, le=100, required=False)] = 50,
    ) -> WebhookEventList:
        rows = await service.recent_events(tenant_id, limit)
        return WebhookEventList(items=[to_struct(WebhookEventRead, row) for row in rows])


class LicenseController(Controller):
    """Licenses by id: the service finds the owning tenant and authorizes there."""

    path = "/v1/licenses/{license_id:uuid}"
    tags = ["licenses"]
    security = BEARER

    @get("/", responses=problem_responses(400, 401, 403, 404))
    async def get_license(self, request: Request[Any, Any, Any], license_id: LicenseId) -> LicenseRead:
        row = await service.get_license(principal_of(request), _licensing(request), license_id)
        return to_struct(LicenseRead, row)

    @idempotent_post("/refresh", status_code=200, responses=ById)
    async def refresh_license(self, request: Request[Any, Any, Any], license_id: LicenseId) -> LicenseRead:
        row = await service.refresh(principal_of(request), _licensing(request), license_id)
        return to_struct(LicenseRead, row)

    @idempotent_post(
        "/activations", status_code=201, responses={**created_or_stored(ActivationRead), **problem_responses(409, 429)}
    )
    async def activate(
        self, request: Request[Any, Any, Any], license_id: LicenseId, data: JSONBody[ActivationCreate]
    ) -> Response[ActivationRead]:
        per_hour = request.app.state.settings.license_activations_per_hour
        row, created = await service.activate(
            principal_of(request), license_id, data.fingerprint, data.label, per_hour=per_hour
        )
        return answer_created(to_struct(ActivationRead, row), created)

    @get("/activations", responses=problem_responses(400, 401, 403, 404))
    async def list_activations(self, request: Request[Any, Any, Any], license_id: LicenseId) -> ActivationList:
        rows = await service.list_activations(principal_of(request), license_id)
        return ActivationList(items=[to_struct(ActivationRead, row) for row in rows])

    @delete("/activations/{activation_id:uuid}", status_code=204, responses=problem_responses(400, 401, 403, 404))
    async def deactivate(
        self, request: Request[Any, Any, Any], license_id: LicenseId, activation_id: ActivationId
    ) -> None:
        await service.deactivate(principal_of(request), license_id, activation_id)

    @idempotent_post("/activations/{activation_id:uuid}/heartbeat", status_code=200, responses=ById)
    async def heartbeat(
        self, request: Request[Any, Any, Any], license_id: LicenseId, activation_id: ActivationId
    ) -> ActivationRead:
        row = await service.heartbeat(principal_of(request), license_id, activation_id)
        return to_struct(ActivationRead, row)


class LicensingController(Controller):
    """Public: what a plugin needs to verify a license offline, and the revocations it may check online."""

    path = "/v1/licensing"
    tags = ["licenses"]

    @get("/keys", exclude_from_auth=True, responses=problem_responses(503))
    async def keys(self, request: Request[Any, Any, Any]) -> Jwks:
        return msgspec.convert(await service.public_keys(_licensing(request)), Jwks)

    @get("/revocations", exclude_from_auth=True, responses=problem_responses(400, 422))
    async def revocations(
        self,
        after: Annotated[
            datetime | None,
            QueryParameter(description="Only revocations after this time (a first page; then follow `next_cursor`)"),
        ] = None,
        cursor: Annotated[
            str | None, QueryParameter(max_length=200, description="`next_cursor` of the previous page")
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 1000,
    ) -> RevocationList:
        rows, next_cursor = await service.revocations(
            query_date(after), decode_cursor(cursor) if cursor else None, limit
        )
        return RevocationList(
            items=[to_struct(RevokedLicense, row) for row in rows],
            next_after=rows[-1]["revoked_at"] if next_cursor else None,
            next_cursor=next_cursor,
        )


class EntitlementController(Controller):
    path = "/v1/entitlements"
    tags = ["licenses"]
    security = BEARER

    @get("/check", responses=problem_responses(400, 401, 403))
    async def check(
        self,
        request: Request[Any, Any, Any],
        plugin: Annotated[
            str, QueryParameter(min_length=2, max_length=63, pattern=SLUG_PATTERN, description="The plugin's slug")
        ],
        feature: Annotated[
            str | None, QueryParameter(max_length=64, pattern=FEATURE_PATTERN, description="A feature flag")
        ] = None,
    ) -> EntitlementRead:
        # The hot path: the answer's fields are built by the service, so no conversion is needed.
        return EntitlementRead(**await service.check(principal_of(request), plugin, feature))


__all__ = [
    "EntitlementController",
    "LicenseController",
    "LicensingController",
    "PluginController",
    "PublisherController",
    "TenantLicenseController",
    "TenantPluginController",
]
