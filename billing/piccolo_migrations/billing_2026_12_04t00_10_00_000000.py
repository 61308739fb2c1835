"""Several tax rates: a platform-wide catalogue of rates staff add and archive (never edit), each tenant's
ordered list of them, and each credit note's tax per rate.

An archived rate stays on the tenants that already have it (archiving only stops new assignment). A tenant
without a list keeps its single `tax_rate_bps`. Existing credit notes get their tax as a list of one: the tax
the ledger took back for the note, under the invoice's single rate.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T00:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tax rates catalogue, tenant tax rate lists, credit notes' taxes per rate"

SCHEMA = """
-- Platform-wide, like plans: the app role reads, adds and archives; a rate's figures never change.
create table tax_rates (
    id uuid primary key,
    code text not null unique check (code ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    name text not null check (length(name) between 1 and 200),
    rate_bps integer not null check (rate_bps between 0 and 10000),
    jurisdiction text not null check (length(jurisdiction) between 1 and 200),
    archived_at timestamptz,
    created_at timestamptz not null default now()
);
create index tax_rates_page_idx on tax_rates (created_at, id);

create function tax_rates_immutable() returns trigger language plpgsql as $$
begin
    if (new.id, new.code, new.name, new.rate_bps, new.jurisdiction, new.created_at)
        is distinct from (old.id, old.code, old.name, old.rate_bps, old.jurisdiction, old.created_at)
        or (old.archived_at is not null and new.archived_at is distinct from old.archived_at) then
        raise exception 'tax rate % never changes; it may only be archived once', old.code
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger tax_rates_immutable before update on tax_rates
    for each row execute function tax_rates_immutable();

-- A tenant's rates in the order its invoices show them; replaced as a whole by staff.
create table tenant_tax_rates (
    tenant_id uuid not null references tenants (id),
    position integer not null check (position between 0 and 9),
    tax_rate_code text not null references tax_rates (code),
    created_at timestamptz not null default now(),
    primary key (tenant_id, position),
    unique (tenant_id, tax_rate_code)
);

alter table credit_notes
    add column taxes jsonb not null default '[]' check (jsonb_typeof(taxes) = 'array');
"""

BACKFILL = """
select set_config('app.scope', 'system', true);
update credit_notes n
set taxes = jsonb_build_array(jsonb_build_object(
    'code', i.taxes -> 0 ->> 'code',
    'name', i.taxes -> 0 ->> 'name',
    'rate_bps', (i.taxes -> 0 ->> 'rate_bps')::integer,
    'amount_minor', coalesce((
        select sum(p.amount_minor)
        from ledger_journals j join ledger_postings p on p.journal_id = j.id
        where j.source_type = 'credit_note' and j.source_id = n.id and p.account = 'tax_payable'
    ), 0)
))
from invoices i
where i.id = n.invoice_id and jsonb_array_length(i.taxes) = 1;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("tenant_tax_rates"),
                rls.grant_to_app(role, "tax_rates", "select, insert, update"),
                # A tenant's list is replaced whole: its rows are deleted and written again.
                rls.grant_to_app(role, "tenant_tax_rates", "select, insert, delete"),
                BACKFILL,
            ]
        )

    manager.add_raw(run)
    return manager
