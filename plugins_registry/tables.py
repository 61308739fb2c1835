"""Piccolo tables of the plugin registry. The DDL (constraints, RLS) is in piccolo_migrations."""

from piccolo.columns import JSONB, UUID, BigInt, Boolean, Integer, Text, Timestamptz
from piccolo.table import Table

from controlplane.core.db import ENGINE


class Publisher(Table, tablename="publishers", db=ENGINE):
    id = UUID(primary_key=True)
    name = Text()
    email = Text()
    status = Text()
    partner_id = UUID(null=True)
    created_at = Timestamptz()


class Plugin(Table, tablename="plugins", db=ENGINE):
    id = UUID(primary_key=True)
    slug = Text()
    name = Text()
    publisher_id = UUID()
    description = Text()
    pricing = JSONB()
    entitlements = JSONB()
    created_at = Timestamptz()


class PluginVersion(Table, tablename="plugin_versions", db=ENGINE):
    id = UUID(primary_key=True)
    plugin_id = UUID()
    version = Text()
    min_platform_version = Text()
    changelog = Text()
    artifact_sha256 = Text()
    yanked_at = Timestamptz(null=True)
    yank_reason = Text(null=True)
    created_at = Timestamptz()


class PluginInstall(Table, tablename="plugin_installs", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    plugin_id = UUID()
    slug = Text()
    version = Text()
    previous_version = Text(null=True)
    seats = Integer()
    status = Text()
    installed_at = Timestamptz()
    updated_at = Timestamptz()
    uninstalled_at = Timestamptz(null=True)


class License(Table, tablename="licenses", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    install_id = UUID()
    plugin_id = UUID()
    slug = Text()
    status = Text()
    trial = Boolean()
    trial_ends_at = Timestamptz(null=True)
    expires_at = Timestamptz(null=True)
    seats = Integer()
    version_range = Text()
    entitlements = JSONB()
    token = Text()
    token_stale = Boolean()
    key_version = Integer()
    renewal_grace_seconds = Integer()
    issued_at = Timestamptz()
    revoked_at = Timestamptz(null=True)
    revoke_reason = Text(null=True)
    expired_at = Timestamptz(null=True)
    created_at = Timestamptz()
    job_error = Text(null=True)
    job_failed_at = Timestamptz(null=True)


class LicenseActivation(Table, tablename="license_activations", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    license_id = UUID()
    fingerprint = Text()
    label = Text()
    last_heartbeat_at = Timestamptz()
    created_at = Timestamptz()
    released_at = Timestamptz(null=True)
    release_reason = Text(null=True)


class PluginInstallEvent(Table, tablename="plugin_install_events", db=ENGINE):
    """Append-only history of installs and trials (`at`: when the step takes effect)."""

    id = BigInt(primary_key=True)
    tenant_id = UUID()
    plugin_id = UUID()
    slug = Text()
    kind = Text()
    at = Timestamptz()
    recorded_at = Timestamptz()
