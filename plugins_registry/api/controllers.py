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
    MONTH_PATTERN,
    Cursor,
    Limit,
    TenantId,
    answer_created,
    created_or_stored,
    idempotent_post,
    to_struct,
)
from plugins_registry import service
from plugins_registry.api.entitlements import entitlement_read
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
    PluginAdoptionRead,
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
        new = service.NewPublisher(name=data.name, email=data.email, partner_id=data.partner_id)
        return to_struct(PublisherRead, await service.create_publisher(new))

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def list_publishers(self, limit: Limit = None, cursor: Cursor = None) -> PublisherPage:
        return to_struct(PublisherPage, await service.list_publishers(PageRequest.parse(limit, cursor)))

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
        new = service.NewPlugin(
            slug=data.slug,
            name=data.name,
            publisher_id=data.publisher_id,
            pricing=msgspec.to_builtins(data.pricing),
            description=data.description,
            entitlements=None if data.entitlements is None else msgspec.to_builtins(data.entitlements),
        )
        view, created = await service.create_plugin(new)
        return answer_created(to_struct(PluginRead, view), created)

    @get("/", responses=problem_responses(400, 401, 422))
    async def list_plugins(self, limit: Limit = None, cursor: Cursor = None) -> PluginPage:
        return to_struct(PluginPage, await service.list_plugins(PageRequest.parse(limit, cursor)))

    @get("/{slug:str}", responses=problem_responses(400, 401, 404))
    async def get_plugin(self, slug: Slug) -> PluginRead:
        return to_struct(PluginRead, await service.get_plugin(slug))

    @idempotent_post(
        "/{slug:str}/versions", guards=[staff_only], status_code=201, responses=created_or_stored(VersionRead)
    )
    async def publish_version(self, slug: Slug, data: JSONBody[VersionCreate]) -> Response[VersionRead]:
        new = service.NewVersion(
            version=data.version,
            min_platform_version=data.min_platform_version,
            artifact_sha256=data.artifact_sha256,
            changelog=data.changelog,
        )
        view, created = await service.publish_version(slug, new)
        return answer_created(to_struct(VersionRead, view), created)

    @get("/{slug:str}/versions", responses=problem_responses(400, 401, 404))
    async def list_versions(self, slug: Slug) -> VersionList:
        return VersionList(items=[to_struct(VersionRead, view) for view in await service.list_versions(slug)])

    @idempotent_post(
        "/{slug:str}/versions/{version:str}/yank",
        guards=[staff_only],
        status_code=200,
        responses=problem_responses(401, 403, 404, 413, 422, *IDEMPOTENCY_ERRORS),
    )
    async def yank_version(
        self, slug: Slug, version: Annotated[str, PathParameter(max_length=256)], data: JSONBody[VersionYank]
    ) -> VersionRead:
        return to_struct(VersionRead, await service.yank_version(slug, version, data.reason))


class TenantPluginController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/plugins"
    tags = ["plugins"]
    security = BEARER

    @idempotent_post("/", status_code=201, **_created_or_installed())
    async def install_plugin(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, data: JSONBody[InstallCreate]
    ) -> Response[InstallRead]:
        view, created = await service.install(
            principal_of(request), _licensing(request), tenant_id, data.slug, data.version, data.seats
        )
        return answer_created(to_struct(InstallRead, view), created)

    @get("/", **allow(Permission.READ_PLUGINS, 422))
    async def list_installs(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, limit: Limit = None, cursor: Cursor = None
    ) -> InstallPage:
        page = await service.list_installs(_licensing(request), tenant_id, PageRequest.parse(limit, cursor))
        return to_struct(InstallPage, page)

    @patch("/{slug:str}", **allow(Permission.MANAGE_PLUGINS, 409, 413, 422))
    async def update_install(
        self, request: Request[Any, Any, Any], tenant_id: TenantId, slug: Slug, data: JSONBody[InstallUpdate]
    ) -> InstallRead:
        version = None if data.version is msgspec.UNSET else data.version
        seats = None if data.seats is msgspec.UNSET else data.seats
        view = await service.update(principal_of(request), _licensing(request), tenant_id, slug, version, seats)
        return to_struct(InstallRead, view)

    @idempotent_post(
        "/{slug:str}/rollback", status_code=200, **allow(Permission.MANAGE_PLUGINS, 409, *IDEMPOTENCY_ERRORS)
    )
    async def rollback_install(self, request: Request[Any, Any, Any], tenant_id: TenantId, slug: Slug) -> InstallRead:
        view = await service.rollback(principal_of(request), _licensing(request), tenant_id, slug)
        return to_struct(InstallRead, view)

    @delete("/{slug:str}", status_code=204, **allow(Permission.MANAGE_PLUGINS))
    async def uninstall(self, request: Request[Any, Any, Any], tenant_id: TenantId, slug: Slug) -> None:
        await service.uninstall(principal_of(request), tenant_id, slug)


