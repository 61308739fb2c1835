"""Card disputes: one row per Stripe dispute, its two journals, and the ledger's guard on its held account.

- `disputes`: one per Stripe dispute id (unique: a redelivered or reordered event finds it), of one payment of
  one invoice; `open` until decided, then `won` or `lost` once (`disputes_forward_only` refuses any other move,
  and a decided dispute's figures never change). `fee_minor` is Stripe's dispute fee in `fee_currency` (Stripe
  charges it in the account's settlement currency); `fee_returned_minor` what Stripe gave back of it on a win.
- `ledger_journals.source_type` gains `dispute_opened` and `dispute_closed`: with `unique (source_type,
  source_id)` and the dispute's id as source, a dispute has at most one opening and one closing journal.
- A tenant's `disputes_held:tenant:{id}` account is posted only by that tenant's own journals (as receivables).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T02:10:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "disputes: Stripe card disputes and their journals"

SCHEMA = """
create table disputes (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    invoice_id uuid not null references invoices (id),
    payment_id uuid not null references payments (id),
    stripe_dispute_id text not null unique check (length(stripe_dispute_id) between 1 and 255),
    charge_id text check (length(charge_id) between 1 and 255),
    amount_minor bigint not null check (amount_minor > 0),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    fee_minor bigint not null default 0 check (fee_minor >= 0),
    fee_currency char(3) not null check (fee_currency ~ '^[A-Z]{3}$'),
    fee_returned_minor bigint not null default 0 check (fee_returned_minor between 0 and fee_minor),
    reason text not null check (length(reason) between 1 and 100),
    status text not null default 'open' check (status in ('open', 'won', 'lost')),
    opened_at timestamptz not null,
    closed_at timestamptz,
    created_at timestamptz not null default clock_timestamp(),
    check ((status = 'open') = (closed_at is null)),
    check (closed_at is null or closed_at >= opened_at),
    -- Stripe gives a fee back only with the money, on a win.
    check (fee_returned_minor = 0 or status = 'won')
);
create index disputes_page_idx on disputes (created_at, id);
create index disputes_status_page_idx on disputes (status, created_at, id);
create index disputes_tenant_page_idx on disputes (tenant_id, created_at, id);
create index disputes_invoice_idx on disputes (invoice_id);

create function disputes_forward_only() returns trigger language plpgsql as $$
begin
    if new.id <> old.id or new.tenant_id <> old.tenant_id or new.invoice_id <> old.invoice_id
        or new.payment_id <> old.payment_id or new.stripe_dispute_id <> old.stripe_dispute_id
        or new.charge_id is distinct from old.charge_id or new.amount_minor <> old.amount_minor
        or new.currency <> old.currency or new.fee_minor <> old.fee_minor or new.fee_currency <> old.fee_currency
        or new.opened_at <> old.opened_at or new.created_at <> old.created_at
        or (old.status <> 'open' and row(new.status, new.closed_at, new.fee_returned_minor)
            is distinct from row(old.status, old.closed_at, old.fee_returned_minor)) then
        raise exception 'dispute % is %: only an open dispute is decided, once', old.id, old.status
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger disputes_forward_only before update on disputes
    for each row execute function disputes_forward_only();

alter table ledger_journals drop constraint ledger_journals_source_type_check;
alter table ledger_journals add constraint ledger_journals_source_type_check check (source_type in (
    'invoice', 'credit_note', 'invoice_void', 'payment', 'refund', 'escrow_funding', 'escrow_release',
    'escrow_refund', 'commission', 'payout', 'credits_applied', 'credit_expiry', 'credits_restored',
    'dispute_opened', 'dispute_closed'
));

alter table ledger_postings add constraint ledger_postings_disputes_held_own_tenant check (
    account not like 'disputes_held:tenant:%' or account = 'disputes_held:tenant:' || tenant_id::text
);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("disputes"),
                # No delete: a dispute is a financial record.
                rls.grant_to_app(role, "disputes", "select, insert, update"),
            ]
        )

    manager.add_raw(run)
    return manager
