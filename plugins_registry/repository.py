"""Queries of the plugin registry; raw SQL in the caller's transaction. Knows nothing of HTTP.

Tenant tables are read under RLS, but the queries still name `tenant_id`, so they use its indexes.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

PUBLISHER_COLUMNS = "id, name, email, status, partner_id, created_at"
PLUGIN_COLUMNS = "id, slug, name, publisher_id, description, pricing, entitlements, created_at"
VERSION_COLUMNS = (
    "id, plugin_id, version, min_platform_version, changelog, artifact_sha256, yanked_at, yank_reason, created_at"
)
INSTALL_COLUMNS = (
    "id, tenant_id, plugin_id, slug, version, previous_version, seats, status, installed_at, updated_at, "
    "uninstalled_at, installed_at as created_at"
)
LICENSE_COLUMNS = (
    "id, tenant_id, install_id, plugin_id, slug, status, trial, trial_ends_at, expires_at, seats, version_range, "
    "entitlements, token, token_stale, key_version, renewal_grace_seconds, issued_at, revoked_at, revoke_reason, "
    "expired_at, created_at"
)
ACTIVATION_COLUMNS = (
    "id, tenant_id, license_id, fingerprint, label, last_heartbeat_at, created_at, released_at, release_reason"
)


def _decoded(row: dict[str, Any], *columns: str) -> dict[str, Any]:
    # asyncpg hands jsonb back as text.
    return {**row, **{c: json.loads(row[c]) for c in columns if isinstance(row.get(c), str)}}


def _first(rows: list[dict[str, Any]], *json_columns: str) -> dict[str, Any] | None:
    return _decoded(rows[0], *json_columns) if rows else None


def _set_clause(changes: dict[str, Any]) -> tuple[str, list[Any]]:
    columns = ", ".join(f"{name} = {{}}" for name in changes)
    return columns, list(changes.values())


# -- catalogue (global) -----------------------------------------------------------------------------------


async def insert_publisher(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into publishers (id, name, email, status, partner_id) values ({}, {}, {}, {}, {}) "
        f"returning {PUBLISHER_COLUMNS}",
        values["id"],
        values["name"],
        values["email"],
        values["status"],
        values.get("partner_id"),
    )
    return rows[0]


async def get_publisher(publisher_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(f"select {PUBLISHER_COLUMNS} from publishers where id = {{}}", publisher_id)
    return rows[0] if rows else None


async def list_publishers(page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {PUBLISHER_COLUMNS} from publishers where true{clause} order by created_at, id limit {{}}",
        *args,
        page.limit + 1,
    )


async def insert_plugin(values: dict[str, Any]) -> dict[str, Any] | None:
    """None when the slug is taken."""
    rows = await fetch(
        "insert into plugins (id, slug, name, publisher_id, description, pricing, entitlements) "
        f"values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}::jsonb, {{}}::jsonb) on conflict (slug) do nothing "
        f"returning {PLUGIN_COLUMNS}",
        values["id"],
        values["slug"],
        values["name"],
        values["publisher_id"],
        values["description"],
        json.dumps(values["pricing"]),
        json.dumps(values["entitlements"]),
    )
    return _first(rows, "pricing", "entitlements")


async def get_plugin(slug: str) -> dict[str, Any] | None:
    rows = await fetch(f"select {PLUGIN_COLUMNS} from plugins where slug = {{}}", slug)
    return _first(rows, "pricing", "entitlements")


async def plugin_exists(plugin_id: uuid.UUID) -> bool:
    return bool(await fetch("select 1 from plugins where id = {}", plugin_id))


async def list_listed_plugins(page: PageRequest) -> list[dict[str, Any]]:
    """The public catalogue: plugins of active publishers with at least one version that is not yanked."""
    clause, args = keyset_clause(page, "p.")
    rows = await fetch(
        f"select {', '.join('p.' + c for c in PLUGIN_COLUMNS.split(', '))} from plugins p "
        "join publishers pub on pub.id = p.publisher_id and pub.status = 'active' "
        "where exists (select 1 from plugin_versions v where v.plugin_id = p.id and v.yanked_at is null)"
        f"{clause} order by p.created_at, p.id limit {{}}",
        *args,
        page.limit + 1,
    )
    return [_decoded(row, "pricing", "entitlements") for row in rows]


async def insert_version(values: dict[str, Any]) -> dict[str, Any] | None:
    """None when this version exists already."""
    rows = await fetch(
        "insert into plugin_versions (id, plugin_id, version, min_platform_version, changelog, artifact_sha256) "
        "values ({}, {}, {}, {}, {}, {}) on conflict (plugin_id, version) do nothing "
        f"returning {VERSION_COLUMNS}",
        values["id"],
        values["plugin_id"],
        values["version"],
        values["min_platform_version"],
        values["changelog"],
        values["artifact_sha256"],
    )
    return rows[0] if rows else None


async def get_version(plugin_id: uuid.UUID, version: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {VERSION_COLUMNS} from plugin_versions where plugin_id = {{}} and version = {{}}"
        + (" for update" if lock else ""),
        plugin_id,
        version,
    )
    return rows[0] if rows else None


async def list_versions(plugin_id: uuid.UUID) -> list[dict[str, Any]]:
    # Few per plugin; ordered by semantic version in Python, which SQL cannot do for pre-releases.
    return await fetch(f"select {VERSION_COLUMNS} from plugin_versions where plugin_id = {{}}", plugin_id)


async def yank_version(version_id: uuid.UUID, reason: str) -> dict[str, Any]:
    rows = await fetch(
        f"update plugin_versions set yanked_at = now(), yank_reason = {{}} where id = {{}} returning {VERSION_COLUMNS}",
        reason,
        version_id,
    )
    return rows[0]


# -- installs ---------------------------------------------------------------------------------------------


async def insert_install(values: dict[str, Any]) -> dict[str, Any] | None:
    """None when the plugin is installed already (one live install per tenant and plugin). `installed_at` is
    the time its history records."""
    rows = await fetch(
        "insert into plugin_installs (id, tenant_id, plugin_id, slug, version, seats, status, installed_at) "
        "values ({}, {}, {}, {}, {}, {}, 'installed', {}) on conflict do nothing "
        f"returning {INSTALL_COLUMNS}",
        values["id"],
        values["tenant_id"],
        values["plugin_id"],
        values["slug"],
        values["version"],
        values["seats"],
        values["installed_at"],
    )
    return rows[0] if rows else None


async def live_install(tenant_id: uuid.UUID, slug: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {INSTALL_COLUMNS} from plugin_installs where tenant_id = {{}} and slug = {{}} "
        "and status = 'installed'" + (" for update" if lock else ""),
        tenant_id,
        slug,
    )
    return rows[0] if rows else None


async def list_installs(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    clause = clause.replace("created_at", "installed_at")
    return await fetch(
        f"select {INSTALL_COLUMNS} from plugin_installs where tenant_id = {{}} and status = 'installed'{clause} "
        "order by installed_at, id limit {}",
        tenant_id,
        *args,
        page.limit + 1,
    )


async def update_install(install_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    columns, args = _set_clause(changes)
    rows = await fetch(
        f"update plugin_installs set {columns}, updated_at = clock_timestamp() where id = {{}} "
        f"returning {INSTALL_COLUMNS}",
        *args,
        install_id,
    )
    return rows[0]


# -- licenses ---------------------------------------------------------------------------------------------


async def insert_license(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into licenses (id, tenant_id, install_id, plugin_id, slug, status, trial, trial_ends_at, "
        "expires_at, seats, version_range, entitlements, token, key_version, renewal_grace_seconds, issued_at) "
        "values ({}, {}, {}, {}, {}, 'active', {}, {}, {}, {}, {}, {}::jsonb, {}, {}, {}, {}) "
        f"returning {LICENSE_COLUMNS}",
        values["id"],
        values["tenant_id"],
        values["install_id"],
        values["plugin_id"],
        values["slug"],
        values["trial"],
        values["trial_ends_at"],
        values["expires_at"],
        values["seats"],
        values["version_range"],
        json.dumps(values["entitlements"]),
        values["token"],
        values["key_version"],
        values["renewal_grace_seconds"],
        values["issued_at"],
    )
    return _decoded(rows[0], "entitlements")


async def get_license(license_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {LICENSE_COLUMNS} from licenses where id = {{}}" + (" for update" if lock else ""), license_id
    )
    return _first(rows, "entitlements")


async def license_of_install(install_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {LICENSE_COLUMNS} from licenses where install_id = {{}}" + (" for update" if lock else ""),
        install_id,
    )
    return _first(rows, "entitlements")


async def active_licenses(tenant_id: uuid.UUID, *, lock: bool = False) -> list[dict[str, Any]]:
    rows = await fetch(
        f"select {LICENSE_COLUMNS} from licenses where tenant_id = {{}} and status = 'active' order by id"
        + (" for update" if lock else ""),
        tenant_id,
    )
    return [_decoded(row, "entitlements") for row in rows]


# One plugin's licenses of a tenant, by the plugin's id (the slug is the plugin's, so its unique index finds it):
# `licenses_plugin_idx` (tenant_id, plugin_id, created_at, id) serves them in either order.
_OF_PLUGIN = " and plugin_id = (select id from plugins where slug = {})"


async def list_licenses(tenant_id: uuid.UUID, page: PageRequest, slug: str | None = None) -> list[dict[str, Any]]:
    """The tenant's licenses, oldest first; only those of the plugin `slug` when it is given."""
    clause, args = keyset_clause(page)
    of_plugin, plugin_args = ("", []) if slug is None else (_OF_PLUGIN, [slug])
    rows = await fetch(
        f"select {LICENSE_COLUMNS} from licenses where tenant_id = {{}}{of_plugin}{clause} "
        "order by created_at, id limit {}",
        tenant_id,
        *plugin_args,
        *args,
        page.limit + 1,
    )
    return [_decoded(row, "entitlements") for row in rows]


