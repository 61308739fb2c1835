"""Refused Stripe webhooks are logged at most once per reason per minute (the metric counts every one): the
index finds the latest row of a reason, so checking costs no scan however long the log."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T17:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "index of the Stripe webhook rejection log by reason and time"

SCHEMA = """
create index stripe_webhook_rejections_reason_idx on stripe_webhook_rejections (reason, received_at);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
