"""Disputes: an inquiry withdraws nothing, and a fee first told on a later event is booked once.

- `disputes.funds_withdrawn`: Stripe's inquiries (`warning_needs_response`, `warning_under_review`) take no
  money, so an inquiry is recorded without its opening journal; it turns true, once and only while the dispute
  is open, when Stripe withdraws the funds (`funds_withdrawn`, or a status that is not a warning), and the
  opening is booked then. A lost dispute took the money (`disputes_lost_withdrawn`); nothing is given back of a
  fee on a dispute that withdrew nothing (`disputes_fee_returned_withdrawn`). Existing disputes were all booked
  at their opening: true.
- `disputes_forward_only` lets Stripe's fee be recorded once more, from 0, while the dispute is open (a fee the
  opening event did not list), besides the move of `funds_withdrawn` above; everything else stands as before.
- `ledger_journals.source_type` gains `dispute_fee`: a fee booked after the opening, at most once per dispute
  (`unique (source_type, source_id)`).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "disputes: inquiries withdraw nothing; a late fee is booked once"

SCHEMA = """
alter table disputes add column funds_withdrawn boolean not null default true;
alter table disputes alter column funds_withdrawn drop default;
alter table disputes add constraint disputes_lost_withdrawn check (funds_withdrawn or status <> 'lost');
alter table disputes add constraint disputes_fee_returned_withdrawn
    check (funds_withdrawn or fee_returned_minor = 0);

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
        or (old.status <> 'open' and row(new.status, new.closed_at, new.fee_returned_minor)
            is distinct from row(old.status, old.closed_at, old.fee_returned_minor)) then
        raise exception 'dispute % is %: only an open dispute is decided, once', old.id, old.status
            using errcode = 'check_violation';
    end if;
    return new;
end $$;

alter table ledger_journals drop constraint ledger_journals_source_type_check;
alter table ledger_journals add constraint ledger_journals_source_type_check check (source_type in (
    'invoice', 'credit_note', 'invoice_void', 'payment', 'refund', 'escrow_funding', 'escrow_release',
    'escrow_refund', 'commission', 'payout', 'credits_applied', 'credit_expiry', 'credits_restored',
    'dispute_opened', 'dispute_closed', 'dispute_fee'
));
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