async def latest_licenses(tenant_id: uuid.UUID, slug: str, limit: int) -> list[dict[str, Any]]:
    """The tenant's newest `limit` licenses of the plugin `slug`, newest first."""
    rows = await fetch(
        f"select {LICENSE_COLUMNS} from licenses where tenant_id = {{}}{_OF_PLUGIN} "
        "order by created_at desc, id desc limit {}",
        tenant_id,
        slug,
        limit,
    )
    return [_decoded(row, "entitlements") for row in rows]


async def update_license(license_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    """`changes`: plain columns (a license's entitlements are fixed when it is issued)."""
    columns, args = _set_clause(changes)
    rows = await fetch(f"update licenses set {columns} where id = {{}} returning {LICENSE_COLUMNS}", *args, license_id)
    return _decoded(rows[0], "entitlements")


async def entitlement_snapshot(tenant_id: uuid.UUID, slug: str) -> dict[str, Any] | None:
    """The license of the tenant's live install of `slug`, with the seats in use."""
    rows = await fetch(
        "select l.id, l.status, l.expires_at, l.trial, l.entitlements, l.seats, "
        "(select count(*) from license_activations a where a.tenant_id = l.tenant_id and a.license_id = l.id "
        "and a.released_at is null) as seats_used "
        "from plugin_installs i join licenses l on l.install_id = i.id "
        "where i.tenant_id = {} and i.slug = {} and i.status = 'installed'",
        tenant_id,
        slug,
    )
    return _first(rows, "entitlements")


async def license_tenant(license_id: uuid.UUID) -> uuid.UUID | None:
    rows = await fetch("select tenant_id from licenses where id = {}", license_id)
    return rows[0]["tenant_id"] if rows else None


async def due_licenses(now: datetime, retry_after: timedelta, limit: int) -> list[dict[str, Any]]:
    """Across tenants (system context): active licenses whose trial or paid time has ended, but not those the
    job failed on less than `retry_after` before `now`."""
    return await fetch(
        "select id, tenant_id from licenses where status = 'active' and expires_at <= {} "
        "and (job_failed_at is null or job_failed_at <= {}) order by expires_at, id limit {}",
        now,
        now - retry_after,
        limit,
    )


async def record_license_job_failure(license_id: uuid.UUID, error: str, at: datetime) -> None:
    await fetch("update licenses set job_error = {}, job_failed_at = {} where id = {}", error[:200], at, license_id)


async def revoked_licenses(
    after: datetime | None, cursor: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """Across tenants: revoked licenses whose tokens could still be in use (not past their expiry), after the
    time `after` and after the `(revoked_at, id)` of `cursor`."""
    since, last_id = cursor if cursor is not None else (None, None)
    return await fetch(
        "select id, revoked_at, expires_at from licenses where status = 'revoked' "
        "and (expires_at is null or expires_at > now()) and revoked_at > coalesce({}, '-infinity'::timestamptz) "
        "and ({}::timestamptz is null or (revoked_at, id) > ({}::timestamptz, {}::uuid)) "
        "order by revoked_at, id limit {}",
        after,
        since,
        since,
        last_id,
        limit,
    )


# -- activations ------------------------------------------------------------------------------------------


async def insert_activation(values: dict[str, Any]) -> dict[str, Any] | None:
    """None when this fingerprint holds a seat already."""
    rows = await fetch(
        "insert into license_activations (id, tenant_id, license_id, fingerprint, label) "
        "values ({}, {}, {}, {}, {}) on conflict do nothing "
        f"returning {ACTIVATION_COLUMNS}",
        values["id"],
        values["tenant_id"],
        values["license_id"],
        values["fingerprint"],
        values["label"],
    )
    return rows[0] if rows else None


async def live_activation(license_id: uuid.UUID, fingerprint: str) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {ACTIVATION_COLUMNS} from license_activations where license_id = {{}} and fingerprint = {{}} "
        "and released_at is null",
        license_id,
        fingerprint,
    )
    return rows[0] if rows else None


async def get_activation(license_id: uuid.UUID, activation_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {ACTIVATION_COLUMNS} from license_activations where license_id = {{}} and id = {{}}",
        license_id,
        activation_id,
    )
    return rows[0] if rows else None


async def count_live_activations(tenant_id: uuid.UUID, license_id: uuid.UUID) -> int:
    rows = await fetch(
        "select count(*) as n from license_activations where tenant_id = {} and license_id = {} "
        "and released_at is null",
        tenant_id,
        license_id,
    )
    return int(rows[0]["n"])


async def count_recent_activations(tenant_id: uuid.UUID, license_id: uuid.UUID, since: datetime) -> int:
    rows = await fetch(
        "select count(*) as n from license_activations where tenant_id = {} and license_id = {} and created_at > {}",
        tenant_id,
        license_id,
        since,
    )
    return int(rows[0]["n"])


async def seats_in_use(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Each active license of the tenant with its live activations counted (by `license_activations_live_idx`)."""
    return await fetch(
        "select l.id as license_id, (select count(*) from license_activations a where a.tenant_id = l.tenant_id "
        "and a.license_id = l.id and a.released_at is null) as seats_used "
        "from licenses l where l.tenant_id = {} and l.status = 'active'",
        tenant_id,
    )


async def list_activations(tenant_id: uuid.UUID, license_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {ACTIVATION_COLUMNS} from license_activations where tenant_id = {{}} and license_id = {{}} "
        "and released_at is null order by created_at, id",
        tenant_id,
        license_id,
    )


async def _release(where: str, args: list[Any], reason: str, now: datetime) -> list[dict[str, Any]]:
    return await fetch(
        f"update license_activations set released_at = {{}}, release_reason = {{}} "
        f"where released_at is null and {where} returning {ACTIVATION_COLUMNS}",
        now,
        reason,
        *args,
    )


async def release_activation(activation_id: uuid.UUID, reason: str, now: datetime) -> list[dict[str, Any]]:
    return await _release("id = {}", [activation_id], reason, now)


async def release_license_activations(license_id: uuid.UUID, reason: str, now: datetime) -> list[dict[str, Any]]:
    return await _release("license_id = {}", [license_id], reason, now)


async def release_silent_activations(tenant_id: uuid.UUID, before: datetime, now: datetime) -> list[dict[str, Any]]:
    return await _release("tenant_id = {} and last_heartbeat_at < {}", [tenant_id, before], "heartbeat_timeout", now)


async def touch_activation(activation_id: uuid.UUID, now: datetime) -> dict[str, Any] | None:
    rows = await fetch(
        f"update license_activations set last_heartbeat_at = {{}} where id = {{}} and released_at is null "
        f"returning {ACTIVATION_COLUMNS}",
        now,
        activation_id,
    )
    return rows[0] if rows else None


async def stale_activation_tenants(before: datetime, limit: int) -> list[dict[str, Any]]:
    """Across tenants: the tenants with live activations whose last heartbeat is older than `before`."""
    return await fetch(
        "select distinct tenant_id from license_activations where released_at is null "
        "and last_heartbeat_at < {} limit {}",
        before,
        limit,
    )


async def installs_at_version(plugin_id: uuid.UUID, version: str) -> list[dict[str, Any]]:
    """Across tenants (system context): live installs of one version."""
    return await fetch(
        "select id, tenant_id from plugin_installs where plugin_id = {} and version = {} and status = 'installed'",
        plugin_id,
        version,
    )


# -- install history (append-only) ------------------------------------------------------------------------


async def insert_install_event(tenant_id: uuid.UUID, plugin_id: uuid.UUID, slug: str, kind: str, at: datetime) -> None:
    await fetch(
        "insert into plugin_install_events (tenant_id, plugin_id, slug, kind, at) values ({}, {}, {}, {}, {})",
        tenant_id,
        plugin_id,
        slug,
        kind,
        at,
    )


async def installed_before(end: datetime) -> list[dict[str, Any]]:
    """Across tenants: `(tenant_id, plugin_id)` of every install live just before `end`, from the history
    alone (each tenant and plugin's last install or uninstall before `end` is an install). Last in the order
    written (the id): the install's locks serialize a tenant's steps of one plugin, while their times come from
    each request's clock, which a reinstall waiting on an uninstall may have read first."""
    return await fetch(
        "select tenant_id, plugin_id from ("
        "select distinct on (plugin_id, tenant_id) tenant_id, plugin_id, kind from plugin_install_events "
        "where kind in ('installed', 'uninstalled') and at < {} order by plugin_id, tenant_id, id desc"
        ") last_step where kind = 'installed'",
        end,
    )


async def steps_between(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Across tenants: how many steps of each kind each plugin's history has in `[start, end)`."""
    return await fetch(
        "select plugin_id, kind, count(*) as n from plugin_install_events where at >= {} and at < {} group by 1, 2",
        start,
        end,
    )


async def plugins_known_before(end: datetime) -> list[dict[str, Any]]:
    """The plugins published before `end`, and any with history before it, by slug."""
    return await fetch(
        "select id, slug from plugins p where created_at < {} "
        "or exists (select 1 from plugin_install_events e where e.plugin_id = p.id and e.at < {}) order by slug",
        end,
        end,
    )
