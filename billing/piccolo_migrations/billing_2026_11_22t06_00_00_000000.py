"""A reseller's context reads the invoices of the tenants it owns (for their billing summaries), nothing else
of billing."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import execute_all

ID = "2026-11-22T06:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "reseller visibility of owned tenants' invoices"

POLICY = f"""
create policy reseller_invoices on invoices for select
    using (tenant_id in (select t.id from tenants t where t.reseller_id = {rls.CURRENT_RESELLER}));
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([POLICY])

    manager.add_raw(run)
    return manager
