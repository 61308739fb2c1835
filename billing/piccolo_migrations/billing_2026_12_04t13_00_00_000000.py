"""A reseller's context reads the MRR history of the tenants it owns (each owned tenant's MRR in its portal),
as it reads their invoices; nothing else of the history."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import execute_all

ID = "2026-12-04T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "reseller visibility of owned tenants' MRR history"

POLICY = f"""
create policy reseller_mrr_changes on mrr_changes for select
    using (tenant_id in (select t.id from tenants t where t.reseller_id = {rls.CURRENT_RESELLER}));
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([POLICY])

    manager.add_raw(run)
    return manager
