"""Where a tenant's webhooks are delivered (signed with its secret, see tenants.webhook_secrets)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-23T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook endpoints"

SCHEMA = """
create table tenant_webhook_endpoints (
    tenant_id uuid primary key references tenants (id),
    url text not null check (url ~ '^https?://' and length(url) <= 2000),
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp()
);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("tenant_webhook_endpoints"),
                rls.grant_to_app(role, "tenant_webhook_endpoints", "select, insert, update, delete"),
            ]
        )

    manager.add_raw(run)
    return manager
