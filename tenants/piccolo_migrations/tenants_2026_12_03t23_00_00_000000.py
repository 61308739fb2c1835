"""Staff's suspension of a tenant is recorded apart from billing's (`billing_suspended_at`), so that paying lifts
only the non-payment suspension and staff's reactivation only theirs (see tenants.status)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T23:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "staff suspension of a tenant"

SCHEMA = """
alter table tenants add column staff_suspended_at timestamptz;
-- The tenants policies are forced on the owner too: the backfill sees every tenant in the system scope.
select set_config('app.scope', 'system', true);
-- A suspended tenant that billing did not suspend was suspended by staff. (billing_suspended_at is added by
-- a billing migration, which runs after this app's on a new database, where there is no tenant to update.)
update tenants t set staff_suspended_at = t.updated_at
where t.status = 'suspended' and to_jsonb(t) ->> 'billing_suspended_at' is null;
-- Staff's reactivation used to leave an unpaid tenant `active` with `billing_suspended_at` set, served 402
-- everywhere all the same: it is `suspended` for non-payment, which paying lifts.
update tenants t set status = 'suspended'
where t.status = 'active' and to_jsonb(t) ->> 'billing_suspended_at' is not null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
