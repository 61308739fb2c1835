"""Reseller commissions: agreements, the events they are computed from (paid invoices and their refunds or
credit notes, captured in the transaction that made them), the lines a month close writes and its statements."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-22T07:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "reseller commissions and monthly statements"

SCHEMA = """
create table reseller_agreements (
    reseller_id uuid primary key references partners (id),
    currency char(3) not null,
    rate_bps integer not null check (rate_bps between 0 and 10000),
    tiers jsonb not null default '[]',
    duration_months integer check (duration_months >= 1),  -- null: lifetime
    pending_days integer not null check (pending_days >= 0),
    minimum_payout_minor bigint not null check (minimum_payout_minor >= 0),
    updated_at timestamptz not null default clock_timestamp()
);

-- A tenant's row: written by billing inside the tenant's (or the webhook's) transaction.
create table commission_events (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    reseller_id uuid not null references partners (id),
    kind text not null check (kind in ('paid', 'refund')),
    source_id uuid not null,  -- the invoice (paid) or the credit note (refund)
    invoice_id uuid not null references invoices (id),
    invoice_number text not null,
    currency char(3) not null,
    net_minor bigint not null check (net_minor > 0),
    owned_since timestamptz not null,
    occurred_at timestamptz not null,
    unique (kind, source_id)
);
create index commission_events_month_idx on commission_events (reseller_id, occurred_at);

create table reseller_statements (
    id uuid primary key,
    reseller_id uuid not null references partners (id),
    month date not null check (extract(day from month) = 1),
    currency char(3) not null,
    carried_in_minor bigint not null,
    total_minor bigint not null,
    payable_minor bigint not null check (payable_minor >= 0),
    carried_out_minor bigint not null,
    closed_at timestamptz not null default clock_timestamp(),
    unique (reseller_id, month)
);

-- Written by a month close; `statement_id` is the statement a line is due in (null while it is pending).
create table commission_lines (
    id uuid primary key,
    reseller_id uuid not null references partners (id),
    event_id uuid not null unique references commission_events (id),
    closed_in uuid not null references reseller_statements (id),
    statement_id uuid references reseller_statements (id),
    kind text not null check (kind in ('commission', 'clawback')),
    -- The reseller's customer: named apart from `tenant_id`, since the row belongs to the reseller.
    owned_tenant_id uuid not null references tenants (id),
    invoice_id uuid not null references invoices (id),
    invoice_number text not null,
    currency char(3) not null,
    net_minor bigint not null,
    rate_bps integer not null,
    commission_minor bigint not null,
    accrued_at timestamptz not null,
    payable_at timestamptz not null
);
create index commission_lines_statement_idx on commission_lines (statement_id);
create index commission_lines_pending_idx on commission_lines (reseller_id) where statement_id is null;

-- Money a partner is owed, sent to its connected account once: a reseller's payable statement, or what escrow
-- releases have put in a payee's payable balance (up to a given posting).
create table partner_payouts (
    id uuid primary key,
    partner_id uuid not null references partners (id),
    source text not null check (source in ('statement', 'escrow')),
    statement_id uuid unique references reseller_statements (id),
    payable_account text not null,  -- the ledger account the payout takes the money from
    up_to_posting_id bigint,
    amount_minor bigint not null check (amount_minor > 0),
    currency char(3) not null,
    destination text,  -- the Stripe connected account; none for a referral reseller (credits, not cash)
    status text not null check (status in ('pending', 'paid', 'failed', 'held')),
    attempts integer not null default 0,
    stripe_transfer_id text,
    last_error text,
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp(),
    check ((source = 'statement') = (statement_id is not null)),
    unique (payable_account, up_to_posting_id)
);
create index partner_payouts_due_idx on partner_payouts (updated_at) where status in ('pending', 'failed');

-- Commission expense against the reseller's payable, one journal per line; a payout takes the payable to
-- cash. A payout belongs to no tenant: such journals are the platform's (read in the system scope only).
alter table ledger_journals drop constraint ledger_journals_source_type_check;
alter table ledger_journals add constraint ledger_journals_source_type_check check (source_type in (
    'invoice', 'credit_note', 'invoice_void', 'payment', 'refund', 'escrow_funding', 'escrow_release',
    'escrow_refund', 'commission', 'payout'
));
alter table ledger_journals alter column tenant_id drop not null;
alter table ledger_postings alter column tenant_id drop not null;
"""

# The owning reseller reads its tenants' commission events (its statements explain them).
RESELLER_EVENTS = f"""
create policy reseller_events on commission_events for select
    using (reseller_id = {rls.CURRENT_RESELLER});
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.partner_isolation("reseller_agreements"),
                rls.tenant_isolation("commission_events"),
                RESELLER_EVENTS,
                rls.partner_isolation("reseller_statements"),
                rls.partner_isolation("commission_lines"),
                rls.partner_isolation("partner_payouts", "partner_id"),
                rls.grant_to_app(role, "reseller_agreements", "select, insert, update"),
                rls.grant_to_app(role, "commission_events", "select, insert"),
                rls.grant_to_app(role, "reseller_statements", "select, insert"),
                rls.grant_to_app(role, "commission_lines", "select, insert, update"),
                rls.grant_to_app(role, "partner_payouts", "select, insert, update"),
            ]
        )

    manager.add_raw(run)
    return manager
