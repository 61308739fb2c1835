"""Prepaid credits: a tenant's credit lots (purchased through a `credit_purchase` invoice, or granted by
staff) and the append-only journal of what moved them (top-up, grant, applied, restored, expired, refunded).

A lot's `remaining` stays between 0 and its amount; the transactions table is insert-only for the app role
(no update, no delete), and the unique indexes make each movement happen once: one lot per purchase invoice,
one application and one restoration per lot and invoice, one refunded movement per refund and lot.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T00:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "wallets: credit lots and credit transactions"

SCHEMA = """
create table credit_lots (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    currency char(3) not null,
    source text not null check (source in ('purchased', 'granted')),
    amount_minor bigint not null check (amount_minor > 0),
    remaining_minor bigint not null,
    expires_at timestamptz,
    expired_at timestamptz,
    invoice_id uuid unique references invoices (id),
    payment_id uuid references payments (id),
    created_at timestamptz not null default clock_timestamp(),
    check (remaining_minor between 0 and amount_minor),
    check ((source = 'purchased') = (invoice_id is not null)),
    check (expires_at is null or expires_at > created_at)
);
create index credit_lots_available_idx on credit_lots (tenant_id, currency, source, created_at, id)
    where remaining_minor > 0;
create index credit_lots_expiry_idx on credit_lots (expires_at) where remaining_minor > 0;

create table credit_transactions (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    currency char(3) not null,
    lot_id uuid not null references credit_lots (id),
    kind text not null check (kind in ('top_up', 'grant', 'applied', 'restored', 'expired', 'refunded')),
    amount_minor bigint not null,
    invoice_id uuid references invoices (id),
    payment_id uuid references payments (id),
    refund_id uuid references refunds (id),
    created_at timestamptz not null default clock_timestamp(),
    -- Money into a lot is positive, out of it negative.
    check ((kind in ('top_up', 'grant', 'restored') and amount_minor > 0)
        or (kind in ('applied', 'expired', 'refunded') and amount_minor < 0)),
    check (kind not in ('applied', 'restored') or invoice_id is not null),
    check (kind <> 'refunded' or refund_id is not null)
);
create index credit_transactions_page_idx on credit_transactions (tenant_id, currency, created_at, id);
create unique index credit_transactions_applied_once on credit_transactions (lot_id, invoice_id)
    where kind = 'applied';
create unique index credit_transactions_restored_once on credit_transactions (lot_id, invoice_id)
    where kind = 'restored';
create unique index credit_transactions_refunded_once on credit_transactions (lot_id, refund_id)
    where kind = 'refunded';
create unique index credit_transactions_funded_once on credit_transactions (lot_id)
    where kind in ('top_up', 'grant');

-- Credits applied to an invoice (one journal per invoice) and an expiry (one per expired movement).
alter table ledger_journals drop constraint ledger_journals_source_type_check;
alter table ledger_journals add constraint ledger_journals_source_type_check check (source_type in (
    'invoice', 'credit_note', 'invoice_void', 'payment', 'refund', 'escrow_funding', 'escrow_release',
    'escrow_refund', 'commission', 'payout', 'credits_applied', 'credit_expiry'
));
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("credit_lots"),
                rls.tenant_isolation("credit_transactions"),
                rls.grant_to_app(role, "credit_lots", "select, insert, update"),
                # Append-only: the app may add a movement, never change or remove one.
                rls.grant_to_app(role, "credit_transactions", "select, insert"),
            ]
        )

    manager.add_raw(run)
    return manager
