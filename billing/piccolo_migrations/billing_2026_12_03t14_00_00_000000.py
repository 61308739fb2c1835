"""Collection attempts name the dunning step they were made for (null: a payment made by hand), so manual
attempts neither use up nor bypass the schedule, and each step is tried at most once per invoice."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "dunning step of each collection attempt"

SCHEMA = """
alter table payments add column dunning_step integer check (dunning_step >= 0);
-- Attempts made before this column were all the collection's own: the n-th was step n - 1. The payments
-- policies are forced on the owner too: the backfill sees every tenant's rows in the system scope.
select set_config('app.scope', 'system', true);
update payments set dunning_step = attempt - 1;
create unique index payments_dunning_step_idx on payments (invoice_id, dunning_step) where dunning_step is not null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
