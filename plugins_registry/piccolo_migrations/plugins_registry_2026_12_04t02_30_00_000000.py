"""The plugin outbox becomes the tenant webhook outbox, owned by tenants (tenants/webhook_outbox.py, the class
in tenants/tables.py): billing and tenant events go through it too. A rename keeps its rows, ids, grants and
row-level security (policies, like grants, belong to the table, not its name). `event_key` names an occurrence
(an invoice id, ...): the unique index makes "enqueued once" the database's rule. Plugin events have none
(null), as before: each of their steps is its own event.

Why a plugins_registry migration for a tenants table: Piccolo runs the apps one after another (tenants, billing,
plugins_registry), not in global ID order, and the table was made by this app's migrations; in the tenants app
the rename would run on a fresh database before the table exists. For the same reason a later change to
webhook_outbox goes in a plugins_registry migration too."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T02:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenant webhook outbox"

SCHEMA = """
alter table plugin_outbox rename to webhook_outbox;
alter sequence plugin_outbox_id_seq rename to webhook_outbox_id_seq;
alter index plugin_outbox_pkey rename to webhook_outbox_pkey;
alter index plugin_outbox_undelivered_idx rename to webhook_outbox_undelivered_idx;
alter index plugin_outbox_due_idx rename to webhook_outbox_due_idx;
alter index plugin_outbox_tenant_id_idx rename to webhook_outbox_tenant_id_idx;
alter table webhook_outbox rename constraint plugin_outbox_tenant_id_fkey to webhook_outbox_tenant_id_fkey;
alter table webhook_outbox rename constraint plugin_outbox_attempts_check to webhook_outbox_attempts_check;
alter table webhook_outbox rename constraint plugin_outbox_last_error_check to webhook_outbox_last_error_check;

alter table webhook_outbox add column event_key text check (length(event_key) between 1 and 200);
create unique index webhook_outbox_event_key_idx on webhook_outbox (tenant_id, event_type, event_key)
    where event_key is not null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="plugins_registry", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
