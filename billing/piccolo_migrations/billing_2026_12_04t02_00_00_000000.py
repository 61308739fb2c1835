"""Invoice and credit-note documents: the PDF of a finalized invoice or of a credit note, rendered once and kept.

- `billing_documents`: one row per invoice or per credit note (exactly one of the two, each unique), the PDF's
  bytes, their size and SHA-256 (checked against the bytes by the database itself).
- Immutable: no UPDATE ever; a DELETE only while the tenant is being erased (its status `pending_deletion`):
  a document carries the tenant's billing address and contact, personal data that the erasure removes, while
  the invoices themselves (financial records) stay. A document asked for again is rendered anew from what is
  left.
- RLS forced, the tenant policy and the system scope, as every tenant table.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing documents: invoice and credit-note PDFs, stored once"

SCHEMA = """
create table billing_documents (
    id uuid primary key default gen_random_uuid(),
    tenant_id uuid not null references tenants (id),
    invoice_id uuid references invoices (id),
    credit_note_id uuid references credit_notes (id),
    sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    content bytea not null,
    byte_size integer not null,
    created_at timestamptz not null default now(),
    constraint billing_documents_one_subject check (num_nonnulls(invoice_id, credit_note_id) = 1),
    constraint billing_documents_invoice_once unique (invoice_id),
    constraint billing_documents_credit_note_once unique (credit_note_id),
    constraint billing_documents_size check (byte_size = octet_length(content) and byte_size > 0),
    constraint billing_documents_digest check (sha256 = encode(sha256(content), 'hex'))
);

create function billing_documents_immutable() returns trigger language plpgsql as $$
begin
    if tg_op = 'UPDATE' then
        raise exception 'billing document % never changes', old.id using errcode = 'check_violation';
    end if;
    if (select status from tenants where id = old.tenant_id) is distinct from 'pending_deletion' then
        raise exception 'billing document % is removed only by its tenant''s erasure', old.id
            using errcode = 'check_violation';
    end if;
    return old;
end $$;
create trigger billing_documents_immutable before update or delete on billing_documents
    for each row execute function billing_documents_immutable();
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("billing_documents"),
                # No update: a document never changes. Delete: only an erasure (the trigger checks).
                rls.grant_to_app(role, "billing_documents", "select, insert, delete"),
            ]
        )

    manager.add_raw(run)
    return manager
