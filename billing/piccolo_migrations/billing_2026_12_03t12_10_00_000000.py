"""A seat increase of an add-on is billed at once, prorated to the end of the period: what the current period
has paid for is kept, so lowering and raising again within it bills nothing twice, and the period's arrears
(an add-on that became billable inside it) bill the seats it had before the increases."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T12:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "add-on seats paid in the current period"

SCHEMA = """
-- Set by a quantity change during a period and valid while `period_end` is the subscription's current
-- period end; otherwise `quantity` is what the period was billed for.
alter table subscription_addons add column period_end timestamptz;
alter table subscription_addons add column period_base_quantity integer check (period_base_quantity >= 1);
alter table subscription_addons add column period_paid_quantity integer check (period_paid_quantity >= 1);
alter table subscription_addons add constraint subscription_addons_period_check check (
    (period_end is null) = (period_base_quantity is null) and (period_end is null) = (period_paid_quantity is null)
);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
