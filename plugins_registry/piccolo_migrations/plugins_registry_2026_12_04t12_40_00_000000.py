"""One plugin's licenses of a tenant, read by its index: the console's plugin page shows the newest few, and
the API's license list may be filtered by plugin. `licenses_page_idx` (tenant_id, created_at, id) would walk
every license of the tenant to find them; this one goes straight to the plugin's, in either order.

(The tenant's live install of one plugin needs none: `plugin_installs_live_idx` (tenant_id, plugin_id), a
partial index of live installs, holds at most one row per plugin for the tenant.)"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T12:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "licenses: an index of one plugin's licenses per tenant"

SCHEMA = """
create index licenses_plugin_idx on licenses (tenant_id, plugin_id, created_at, id);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="plugins_registry", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
