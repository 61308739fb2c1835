"""An erased tenant's cards: no longer anyone's default at once (nothing collects on them), and detached at
Stripe after the erasure commits; `detached_at` records that the detach happened, so a retry detaches only
what is left."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "payment methods detached at Stripe on erasure"

SCHEMA = """
alter table payment_methods add column detached_at timestamptz;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
