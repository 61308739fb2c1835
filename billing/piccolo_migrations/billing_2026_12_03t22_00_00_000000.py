"""An invoice in a currency Stripe charges only in steps (whole forints, fils ending in 0) is cash-rounded after
tax by a line of its own: invoice lines may be of kind 'rounding'."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T22:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "invoice lines of kind rounding (cash rounding to what Stripe can charge)"

SCHEMA = """
alter table invoice_lines drop constraint invoice_lines_charge_kind_check;
alter table invoice_lines add constraint invoice_lines_charge_kind_check
    check (charge_kind in ('flat', 'per_seat', 'metered', 'proration', 'rounding'));
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
