"""Trials a tenant has used: a plan's trial (by plan code, whatever the version) and each plugin's trial are
given once; a staff grant allows one more. The database decides "once", so racing calls cannot both win."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-03T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "trials given once per tenant, plan code or plugin; staff grants"

SCHEMA = """
-- A row is one trial: the tenant's own (granted_by null, at most one per subject, written when it is used) or
-- one granted by staff (written unused, used by the next subscription or install that would start a trial).
create table trials (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    kind text not null check (kind in ('plan', 'plugin')),
    subject text not null check (length(subject) between 1 and 200),  -- the plan's code, or the plugin's id
    granted_by uuid,
    granted_at timestamptz,
    used_by uuid,  -- the subscription or plugin install that started with this trial
    used_at timestamptz,
    created_at timestamptz not null default clock_timestamp(),
    check ((granted_by is null) = (granted_at is null)),
    check ((used_by is null) = (used_at is null)),
    check (granted_by is not null or used_at is not null)
);
create unique index trials_own_once_idx on trials (tenant_id, kind, subject) where granted_by is null;
create unique index trials_one_open_grant_idx on trials (tenant_id, kind, subject)
    where granted_by is not null and used_at is null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("trials"),
                rls.grant_to_app(role, "trials", "select, insert, update"),
            ]
        )

    manager.add_raw(run)
    return manager
