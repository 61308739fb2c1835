"""A change to a user's status or staff flag, or their removal, is published to every API process's caches
(`controlplane.core.invalidation`, topic `user`), whoever makes it: the control plane's own writes publish as
well, but an operator disabling a user in SQL must end that user's sessions at once too."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.invalidation import CHANNEL
from controlplane.core.migrate import execute_all

ID = "2026-12-04T13:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenants: a user's status or staff change notifies the API processes' caches"

SCHEMA = f"""
create function users_changed_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('{CHANNEL}', 'user:' || old.id::text);
    return null;
end $$;
create trigger users_changed_notify after update of status, is_platform_staff or delete on users
    for each row execute function users_changed_notify();
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
