"""Per-tenant installs: install (with its license), update, roll back, uninstall. Under the tenant's RLS."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from billing import service as billing
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of
from controlplane.core.views import Page
from plugins_registry import licensing, repository
from plugins_registry.errors import (
    AlreadyInstalled,
    InstallNotFound,
    NoInstallableVersion,
    NothingToRollBack,
    PluginNotFound,
    SeatsInUse,
    SubscriptionRequired,
    VersionNotFound,
    VersionYanked,
)
from plugins_registry.pricing import Entitlements, Pricing, parse_entitlements, parse_pricing, seats_for_install
from plugins_registry.semver import Version, caret_range_of, latest
from plugins_registry.service._events import record
from plugins_registry.service._history import record_step, trial_end
from plugins_registry.service._signing import Licensing, fresh, resign, token_for
from plugins_registry.service._views import InstallView, install_view
from tenants.roles import Permission
from tenants.service import check_access


async def _plugin(slug: str) -> tuple[dict[str, Any], Pricing, Entitlements]:
    plugin = await repository.get_plugin(slug)
    if plugin is None:
        raise PluginNotFound()
    return plugin, parse_pricing(plugin["pricing"]), parse_entitlements(plugin["entitlements"])


async def require_plugin(plugin_id: uuid.UUID) -> None:
    """Billing's check of a plugin id for a trial grant, inside billing's transaction."""
    if not await repository.plugin_exists(plugin_id):
        raise PluginNotFound()


async def _installable(plugin: dict[str, Any], version: str | None) -> str:
    """The version to install: the one asked for if it is not yanked, else the latest stable one."""
    if version is not None:
        wanted = str(Version.parse(version))
        row = await repository.get_version(plugin["id"], wanted)
        if row is None:
            raise VersionNotFound()
        if row["yanked_at"] is not None:
            raise VersionYanked(f"{plugin['slug']} {wanted} was yanked: {row['yank_reason']}")
        return wanted
    candidates = [
        Version.parse(row["version"]) for row in await repository.list_versions(plugin["id"]) if not row["yanked_at"]
    ]
    best = latest(candidates)
    if best is None:
        raise NoInstallableVersion()
    return str(best)


async def _view(install: dict[str, Any], license_row: dict[str, Any]) -> InstallView:
    version = await repository.get_version(install["plugin_id"], install["version"])
    return install_view(install, license_row, yanked=version is not None and version["yanked_at"] is not None)


async def install(
    actor: Principal,
    issuer: Licensing,
    tenant_id: uuid.UUID,
    slug: str,
    version: str | None = None,
    seats: int | None = None,
) -> tuple[InstallView, bool]:
    """(install with its license, created). Installing what is installed already, as it is, answers with it."""
    now = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_PLUGINS, method="POST")
        plugin, pricing, entitlements = await _plugin(slug)
        target = await _installable(plugin, version)
        seat_count = seats_for_install(pricing, entitlements, seats)
        existing = await repository.live_install(tenant_id, slug, lock=True)
        if existing is not None:
            # A repeat (even after a newer version appeared, if none was named) answers with the install.
            if (version is None or existing["version"] == target) and seats in (None, existing["seats"]):
                license_row = await repository.license_of_install(existing["id"], lock=True)
                assert license_row is not None
                return await _view(existing, await fresh(issuer.signer, license_row)), False
            raise AlreadyInstalled(f"{slug} {existing['version']} is installed; update it instead")
        period_end = None
        if pricing.is_paid:
            subscription = await billing.live_subscription(tenant_id)
            if subscription is None:
                raise SubscriptionRequired()
            period_end = subscription.current_period_end
        install_id = uuid.uuid4()
        # A plugin's trial is given once per tenant (a reinstall starts paid), unless staff granted another.
        trial = bool(pricing.trial_days) and await billing.claim_trial(
            tenant_id, "plugin", str(plugin["id"]), install_id
        )
        terms = licensing.terms_at_install(pricing, now, period_end, issuer.renewal_grace, trial=trial)
        row = await repository.insert_install(
            {
                "id": install_id,
                "tenant_id": tenant_id,
                "plugin_id": plugin["id"],
                "slug": slug,
                "version": target,
                "seats": seat_count,
                "installed_at": now,
            }
        )
        if row is None:  # a concurrent install of the same plugin won
            raise AlreadyInstalled(f"{slug} is being installed")
        await record_step(row, "installed", now)
        if terms.trial:
            await record_step(row, "trial_started", now)
        if pricing.currency is not None:  # a paid plugin
            await billing.attach_addon(
                tenant_id=tenant_id,
                source_id=row["id"],
                name=plugin["name"],
                charge=pricing.billing_charge(plugin["name"]),
                currency=pricing.currency,
                quantity=seat_count if pricing.model == "per_seat" else 1,
                billable_from=terms.trial_ends_at or now,
            )
        license_row = await _issue(issuer, row, entitlements, terms, target)
        await record(
            actor,
            tenant_id,
            "plugin.installed",
            "plugin_install",
            row["id"],
            {"slug": slug, "version": target, "seats": seat_count},
        )
        await record(
            actor,
            tenant_id,
            "license.issued",
            "license",
            license_row["id"],
            {"slug": slug, "license_id": str(license_row["id"]), "trial": terms.trial, "expires_at": terms.expires_at},
        )
        return await _view(row, license_row), True


async def _issue(
    issuer: Licensing, install_row: dict[str, Any], entitlements: Entitlements, terms: licensing.Terms, version: str
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "tenant_id": install_row["tenant_id"],
        "install_id": install_row["id"],
        "plugin_id": install_row["plugin_id"],
        "slug": install_row["slug"],
        "trial": terms.trial,
        "trial_ends_at": terms.trial_ends_at,
        "expires_at": terms.expires_at,
        "seats": install_row["seats"],
        "version_range": str(caret_range_of(Version.parse(version))),
        "entitlements": entitlements.as_json(),
        "renewal_grace_seconds": int(issuer.renewal_grace.total_seconds()),
    }
    token, key_version, issued_at = await token_for(issuer.signer, values)
    return await repository.insert_license(
        {**values, "token": token, "key_version": key_version, "issued_at": issued_at}
    )


async def list_installs(issuer: Licensing, tenant_id: uuid.UUID, page: PageRequest) -> Page[InstallView]:
    async with tenant_tx(tenant_id):
        rows, cursor = page_of(await repository.list_installs(tenant_id, page), page)
        views = []
        for row in rows:
            license_row = await repository.license_of_install(row["id"], lock=True)
            assert license_row is not None
            views.append(await _view(row, await fresh(issuer.signer, license_row)))
        return Page(views, cursor)


async def get_install(issuer: Licensing, tenant_id: uuid.UUID, plugin: str) -> InstallView | None:
    """The tenant's live install of one plugin (a slug) with its license, or None when it is not installed.
    The caller has checked READ_PLUGINS in the tenant, as for `list_installs`."""
    async with tenant_tx(tenant_id):
        row = await repository.live_install(tenant_id, plugin)
        if row is None:
            return None
        license_row = await repository.license_of_install(row["id"], lock=True)
        assert license_row is not None
        return await _view(row, await fresh(issuer.signer, license_row))


async def _live(tenant_id: uuid.UUID, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    row = await repository.live_install(tenant_id, slug, lock=True)
    if row is None:
        raise InstallNotFound()
    license_row = await repository.license_of_install(row["id"], lock=True)
    assert license_row is not None
    return row, license_row


async def _move(
    actor: Principal,
    issuer: Licensing,
    tenant_id: uuid.UUID,
    install_row: dict[str, Any],
    license_row: dict[str, Any],
    changes: dict[str, Any],
    event_type: str,
) -> InstallView:
    """Write an install's new version or seats, re-sign its license for them, and record the step."""
    row = await repository.update_install(install_row["id"], changes)
    license_changes = {"seats": row["seats"], "version_range": str(caret_range_of(Version.parse(row["version"])))}
    license_row = await repository.update_license(license_row["id"], license_changes)
    if license_row["status"] == "active":
        license_row = await resign(issuer.signer, license_row)
    await record(
        actor,
        tenant_id,
        event_type,
        "plugin_install",
        row["id"],
        {"slug": row["slug"], "from_version": install_row["version"], "version": row["version"], "seats": row["seats"]},
    )
    return await _view(row, license_row)


