"""A credit note keeps the number it was given when it was made (`<invoice number>-CN<n>`, n its place among the
invoice's notes), assigned under the invoice's lock, unique per invoice. It was computed at each read from the
notes' order, so two notes made at once could both read as CN1, and a number already on a stored PDF could later
name another note. Existing notes are numbered in the order they were made (created_at, then id), as they read.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T03:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "credit notes: their number, stored when made"

SCHEMA = """
alter table credit_notes add column number text check (length(number) between 1 and 100);
"""

BACKFILL = """
select set_config('app.scope', 'system', true);
update credit_notes n
set number = i.number || '-CN' || ordered.position
from (
    select id, row_number() over (partition by invoice_id order by created_at, id) as position from credit_notes
) ordered, invoices i
where ordered.id = n.id and i.id = n.invoice_id;
"""

CONSTRAINTS = """
alter table credit_notes alter column number set not null;
alter table credit_notes add constraint credit_notes_number_once unique (invoice_id, number);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA, BACKFILL, CONSTRAINTS])

    manager.add_raw(run)
    return manager
