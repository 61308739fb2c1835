"""The daily scan of cards about to expire (billing.notices) finds default cards by their expiry month without
reading every card."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T02:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "payment methods: index of default cards by expiry month"

SCHEMA = """
create index payment_methods_expiry_idx on payment_methods (exp_year, exp_month) where is_default;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
