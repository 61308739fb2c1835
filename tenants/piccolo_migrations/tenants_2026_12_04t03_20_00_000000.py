"""Finished notification rows are purged after a while (tenants/notifications/retention.py): the app role, which
runs the purge in a system context, may delete them. Row-level security applies to deletes as to the rest (the
policies name no command), so a tenant's context could only ever delete its own rows; nothing but the purge
does."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T03:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification retention"


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all([rls.grant_to_app(role, "notifications", "delete")])

    manager.add_raw(run)
    return manager
