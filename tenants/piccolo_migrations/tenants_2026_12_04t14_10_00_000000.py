"""A person's console sessions end when their password changes, or when they ask to sign out everywhere.

`users.session_generation` counts those moments: a console session records the generation it started in and
ends once the user's is higher (`controlplane.console.middleware`). The database owns the count: any change of
the password hash, whoever makes it (the CLI, a reset link, an operator in SQL), moves it on, so no code path can
forget to. A counter rather than a time: comparing a session's start (the app's clock) with a change (the
database's) would sign a person out of the session they start right after a reset whenever the clocks disagree.

The user-change notification (tenants migration 2026-12-04T13:10) now also fires when the generation moves, so
every API process drops its cached principal at once. It compares old and new values: a column changed by a
BEFORE trigger does not count for `update of <column>`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.invalidation import CHANNEL
from controlplane.core.migrate import execute_all

ID = "2026-12-04T14:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenants: users.session_generation, moved on by a password change; its change notifies caches"

SCHEMA = f"""
alter table users add column session_generation bigint not null default 0;

create function users_password_changed() returns trigger language plpgsql as $$
begin
    if new.password_hash is distinct from old.password_hash then
        new.session_generation := old.session_generation + 1;
    end if;
    return new;
end $$;
create trigger users_password_changed before update of password_hash on users
    for each row execute function users_password_changed();

drop trigger users_changed_notify on users;
create or replace function users_changed_notify() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' or old.status is distinct from new.status
        or old.is_platform_staff is distinct from new.is_platform_staff
        or old.session_generation is distinct from new.session_generation then
        perform pg_notify('{CHANNEL}', 'user:' || old.id::text);
    end if;
    return null;
end $$;
create trigger users_changed_notify after update or delete on users
    for each row execute function users_changed_notify();
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
