"""A tenant's plugins: the catalogue, what is installed with its licenses, seats and activations; install a
plugin, start its trial, uninstall it.

The pages call the plugin registry's services as its API does (`plugins_registry/api/controllers.py`): reading
needs READ_PLUGINS, installing, the trial and uninstalling MANAGE_PLUGINS, each checked first with
`tenants.authorize`. A trial is what the registry's install gives when the plugin has one and the tenant has
not used it: the trial POST installs only then, so it never starts a paid install by surprise. Each POST
looks at the install first and, when it is done already, goes back to the plugin's page (303).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter
from litestar.response import Redirect

from billing.money import exponent
from controlplane.console.pages import may, signed_in, tenant_in_view
from controlplane.console.params import Cursor, Form, TenantPath
from controlplane.console.rendering import page
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import Conflict, InvalidInput
from controlplane.core.pagination import MAX_PAGE_SIZE, PageRequest
from controlplane.core.problems import status_for
from controlplane.core.views import Page
from plugins_registry import service as plugins
from plugins_registry.pricing import MAX_SEATS
from tenants import service as tenants
from tenants.roles import Permission

T = TypeVar("T")
SlugPath = Annotated[str, PathParameter(description="The plugin's slug", max_length=63)]
# A tenant's installs are read whole for the catalogue page, page after page, up to this many pages.
_MAX_PAGES = 20
# A plugin's page lists the tenant's newest licenses of it, this many at most (one more is read to tell).
_LICENSES_SHOWN = 50
_VERSION_LENGTH = 256  # as the API's VersionText
_SEATS_DIGITS = len(str(MAX_SEATS))


@dataclass
class InstallForm:
    csrf_token: str
    version: str = ""  # empty: the latest stable version, as the API's default
    seats: str = ""  # empty: the plugin's default number of seats


@dataclass
class ActionForm:
    csrf_token: str


def _licensing(request: Request[Any, Any, Any]) -> plugins.Licensing:
    issuer: plugins.Licensing = request.app.state.licensing
    return issuer


async def _every(fetch: Callable[[PageRequest], Awaitable[Page[T]]]) -> list[T]:
    items: list[T] = []
    cursor: str | None = None
    for _ in range(_MAX_PAGES):
        found = await fetch(PageRequest.parse(MAX_PAGE_SIZE, cursor))
        items.extend(found.items)
        cursor = found.next_cursor
        if cursor is None:
            break
    return items


async def _installs(request: Request[Any, Any, Any], tenant_id: uuid.UUID) -> list[plugins.InstallView]:
    issuer = _licensing(request)
    return await _every(lambda page_request: plugins.list_installs(issuer, tenant_id, page_request))


async def _installed(request: Request[Any, Any, Any], tenant_id: uuid.UUID, slug: str) -> plugins.InstallView | None:
    return await plugins.get_install(_licensing(request), tenant_id, slug)


async def _licenses_of(
    request: Request[Any, Any, Any], tenant_id: uuid.UUID, slug: str, limit: int
) -> list[plugins.LicenseView]:
    """The tenant's newest licenses of the plugin, newest first (revoked and expired ones too)."""
    return await plugins.latest_licenses(_licensing(request), tenant_id, slug, limit)


def price_of(pricing: plugins.PricingView) -> str:
    """The registry's price in words: its minor units shown in the currency's own precision, exactly."""
    if pricing.model == "free" or pricing.currency is None:
        return "Free"
    places = exponent(pricing.currency)
    major = Decimal(pricing.amount_minor).scaleb(-places)
    # A metered unit price may have places beyond the currency's: they are shown, not rounded away.
    places_given = major.normalize().as_tuple().exponent
    shown = max(places, -places_given) if isinstance(places_given, int) else places
    amount = f"{major:,.{shown}f} {pricing.currency}"
    if pricing.model == "flat":
        return f"{amount} per billing period"
    if pricing.model == "per_seat":
        return f"{amount} per seat and billing period"
    return f"{amount} per unit of {pricing.metric_code}"


def trial_of(pricing: plugins.PricingView) -> str:
    return f"{pricing.trial_days}-day free trial" if pricing.trial_days else "No trial"


def _seat_limit(plugin: plugins.PluginView) -> int:
    return MAX_SEATS if plugin.pricing.model == "per_seat" else plugin.entitlements.seats


def _default_seats(plugin: plugins.PluginView) -> int:
    return 1 if plugin.pricing.model == "per_seat" else plugin.entitlements.seats


class PluginPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/tenants/{tenant_id:uuid}/plugins")
    async def catalogue(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, cursor: Cursor = None
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_PLUGINS)
        catalogue = await plugins.list_plugins(PageRequest.parse(None, cursor))
        installs = await _installs(request, tenant_id)
        held = await plugins.seats_in_use(tenant_id)  # one read, not one per install
        seats_used = {each.plugin: held.get(each.license.id, 0) for each in installs if each.license.status == "active"}
        return page(
            request,
            "plugins.html",
            tenant=tenant,
            catalogue=catalogue.items,
            next_cursor=catalogue.next_cursor,
            installs=installs,
            installed={each.plugin: each for each in installs},
            seats_used=seats_used,
            price_of=price_of,
            trial_of=trial_of,
        )

    @get("/tenants/{tenant_id:uuid}/plugins/{slug:str}")
    async def plugin_page(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, slug: SlugPath
    ) -> Response[str]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.READ_PLUGINS, method="GET")
        return await _plugin_page(request, principal, tenant_id, slug)

    @post("/tenants/{tenant_id:uuid}/plugins/{slug:str}/install", status_code=303)
    async def install(
        self,
        request: Request[Any, Any, Any],
        tenant_id: TenantPath,
        slug: SlugPath,
        data: Annotated[InstallForm, Form],
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_PLUGINS, method="POST")
        plugin = await plugins.get_plugin(slug)
        if await _installed(request, tenant_id, slug) is not None:  # a repeat: the install stands as it is
            return _to_plugin(tenant_id, slug)
        form = {"version": data.version[:_VERSION_LENGTH], "seats": data.seats[: _SEATS_DIGITS + 1]}
        installable = {each.version for each in await plugins.list_versions(slug) if not each.yanked}
        version = data.version.strip() or None
        seats_text = data.seats.strip()
        error = None
        if version is not None and version not in installable:
            error = "Choose one of the versions offered."
        elif seats_text and not (
            len(seats_text) <= _SEATS_DIGITS and seats_text.isdecimal() and 1 <= int(seats_text) <= _seat_limit(plugin)
        ):
            error = f"Seats must be a whole number from 1 to {_seat_limit(plugin):,}."
        if error is not None:
            return await _plugin_page(request, principal, tenant_id, slug, status=400, error=error, form=form)
        try:
            await plugins.install(
                principal, _licensing(request), tenant_id, slug, version, int(seats_text) if seats_text else None
            )
        except (InvalidInput, Conflict) as refused:  # e.g. yanked meanwhile, or a paid plugin without a subscription
            return await _plugin_page(
                request, principal, tenant_id, slug, status=status_for(refused), error=refused.detail, form=form
            )
        return _to_plugin(tenant_id, slug)

    @post("/tenants/{tenant_id:uuid}/plugins/{slug:str}/trial", status_code=303)
    async def start_trial(
        self,
        request: Request[Any, Any, Any],
        tenant_id: TenantPath,
        slug: SlugPath,
        data: Annotated[ActionForm, Form],
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_PLUGINS, method="POST")
        plugin = await plugins.get_plugin(slug)
        if await _installed(request, tenant_id, slug) is not None:  # a repeat: the trial already runs (or ran)
            return _to_plugin(tenant_id, slug)
        if not plugin.pricing.trial_days:
            return await _plugin_page(
                request, principal, tenant_id, slug, status=409, error="This plugin has no trial."
            )
        if await _licenses_of(request, tenant_id, slug, limit=1):  # its trial was given with its first install
            error = "This tenant used the plugin's trial already: install it to go on."
            return await _plugin_page(request, principal, tenant_id, slug, status=409, error=error)
        try:
            await plugins.install(principal, _licensing(request), tenant_id, slug)
        except (InvalidInput, Conflict) as refused:  # e.g. a paid plugin without a subscription to bill it
            return await _plugin_page(
                request, principal, tenant_id, slug, status=status_for(refused), error=refused.detail
            )
        return _to_plugin(tenant_id, slug)

    @post("/tenants/{tenant_id:uuid}/plugins/{slug:str}/uninstall", status_code=303)
    async def uninstall(
        self,
        request: Request[Any, Any, Any],
        tenant_id: TenantPath,
        slug: SlugPath,
        data: Annotated[ActionForm, Form],
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_PLUGINS, method="POST")
        await plugins.get_plugin(slug)
        if await _installed(request, tenant_id, slug) is not None:  # else uninstalled already: nothing to do
            await plugins.uninstall(principal, tenant_id, slug)
        return _to_plugin(tenant_id, slug)


def _to_plugin(tenant_id: uuid.UUID, slug: str) -> Response[Any]:
    return Redirect(f"/console/tenants/{tenant_id}/plugins/{slug}", status_code=303)


async def _plugin_page(
    request: Request[Any, Any, Any],
    principal: Principal,
    tenant_id: uuid.UUID,
    slug: str,
    *,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response[str]:
    """The plugin's page after READ_PLUGINS was checked: its terms and versions, and the tenant's install,
    licenses and the live license's activations."""
    tenant = await tenants.get_tenant(tenant_id)
    plugin = await plugins.get_plugin(slug)
    versions = await plugins.list_versions(slug)
    installed = await _installed(request, tenant_id, slug)
    licenses = await _licenses_of(request, tenant_id, slug, _LICENSES_SHOWN + 1)
    activations = []
    if installed is not None and installed.license.status == "active":
        activations = await plugins.list_activations(principal, installed.license.id)
    return page(
        request,
        "plugin.html",
        status=status,
        tenant=tenant,
        plugin=plugin,
        versions=versions,
        installable=[each for each in versions if not each.yanked],
        installed=installed,
        licenses=licenses[:_LICENSES_SHOWN],
        licenses_cut=len(licenses) > _LICENSES_SHOWN,
        activations=activations,
        may_manage=await may(principal, tenant_id, Permission.MANAGE_PLUGINS),
        trial_available=bool(plugin.pricing.trial_days) and installed is None and not licenses,
        seat_limit=_seat_limit(plugin),
        default_seats=_default_seats(plugin),
        error=error,
        form=form or {"version": "", "seats": ""},
        price=price_of(plugin.pricing),
        trial=trial_of(plugin.pricing),
    )
