"""An invoice the collection run failed on through a fault of ours records why, how often, and when it is
tried again (after a back-off, behind invoices that never failed)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T23:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "collection failures recorded on the invoice"

SCHEMA = """
alter table invoices
    add column collection_error text,
    add column collection_attempts integer not null default 0 check (collection_attempts >= 0),
    add column collection_retry_at timestamptz;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