async def update(
    actor: Principal, issuer: Licensing, tenant_id: uuid.UUID, slug: str, version: str | None, seats: int | None
) -> InstallView:
    """A new version (not yanked) and/or a new number of seats; the same values again change nothing."""
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_PLUGINS, method="PATCH")
        plugin, pricing, entitlements = await _plugin(slug)
        install_row, license_row = await _live(tenant_id, slug)
        changes: dict[str, Any] = {}
        if version is not None and str(Version.parse(version)) != install_row["version"]:
            changes["version"] = await _installable(plugin, version)
            changes["previous_version"] = install_row["version"]
        if seats is not None and seats != install_row["seats"]:
            changes["seats"] = seats_for_install(pricing, entitlements, seats)
            if await repository.count_live_activations(tenant_id, license_row["id"]) > seats:
                raise SeatsInUse()
            if pricing.model == "per_seat":
                await billing.set_addon_quantity(tenant_id, install_row["id"], seats)
        if not changes:
            return await _view(install_row, await fresh(issuer.signer, license_row))
        return await _move(actor, issuer, tenant_id, install_row, license_row, changes, "plugin.updated")


async def rollback(actor: Principal, issuer: Licensing, tenant_id: uuid.UUID, slug: str) -> InstallView:
    """Back to the version installed before the last update (which then becomes the previous one)."""
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_PLUGINS, method="POST")
        plugin, _, _ = await _plugin(slug)
        install_row, license_row = await _live(tenant_id, slug)
        previous = install_row["previous_version"]
        if previous is None:
            raise NothingToRollBack()
        target = await repository.get_version(plugin["id"], previous)
        if target is None or target["yanked_at"] is not None:
            raise VersionYanked(f"{slug} {previous} was yanked; roll forward to another version instead")
        changes = {"version": previous, "previous_version": install_row["version"]}
        return await _move(actor, issuer, tenant_id, install_row, license_row, changes, "plugin.rolled_back")