class TenantLicenseController(Controller):
    path = "/v1/tenants/{tenant_id:uuid}/licenses"
    tags = ["licenses"]
    security = BEARER

    @get("/", **allow(Permission.READ_PLUGINS, 422))
    async def list_licenses(
        self,
        request: Request[Any, Any, Any],
        tenant_id: TenantId,
        limit: Limit = None,
        cursor: Cursor = None,
        plugin: Annotated[
            str | None,
            QueryParameter(
                min_length=2, max_length=63, pattern=SLUG_PATTERN, description="Only the licenses of this plugin"
            ),
        ] = None,
    ) -> LicensePage:
        page = await service.list_licenses(_licensing(request), tenant_id, PageRequest.parse(limit, cursor), plugin)
        return to_struct(LicensePage, page)


class LicenseController(Controller):
    """Licenses by id: the service finds the owning tenant and authorizes there."""

    path = "/v1/licenses/{license_id:uuid}"
    tags = ["licenses"]
    security = BEARER

    @get("/", responses=problem_responses(400, 401, 403, 404))
    async def get_license(self, request: Request[Any, Any, Any], license_id: LicenseId) -> LicenseRead:
        view = await service.get_license(principal_of(request), _licensing(request), license_id)
        return to_struct(LicenseRead, view)

    @idempotent_post("/refresh", status_code=200, responses=ById)
    async def refresh_license(self, request: Request[Any, Any, Any], license_id: LicenseId) -> LicenseRead:
        view = await service.refresh(principal_of(request), _licensing(request), license_id)
        return to_struct(LicenseRead, view)

    @idempotent_post(
        "/activations", status_code=201, responses={**created_or_stored(ActivationRead), **problem_responses(409, 429)}
    )
    async def activate(
        self, request: Request[Any, Any, Any], license_id: LicenseId, data: JSONBody[ActivationCreate]
    ) -> Response[ActivationRead]:
        per_hour = request.app.state.settings.license_activations_per_hour
        view, created = await service.activate(
            principal_of(request), license_id, data.fingerprint, data.label, per_hour=per_hour
        )
        return answer_created(to_struct(ActivationRead, view), created)

    @get("/activations", responses=problem_responses(400, 401, 403, 404))
    async def list_activations(self, request: Request[Any, Any, Any], license_id: LicenseId) -> ActivationList:
        views = await service.list_activations(principal_of(request), license_id)
        return ActivationList(items=[to_struct(ActivationRead, view) for view in views])

    @delete("/activations/{activation_id:uuid}", status_code=204, responses=problem_responses(400, 401, 403, 404))
    async def deactivate(
        self, request: Request[Any, Any, Any], license_id: LicenseId, activation_id: ActivationId
    ) -> None:
        await service.deactivate(principal_of(request), license_id, activation_id)

    @idempotent_post("/activations/{activation_id:uuid}/heartbeat", status_code=200, responses=ById)
    async def heartbeat(
        self, request: Request[Any, Any, Any], license_id: LicenseId, activation_id: ActivationId
    ) -> ActivationRead:
        view = await service.heartbeat(principal_of(request), license_id, activation_id)
        return to_struct(ActivationRead, view)


class LicensingController(Controller):
    """Public: what a plugin needs to verify a license offline, and the revocations it may check online."""

    path = "/v1/licensing"
    tags = ["licenses"]

    @get("/keys", exclude_from_auth=True, responses=problem_responses(503))
    async def keys(self, request: Request[Any, Any, Any]) -> Jwks:
        return to_struct(Jwks, await service.public_keys(_licensing(request)))

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
        page = await service.revocations(query_date(after), decode_cursor(cursor) if cursor else None, limit)
        return RevocationList(
            items=[to_struct(RevokedLicense, view) for view in page.items],
            next_after=page.items[-1].revoked_at if page.next_cursor else None,
            next_cursor=page.next_cursor,
        )


class EntitlementController(Controller):
    path = "/v1/entitlements"
    tags = ["licenses"]
    security = BEARER

    @get("/check", responses=problem_responses(400, 401, 403), opt={"rate_limit": "entitlements"})
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
        return entitlement_read(await service.check(principal_of(request), plugin, feature))


class PluginAnalyticsController(Controller):
    """Staff's figures of plugin adoption, per calendar month (UTC)."""

    path = "/v1/analytics/plugins"
    tags = ["analytics"]
    security = BEARER
    guards = [staff_only]

    @get("/", responses=problem_responses(400, 401, 403, 422))
    async def plugin_adoption(
        self,
        request: Request[Any, Any, Any],
        month: Annotated[
            str | None,
            QueryParameter(
                pattern=MONTH_PATTERN,
                max_length=7,
                description="The month, YYYY-MM (UTC); by default the current one, which ends now. A month that "
                "has not begun is refused (`month_in_future`)",
            ),
        ] = None,
    ) -> PluginAdoptionRead:
        return to_struct(PluginAdoptionRead, await service.plugin_adoption(principal_of(request), month))


__all__ = [
    "EntitlementController",
    "LicenseController",
    "LicensingController",
    "PluginAnalyticsController",
    "PluginController",
    "PublisherController",
    "TenantLicenseController",
    "TenantPluginController",
]
