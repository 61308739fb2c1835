"""A license the expiry job failed on records why and when (retried after a pause, not on every run)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T17:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "licenses record a failure of the expiry job"

SCHEMA = """
alter table licenses add column job_error text check (length(job_error) <= 200);
alter table licenses add column job_failed_at timestamptz;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="plugins_registry", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
