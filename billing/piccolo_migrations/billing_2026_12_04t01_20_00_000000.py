"""Wallets: a cancellation gives back to the wallet the part of its unused time that credits paid.

- `credit_transactions_restored_once` (one `restored` movement per lot and invoice, which the void's full
  restore relied on) is dropped: a cancellation restores part of what a lot paid on an invoice and a later
  void the rest. What a restore may give back is bounded in `billing.wallets.application` by what is still
  net applied (applied less restored), read under the lots' row locks and the invoice's.
- A `credits_restored` journal (the reverse of `credits_applied` for the part given back).
- `invoices_immutable` (billing_2026_12_04t00_50_00_000000) lets `credits_applied_minor` also decrease, never
  increase, on a finalized or paid invoice: credits given back to the wallet.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T01:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "wallets: a cancellation gives back the credits that paid the unused time"

SCHEMA = """
drop index credit_transactions_restored_once;

alter table ledger_journals drop constraint ledger_journals_source_type_check;
alter table ledger_journals add constraint ledger_journals_source_type_check check (source_type in (
    'invoice', 'credit_note', 'invoice_void', 'payment', 'refund', 'escrow_funding', 'escrow_release',
    'escrow_refund', 'commission', 'payout', 'credits_applied', 'credit_expiry', 'credits_restored'
));

create or replace function invoices_immutable() returns trigger language plpgsql as $$
declare
    finalized_here text := coalesce(current_setting('billing.finalized_invoices', true), '');
begin
    if old.status = 'draft' and new.status <> 'draft' then
        finalized_here := finalized_here || old.id::text || ',';
        perform set_config('billing.finalized_invoices', finalized_here, true);
    end if;
    if old.status <> 'draft' and (
        new.number is distinct from old.number or new.currency <> old.currency or new.kind <> old.kind
        or new.subtotal_minor <> old.subtotal_minor or new.discount_minor <> old.discount_minor
        or new.tax_rate_bps <> old.tax_rate_bps or new.tax_minor <> old.tax_minor
        or new.taxes is distinct from old.taxes
        or new.total_minor <> old.total_minor or new.period_start <> old.period_start
        or new.period_end <> old.period_end or new.issued_at is distinct from old.issued_at
        or new.cycle_boundary is distinct from old.cycle_boundary
        or new.tenant_id <> old.tenant_id or new.subscription_id is distinct from old.subscription_id
    ) then
        raise exception 'invoice % is % and cannot change', old.id, old.status using errcode = 'check_violation';
    end if;
    -- Credits are applied once, from 0, in the transaction that finalizes the invoice; afterwards they may
    -- only be given back (a decrease) while the invoice is finalized or paid, and the same row is written.
    if new.credits_applied_minor <> old.credits_applied_minor and not (
        (old.status = 'finalized' and old.credits_applied_minor = 0
            and position(old.id::text || ',' in finalized_here) > 0)
        or (old.status in ('finalized', 'paid') and new.status = old.status
            and new.credits_applied_minor < old.credits_applied_minor)
    ) then
        raise exception 'invoice %: credits are applied once, in the transaction that finalizes it, and then only given back', old.id
            using errcode = 'check_violation';
    end if;
    if old.status in ('void', 'paid', 'uncollectible') and new.status = 'draft' then
        raise exception 'invoice % cannot return to draft', old.id using errcode = 'check_violation';
    end if;
    return new;
end $$;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
