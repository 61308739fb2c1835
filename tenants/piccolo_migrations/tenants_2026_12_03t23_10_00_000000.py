"""A checkpoint the daily expiry fails on records why (its reason code), how often, and when; the next runs
retry it after the checkpoints that never failed."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T23:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "checkpoint expiry failures"

SCHEMA = """
alter table partner_checkpoints
    add column expiry_error text,
    add column expiry_attempts integer not null default 0 check (expiry_attempts >= 0),
    add column expiry_failed_at timestamptz;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
