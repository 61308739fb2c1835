"""Invoices for pricing: invoices without a subscription (one-off, credit purchase), discounts, credits
applied from the tenant's wallet, and each tax rate's amount.

An existing invoice keeps its single rate as a list of one (`taxes`), so every invoice reads the same way.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-04T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "invoices: kinds without a subscription, discounts, credits applied, taxes per rate"

SCHEMA = """
alter table invoices alter column subscription_id drop not null;
alter table invoices drop constraint invoices_kind_check;
alter table invoices add constraint invoices_kind_check
    check (kind in ('cycle', 'change', 'final', 'one_off', 'credit_purchase'));
alter table invoices add constraint invoices_subscription_of_kind
    check ((subscription_id is null) = (kind in ('one_off', 'credit_purchase')));
alter table invoices
    add column discount_minor bigint not null default 0 check (discount_minor <= 0),
    add column credits_applied_minor bigint not null default 0 check (credits_applied_minor >= 0),
    add column taxes jsonb not null default '[]' check (jsonb_typeof(taxes) = 'array');
alter table invoices add constraint invoices_due_within_total
    check (credits_applied_minor + credited_minor <= greatest(total_minor, 0));

alter table invoice_lines drop constraint invoice_lines_charge_kind_check;
alter table invoice_lines add constraint invoice_lines_charge_kind_check
    check (charge_kind in ('flat', 'per_seat', 'metered', 'proration', 'rounding', 'discount', 'one_off'));
"""

BACKFILL = """
select set_config('app.scope', 'system', true);
update invoices
set taxes = jsonb_build_array(jsonb_build_object(
    'code', 'tax', 'name', 'Tax', 'rate_bps', tax_rate_bps, 'amount_minor', tax_minor))
where tax_rate_bps > 0 or tax_minor <> 0;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA, BACKFILL])

    manager.add_raw(run)
    return manager
