"""The plugin registry: publishers, plugins and versions (global catalogue); per-tenant installs, licenses,
activations and the outbox of lifecycle events (tenant rows under RLS)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-22T04:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "plugin registry and licensing"

SCHEMA = """
create table publishers (
    id uuid primary key,
    name text not null check (length(name) between 1 and 200),
    email text not null check (length(email) between 3 and 320),
    status text not null check (status in ('active', 'suspended')),
    -- The partner that must stay qualified to publish versions; none for the platform's own publishers.
    partner_id uuid references partners (id),
    created_at timestamptz not null default now()
);

create table plugins (
    id uuid primary key,
    slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name text not null check (length(name) between 1 and 200),
    publisher_id uuid not null references publishers (id),
    description text not null default '',
    pricing jsonb not null,
    entitlements jsonb not null,
    created_at timestamptz not null default now()
);

-- Immutable once published, except for yanking (the app role may update only those two columns).
create table plugin_versions (
    id uuid primary key,
    plugin_id uuid not null references plugins (id),
    version text not null check (length(version) between 5 and 256),
    min_platform_version text not null,
    changelog text not null default '',
    artifact_sha256 text not null check (artifact_sha256 ~ '^[0-9a-f]{64}$'),
    yanked_at timestamptz,
    yank_reason text,
    created_at timestamptz not null default now(),
    unique (plugin_id, version)
);

-- One live install per tenant and plugin; an uninstalled one stays as history.
create table plugin_installs (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    plugin_id uuid not null references plugins (id),
    slug text not null,
    version text not null,
    previous_version text,
    seats integer not null check (seats >= 1),
    status text not null check (status in ('installed', 'uninstalled')),
    installed_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp(),
    uninstalled_at timestamptz
);
create unique index plugin_installs_live_idx on plugin_installs (tenant_id, plugin_id) where status = 'installed';

create table licenses (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    install_id uuid not null unique references plugin_installs (id),
    plugin_id uuid not null references plugins (id),
    slug text not null,
    status text not null check (status in ('active', 'expired', 'revoked')),
    trial boolean not null,
    trial_ends_at timestamptz,
    expires_at timestamptz,
    seats integer not null check (seats >= 1),
    version_range text not null,
    entitlements jsonb not null,
    -- The token is re-signed on its next read once the license changed without OpenBao at hand
    -- (a renewal in a payment's transaction, a trial converted by the expiry task).
    token text not null,
    token_stale boolean not null default false,
    key_version integer not null,
    -- How long a paid license outlives its subscription's period: the dunning window when it was issued.
    renewal_grace_seconds integer not null check (renewal_grace_seconds >= 0),
    issued_at timestamptz not null,
    revoked_at timestamptz,
    revoke_reason text,
    expired_at timestamptz,
    created_at timestamptz not null default clock_timestamp()
);
create index licenses_page_idx on licenses (tenant_id, created_at, id);
create index licenses_due_idx on licenses (expires_at) where status = 'active';
create index licenses_revoked_idx on licenses (revoked_at) where status = 'revoked';

create table license_activations (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    license_id uuid not null references licenses (id),
    fingerprint text not null check (length(fingerprint) between 1 and 255),
    label text not null default '',
    last_heartbeat_at timestamptz not null default clock_timestamp(),
    created_at timestamptz not null default clock_timestamp(),
    released_at timestamptz,
    release_reason text
);
create unique index license_activations_live_idx on license_activations (license_id, fingerprint)
    where released_at is null;
create index license_activations_stale_idx on license_activations (last_heartbeat_at) where released_at is null;

-- Lifecycle events for outbound delivery, written in the transaction of the change they describe.
create table plugin_outbox (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references tenants (id),
    event_type text not null,
    payload jsonb not null,
    created_at timestamptz not null default clock_timestamp(),
    delivered_at timestamptz
);
create index plugin_outbox_undelivered_idx on plugin_outbox (id) where delivered_at is null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="plugins_registry", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        statements = [
            SCHEMA,
            rls.tenant_isolation("plugin_installs"),
            rls.tenant_isolation("licenses"),
            rls.tenant_isolation("license_activations"),
            rls.tenant_isolation("plugin_outbox"),
            rls.grant_to_app(role, "publishers", "select, insert, update"),
            rls.grant_to_app(role, "plugins", "select, insert"),
            rls.grant_to_app(role, "plugin_versions", "select, insert"),
            rls.grant_to_app(role, "plugin_versions", "update (yanked_at, yank_reason)"),
            rls.grant_to_app(role, "plugin_installs", "select, insert, update"),
            rls.grant_to_app(role, "licenses", "select, insert, update"),
            rls.grant_to_app(role, "license_activations", "select, insert, update"),
            rls.grant_to_app(role, "plugin_outbox", "select, insert, update"),
        ]
        await execute_all(statements)

    manager.add_raw(run)
    return manager
