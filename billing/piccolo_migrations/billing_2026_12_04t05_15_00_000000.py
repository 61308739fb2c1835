"""A plan scales its tenants' API rate limits by `rate_limit_percent` (100 = the settings' defaults, 400 = four
times, 50 = half), set by staff when they define a plan version and fixed with it like every other field. Plans
that exist keep the defaults (100). A staff override on the tenant, when set, wins over the plan."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T05:15:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "plans: the rate-limit percentage"

SCHEMA = """
alter table plans add column rate_limit_percent integer not null default 100
    constraint plans_rate_limit_percent_range check (rate_limit_percent between 1 and 100000);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
