"""Staff may override a tenant's API rate limits: `rate_limit_percent` scales every default limit (100 = the
defaults, 400 = four times, 50 = half). Null: no override, the tenant follows its plan's percentage (the billing
domain resolves which applies, `billing.service.tenant_rate_limit_percent`). Only staff set it
(`PUT /v1/tenants/{id}/rate-limit-override`); a tenant's own writes never name it."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T05:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenants: staff's override of the rate-limit percentage"

SCHEMA = """
alter table tenants add column rate_limit_percent integer
    constraint tenants_rate_limit_percent_range check (rate_limit_percent between 1 and 100000);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
