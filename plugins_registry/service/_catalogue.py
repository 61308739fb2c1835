"""The catalogue: publishers, plugins and their versions (platform-wide; staff add, every user reads)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from billing.service import known_metrics
from controlplane.core.db import SystemReason, anonymous_tx, system_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from plugins_registry import repository
from plugins_registry.errors import (
    InvalidPricing,
    PluginNotFound,
    PublisherInactive,
    PublisherNotFound,
    SlugTaken,
    VersionExists,
    VersionNotFound,
)
from plugins_registry.pricing import parse_entitlements, parse_pricing
from plugins_registry.semver import Version
from plugins_registry.service._events import record
from plugins_registry.service._views import EntitlementsView, entitlements_view
from tenants.service import ensure_partner_kind, ensure_qualified

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


@dataclass(frozen=True, slots=True)
class NewPublisher:
    name: str
    email: str
    # A partner of kind publisher: then its versions may be published only while it is qualified.
    partner_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class PublisherView:
    id: uuid.UUID
    name: str
    email: str
    status: str
    partner_id: uuid.UUID | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewPlugin:
    """A plugin to list. `pricing` and `entitlements` are JSON as sent; the service checks them."""

    slug: str
    name: str
    publisher_id: uuid.UUID
    pricing: dict[str, Any]
    description: str = ""
    entitlements: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PricingView:
    model: str
    amount_minor: str  # minor units as a decimal string (a metered unit price may have places)
    currency: str | None
    metric_code: str | None
    trial_days: int


@dataclass(frozen=True, slots=True)
class PluginView:
    id: uuid.UUID
    slug: str
    name: str
    publisher_id: uuid.UUID
    description: str
    pricing: PricingView
    entitlements: EntitlementsView
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewVersion:
    version: str
    min_platform_version: str
    artifact_sha256: str
    changelog: str = ""


@dataclass(frozen=True, slots=True)
class PluginVersionView:
    id: uuid.UUID
    plugin_id: uuid.UUID
    version: str
    min_platform_version: str
    changelog: str
    artifact_sha256: str
    yanked: bool
    yanked_at: datetime | None
    yank_reason: str | None
    created_at: datetime


_publisher_view = partial(view_of, PublisherView)


def _plugin_view(row: dict[str, Any]) -> PluginView:
    pricing = row["pricing"]
    return view_of(
        PluginView,
        row,
        pricing=PricingView(
            model=pricing["model"],
            amount_minor=pricing["amount_minor"],
            currency=pricing["currency"],
            metric_code=pricing["metric_code"],
            trial_days=pricing["trial_days"],
        ),
        entitlements=entitlements_view(row["entitlements"], row["entitlements"]["seats"]),
    )


def _version_view(row: dict[str, Any]) -> PluginVersionView:
    return view_of(PluginVersionView, row, yanked=row["yanked_at"] is not None)


async def create_publisher(new: NewPublisher) -> PublisherView:
    if new.partner_id is not None:
        await ensure_partner_kind(new.partner_id, "publisher")
    values = {
        "id": uuid.uuid4(),
        "name": new.name,
        "email": new.email,
        "status": "active",
        "partner_id": new.partner_id,
    }
    async with anonymous_tx():
        return _publisher_view(await repository.insert_publisher(values))


async def get_publisher(publisher_id: uuid.UUID) -> PublisherView:
    async with anonymous_tx():
        row = await repository.get_publisher(publisher_id)
    if row is None:
        raise PublisherNotFound()
    return _publisher_view(row)


async def list_publishers(page: PageRequest) -> Page[PublisherView]:
    async with anonymous_tx():
        return page_of_views(await repository.list_publishers(page), page, _publisher_view)


def _plugin_definition(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["name"], row["publisher_id"], row["description"], row["pricing"], row["entitlements"])


async def create_plugin(new: NewPlugin) -> tuple[PluginView, bool]:
    """(plugin, created). The same definition again answers with the stored one, so a retry is safe."""
    if not _SLUG.match(new.slug):
        raise InvalidPricing("slug must be 2 to 63 lower-case letters, digits and hyphens")
    pricing = parse_pricing(new.pricing)
    entitlements = parse_entitlements(new.entitlements)
    if pricing.metric_code is not None and not await known_metrics([pricing.metric_code]):
        raise InvalidPricing(f"no billable metric has the code {pricing.metric_code!r}; create it first")
    row: dict[str, Any] = {
        "id": uuid.uuid4(),
        "slug": new.slug,
        "name": new.name,
        "publisher_id": new.publisher_id,
        "description": new.description or "",
        "pricing": pricing.as_json(),
        "entitlements": entitlements.as_json(),
    }
    async with anonymous_tx():
        publisher = await repository.get_publisher(row["publisher_id"])
        if publisher is None:
            raise PublisherNotFound()
        if publisher["status"] != "active":
            raise PublisherInactive()
        stored = await repository.insert_plugin(row)
        if stored is not None:
            return _plugin_view(stored), True
        existing = await repository.get_plugin(new.slug)
    assert existing is not None
    if _plugin_definition(existing) != _plugin_definition(row):
        raise SlugTaken()
    return _plugin_view(existing), False


async def get_plugin(slug: str) -> PluginView:
    async with anonymous_tx():
        row = await repository.get_plugin(slug)
    if row is None:
        raise PluginNotFound()
    return _plugin_view(row)


async def list_plugins(page: PageRequest) -> Page[PluginView]:
    async with anonymous_tx():
        return page_of_views(await repository.list_listed_plugins(page), page, _plugin_view)


def ordered(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first, by semantic version precedence (pre-releases below their release)."""
    return sorted(versions, key=lambda row: Version.parse(row["version"]), reverse=True)


