"""The catalogue: publishers, plugins and their versions (platform-wide; staff add, every user reads)."""

from __future__ import annotations

import re
import uuid
from typing import Any

from billing.service import known_metrics
from controlplane.core.db import SystemReason, anonymous_tx, system_tx
from controlplane.core.pagination import PageRequest, page_of
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
from tenants.service import ensure_partner_kind, ensure_qualified

# Rows of a page and the cursor of the next one, as `page_of` hands them back (tenants.service no longer
# lends its alias: services return `controlplane.core.views.Page` of views).
Page = tuple[list[dict[str, Any]], str | None]

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")


async def create_publisher(values: dict[str, Any]) -> dict[str, Any]:
    if values.get("partner_id") is not None:
        await ensure_partner_kind(values["partner_id"], "publisher")
    async with anonymous_tx():
        return await repository.insert_publisher({**values, "id": uuid.uuid4(), "status": "active"})


async def get_publisher(publisher_id: uuid.UUID) -> dict[str, Any]:
    async with anonymous_tx():
        row = await repository.get_publisher(publisher_id)
    if row is None:
        raise PublisherNotFound()
    return row


async def list_publishers(page: PageRequest) -> Page:
    async with anonymous_tx():
        return page_of(await repository.list_publishers(page), page)


def _plugin_definition(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["name"], row["publisher_id"], row["description"], row["pricing"], row["entitlements"])


async def create_plugin(values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """(plugin, created). The same definition again answers with the stored one, so a retry is safe."""
    if not _SLUG.match(values["slug"]):
        raise InvalidPricing("slug must be 2 to 63 lower-case letters, digits and hyphens")
    pricing = parse_pricing(values["pricing"])
    entitlements = parse_entitlements(values.get("entitlements"))
    if pricing.metric_code is not None and not await known_metrics([pricing.metric_code]):
        raise InvalidPricing(f"no billable metric has the code {pricing.metric_code!r}; create it first")
    row = {
        **values,
        "id": uuid.uuid4(),
        "publisher_id": uuid.UUID(str(values["publisher_id"])),
        "description": values.get("description") or "",
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
            return stored, True
        existing = await repository.get_plugin(values["slug"])
    assert existing is not None
    if _plugin_definition(existing) != _plugin_definition(row):
        raise SlugTaken()
    return existing, False


async def get_plugin(slug: str) -> dict[str, Any]:
    async with anonymous_tx():
        row = await repository.get_plugin(slug)
    if row is None:
        raise PluginNotFound()
    return row


async def list_plugins(page: PageRequest) -> Page:
    async with anonymous_tx():
        return page_of(await repository.list_listed_plugins(page), page)


def ordered(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest first, by semantic version precedence (pre-releases below their release)."""
    return sorted(versions, key=lambda row: Version.parse(row["version"]), reverse=True)


async def publish_version(slug: str, values: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A new immutable version. A publisher that is a partner must be qualified (else 403 with its actions)."""
    version = Version.parse(values["version"])
    Version.parse(values["min_platform_version"])
    row = {**values, "id": uuid.uuid4(), "version": str(version), "changelog": values.get("changelog") or ""}
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
            return stored, True
        existing = await repository.get_version(plugin["id"], str(version))
    assert existing is not None
    fields = ("min_platform_version", "changelog", "artifact_sha256")
    if any(existing[name] != row[name] for name in fields):
        raise VersionExists("versions are immutable: publish a new version instead")
    return existing, False


async def list_versions(slug: str) -> list[dict[str, Any]]:
    async with anonymous_tx():
        plugin = await repository.get_plugin(slug)
        if plugin is None:
            raise PluginNotFound()
        return ordered(await repository.list_versions(plugin["id"]))


async def yank_version(slug: str, version_text: str, reason: str) -> dict[str, Any]:
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
            return row
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
        return row
