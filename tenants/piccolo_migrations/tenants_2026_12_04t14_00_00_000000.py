"""A change to what a read's access check reads (a tenant's status or suspensions, a person's role in it, or
the removal of either) is published to every API process's caches (`controlplane.core.invalidation`, topics
`tenant_access` and `membership`), whoever makes it: a demotion, a removal or a suspension made by the control
plane or by an operator in SQL holds on the very next request."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.invalidation import CHANNEL
from controlplane.core.migrate import execute_all

ID = "2026-12-04T14:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenants: a tenant's status or a membership's change notifies the API processes' access caches"

SCHEMA = f"""
-- billing_suspended_at is added by a billing migration, which runs after this one: read through to_jsonb.
create function tenant_access_changed_notify() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' or old.status is distinct from new.status
        or old.staff_suspended_at is distinct from new.staff_suspended_at
        or to_jsonb(old) -> 'billing_suspended_at' is distinct from to_jsonb(new) -> 'billing_suspended_at' then
        perform pg_notify('{CHANNEL}', 'tenant_access:' || old.id::text);
    end if;
    return null;
end $$;
create trigger tenant_access_changed_notify after update or delete on tenants
    for each row execute function tenant_access_changed_notify();

create function membership_changed_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('{CHANNEL}', 'membership:' || old.tenant_id::text || '/' || old.user_id::text);
    return null;
end $$;
create trigger membership_changed_notify after update or delete on memberships
    for each row execute function membership_changed_notify();
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
