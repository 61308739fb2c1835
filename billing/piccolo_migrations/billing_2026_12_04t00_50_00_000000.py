"""Invoices: a finalized invoice's pricing columns are immutable too.

`invoices_immutable` (billing_2026_11_22t01_00_00_000000) predates the kind, the discount, the taxes per rate
and the credits applied from a wallet, and its `subscription_id` comparison never fired when one side is NULL
(an invoice without a subscription). Replaced here: after finalization the kind, the discount, each tax, the
single rate and the cycle boundary may not change either, the subscription is compared with `is distinct
from`, and the credits applied may be set exactly as `billing.invoices.service.finalize` sets them: once, from
0, in the transaction that finalized the invoice (the trigger notes that transaction in a transaction-local
setting, which a rolled back savepoint undoes with the rest).
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T00:50:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "invoices: a finalized invoice's kind, discount, taxes and credits applied are immutable"

SCHEMA = """
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
    if new.credits_applied_minor <> old.credits_applied_minor and not (
        old.status = 'finalized' and old.credits_applied_minor = 0
        and position(old.id::text || ',' in finalized_here) > 0
    ) then
        raise exception 'invoice %: credits are applied once, in the transaction that finalizes it', old.id
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
