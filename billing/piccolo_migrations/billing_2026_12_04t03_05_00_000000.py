"""Disputes: a lost dispute of a credit purchase takes its credits back; a lost dispute is billed again.

- `credit_transactions` gains a `disputed` movement (out of a lot, negative) with its `dispute_id`: a lost
  dispute of a credit purchase takes back what is left of that purchase's lot, once per lot and dispute
  (`credit_transactions_disputed_once`), as a refund of that amount would.
- `disputes.credits_taken_minor`: what a lost dispute took back from the wallet (its closing journal moves that
  much off `credit_liability` instead of to `dispute_losses`; `ledger verify` expects it there).
- `disputes.rebill_invoice_id`: the one-off invoice that bills a lost dispute's amount again (what the
  wallet did not take back); the tenant's non-payment suspension for the loss is lifted only once it is paid.
- Both are written with the decision, once (`disputes_forward_only`), and only on a lost dispute.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T03:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "disputes: a lost dispute takes a purchase's credits back and is billed again"

SCHEMA = """
alter table disputes add column credits_taken_minor bigint not null default 0
    check (credits_taken_minor between 0 and amount_minor);
alter table disputes add column rebill_invoice_id uuid unique references invoices (id);
alter table disputes add constraint disputes_credits_taken_lost check (credits_taken_minor = 0 or status = 'lost');
alter table disputes add constraint disputes_rebill_lost check (rebill_invoice_id is null or status = 'lost');

create or replace function disputes_forward_only() returns trigger language plpgsql as $$
begin
    if new.id <> old.id or new.tenant_id <> old.tenant_id or new.invoice_id <> old.invoice_id
        or new.payment_id <> old.payment_id or new.stripe_dispute_id <> old.stripe_dispute_id
        or new.charge_id is distinct from old.charge_id or new.amount_minor <> old.amount_minor
        or new.currency <> old.currency or new.opened_at <> old.opened_at or new.created_at <> old.created_at
        -- Stripe's fee: recorded once more only from 0, while open (a fee the opening event did not list).
        or (row(new.fee_minor, new.fee_currency) is distinct from row(old.fee_minor, old.fee_currency)
            and not (old.status = 'open' and old.fee_minor = 0 and new.fee_minor > 0))
        -- The funds are withdrawn once, while open; never given back by this column.
        or (new.funds_withdrawn <> old.funds_withdrawn
            and not (old.status = 'open' and not old.funds_withdrawn and new.funds_withdrawn))
        or (old.status <> 'open' and row(
                new.status, new.closed_at, new.fee_returned_minor, new.credits_taken_minor, new.rebill_invoice_id
            ) is distinct from row(
                old.status, old.closed_at, old.fee_returned_minor, old.credits_taken_minor, old.rebill_invoice_id
            )) then
        raise exception 'dispute % is %: only an open dispute is decided, once', old.id, old.status
            using errcode = 'check_violation';
    end if;
    return new;
end $$;

alter table credit_transactions add column dispute_id uuid references disputes (id);
-- The kind's list and the sign rule both name every kind: replaced with `disputed` added.
do $$
declare
    found record;
begin
    for found in
        select conname from pg_constraint
        where conrelid = 'credit_transactions'::regclass and contype = 'c'
            and pg_get_constraintdef(oid) like '%top_up%'
    loop
        execute format('alter table credit_transactions drop constraint %I', found.conname);
    end loop;
end $$;
alter table credit_transactions add constraint credit_transactions_kind_check check (
    kind in ('top_up', 'grant', 'applied', 'restored', 'expired', 'refunded', 'disputed')
);
-- Money into a lot is positive, out of it negative.
alter table credit_transactions add constraint credit_transactions_sign_check check (
    (kind in ('top_up', 'grant', 'restored') and amount_minor > 0)
    or (kind in ('applied', 'expired', 'refunded', 'disputed') and amount_minor < 0)
);
alter table credit_transactions add constraint credit_transactions_disputed_has_dispute check (
    (kind = 'disputed') = (dispute_id is not null)
);
create unique index credit_transactions_disputed_once on credit_transactions (lot_id, dispute_id)
    where kind = 'disputed';
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
