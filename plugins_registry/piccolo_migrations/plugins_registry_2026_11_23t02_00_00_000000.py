"""Delivering the plugin outbox to each tenant's webhook endpoint: attempts, the next try, and the last error."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-11-23T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "outbox delivery"

SCHEMA = """
alter table plugin_outbox add column attempts integer not null default 0 check (attempts >= 0);
-- Null: due now. Set when a delivery is claimed (a lease, so a crashed worker's claim comes back) and after a
-- failed attempt (the back-off).
alter table plugin_outbox add column next_attempt_at timestamptz;
alter table plugin_outbox add column last_error text check (length(last_error) <= 500);
-- Given up after the last attempt; kept, and visible to the tenant.
alter table plugin_outbox add column failed_at timestamptz;
create index plugin_outbox_due_idx on plugin_outbox (next_attempt_at, id) where delivered_at is null and failed_at is null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="plugins_registry", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