async def publish_version(slug: str, new: NewVersion) -> tuple[PluginVersionView, bool]:
    """A new immutable version. A publisher that is a partner must be qualified (else 403 with its actions)."""
    version = Version.parse(new.version)
    Version.parse(new.min_platform_version)
    row = {
        "id": uuid.uuid4(),
        "version": str(version),
        "min_platform_version": new.min_platform_version,
        "artifact_sha256": new.artifact_sha256,
        "changelog": new.changelog or "",
    }
    async with anonymous_tx():
        plugin = await repository.get_plugin(slug)
        if plugin is None:
            raise PluginNotFound()
        publisher = await repository.get_publisher(plugin["publisher_id"])
    assert publisher is not None
    if publisher["partner_id"] is not None:
        await ensure_qualified(publisher["partner_id"], "publisher")
    async with anonymous_tx():
        stored = await repository.insert_version({**row, "plugin_id": plugin["id"]})
        if stored is not None:
            return _version_view(stored), True
        existing = await repository.get_version(plugin["id"], str(version))
    assert existing is not None
    fields = ("min_platform_version", "changelog", "artifact_sha256")
    if any(existing[name] != row[name] for name in fields):
        raise VersionExists("versions are immutable: publish a new version instead")
    return _version_view(existing), False


async def list_versions(slug: str) -> list[PluginVersionView]:
    async with anonymous_tx():
        plugin = await repository.get_plugin(slug)
        if plugin is None:
            raise PluginNotFound()
        return [_version_view(row) for row in ordered(await repository.list_versions(plugin["id"]))]


async def yank_version(slug: str, version_text: str, reason: str) -> PluginVersionView:
    """Yanked versions cannot be newly installed; every tenant that has it installed is told through its
    outbox. Yanking a yanked version again changes nothing."""
    version = str(Version.parse(version_text))
    async with system_tx(SystemReason.PLUGIN_YANK):
        plugin = await repository.get_plugin(slug)
        if plugin is None:
            raise PluginNotFound()
        row = await repository.get_version(plugin["id"], version, lock=True)
        if row is None:
            raise VersionNotFound()
        if row["yanked_at"] is not None:
            return _version_view(row)
        row = await repository.yank_version(row["id"], reason)
        for install in await repository.installs_at_version(plugin["id"], version):
            await record(
                None,
                install["tenant_id"],
                "plugin.version_yanked",
                "plugin_install",
                install["id"],
                {"slug": slug, "version": version, "reason": reason},
            )
        return _version_view(row)
