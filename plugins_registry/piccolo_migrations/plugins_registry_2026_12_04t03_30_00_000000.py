"""The tenant webhook outbox (a plugins_registry migration for the reason given in 2026-12-04T02:30):

- finished events are purged after a while (tenants/notifications/retention.py): the app role, which runs the
  purge in a system context, may delete them (the row-level security policies name no command, so they apply);
- the delivery's claim reads due events in `next_attempt_at nulls first, id` order (null: never tried, due now),
  and its index was built nulls last: built again in the claim's order, so the claim reads it from the start."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T03:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "webhook outbox retention and claim order"

SCHEMA = """
drop index webhook_outbox_due_idx;
create index webhook_outbox_due_idx on webhook_outbox (next_attempt_at nulls first, id)
    where delivered_at is null and failed_at is null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="plugins_registry", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all([SCHEMA, rls.grant_to_app(role, "webhook_outbox", "delete")])

    manager.add_raw(run)
    return manager