async def uninstall(actor: Principal, tenant_id: uuid.UUID, slug: str) -> None:
    """Revokes the license, frees its seats and stops its charge. Uninstalling again changes nothing."""
    now = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_PLUGINS, method="DELETE")
        _, pricing, _ = await _plugin(slug)
        try:
            row, license_row = await _live(tenant_id, slug)
        except InstallNotFound:
            return
        await repository.update_install(row["id"], {"status": "uninstalled", "uninstalled_at": now})
        if license_row["status"] == "active":
            await repository.update_license(
                license_row["id"], {"status": "revoked", "revoked_at": now, "revoke_reason": "uninstalled"}
            )
            if license_row["trial"]:  # cut short; a trial that converted or expired has its step already
                await record_step(license_row, "trial_ended", trial_end(license_row, now))
        await record_step(row, "uninstalled", now)
        await repository.release_license_activations(license_row["id"], "uninstalled", now)
        if pricing.is_paid:
            await billing.end_addon(tenant_id, row["id"], now)
        await record(
            actor,
            tenant_id,
            "plugin.uninstalled",
            "plugin_install",
            row["id"],
            {"slug": slug, "version": row["version"]},
        )
        await record(
            actor,
            tenant_id,
            "license.revoked",
            "license",
            license_row["id"],
            {"slug": slug, "license_id": str(license_row["id"]), "reason": "uninstalled"},
        )
