"""Stripe customers and payment methods, payments (collection attempts) and the double-entry ledger: journals and append-only postings, balanced
per currency at commit."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-22T02:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "payments and the double-entry ledger"

SCHEMA = """
-- Set when dunning gives up on an invoice and suspends the tenant; a payment that settles it clears it.
alter table tenants add column billing_suspended_at timestamptz;

-- A tenant's customer at Stripe, made once (its idempotency key is derived from the tenant id).
create table billing_customers (
    tenant_id uuid primary key references tenants (id),
    stripe_customer_id text not null unique,
    created_at timestamptz not null default now()
);

-- Cards attached to that customer: only what may be shown (brand, last 4 digits, expiry).
create table payment_methods (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    stripe_payment_method_id text not null,
    brand text not null,
    last4 text not null check (last4 ~ '^[0-9]{4}$'),
    exp_month integer not null check (exp_month between 1 and 12),
    exp_year integer not null,
    is_default boolean not null default false,
    created_at timestamptz not null default clock_timestamp(),
    unique (tenant_id, stripe_payment_method_id)
);
create unique index payment_methods_one_default_idx on payment_methods (tenant_id) where is_default;
create index payment_methods_page_idx on payment_methods (tenant_id, created_at, id);

-- One row per collection attempt; its Stripe idempotency key is stored before Stripe is called.
create table payments (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    invoice_id uuid not null references invoices (id),
    attempt integer not null check (attempt >= 1),
    idempotency_key text not null unique,
    status text not null check (status in ('pending', 'succeeded', 'failed')),
    amount_minor bigint not null check (amount_minor > 0),
    currency char(3) not null,
    stripe_customer_id text not null,
    stripe_payment_method_id text not null,
    stripe_payment_intent_id text,
    decline_code text,
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp(),
    unique (invoice_id, attempt)
);
create index payments_page_idx on payments (tenant_id, created_at, id);

-- One journal per money movement, named by what caused it (at most one journal per source and kind).
create table ledger_journals (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    source_type text not null check (source_type in (
        'invoice', 'credit_note', 'invoice_void', 'payment', 'refund', 'escrow_funding', 'escrow_release',
        'escrow_refund'
    )),
    source_id uuid not null,
    description text not null,
    created_at timestamptz not null default clock_timestamp(),
    unique (source_type, source_id)
);
create index ledger_journals_page_idx on ledger_journals (tenant_id, created_at, id);

create table ledger_postings (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references tenants (id),
    journal_id uuid not null references ledger_journals (id),
    account text not null check (length(account) between 1 and 200),
    amount_minor bigint not null check (amount_minor <> 0),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    -- A tenant's receivable is only ever posted by that tenant's own journals.
    check (account not like 'receivable:tenant:%' or account = 'receivable:tenant:' || tenant_id::text)
);
create index ledger_postings_journal_idx on ledger_postings (journal_id);
create index ledger_postings_account_idx on ledger_postings (tenant_id, account);

-- Money given back on a paid invoice; its Stripe idempotency key is stored before Stripe is called.
create table refunds (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    invoice_id uuid not null references invoices (id),
    payment_id uuid not null references payments (id),
    amount_minor bigint not null check (amount_minor > 0),
    currency char(3) not null,
    reason text not null check (length(reason) between 1 and 500),
    status text not null check (status in ('pending', 'succeeded', 'failed')),
    stripe_refund_id text,
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp()
);
create index refunds_invoice_idx on refunds (invoice_id);

-- Escrow: a payer tenant's money held for a payee, released milestone by milestone. Payees (publishers,
-- resellers, vendors) are named by type and id; the partners work adds their accounts.
create table escrows (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    payee_type text not null check (payee_type in ('publisher', 'reseller', 'vendor')),
    payee_id uuid not null,
    currency char(3) not null,
    amount_minor bigint not null check (amount_minor > 0),
    inspection_days integer not null check (inspection_days between 1 and 90),
    status text not null check (status in ('draft', 'funding', 'funded', 'closed', 'canceled')),
    funding_attempts integer not null default 0,
    funding_key text unique,
    stripe_payment_intent_id text,
    funding_decline_code text,
    funded_at timestamptz,
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp()
);
create index escrows_page_idx on escrows (tenant_id, created_at, id);

create table escrow_milestones (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    escrow_id uuid not null references escrows (id),
    position integer not null,
    title text not null check (length(title) between 1 and 200),
    amount_minor bigint not null check (amount_minor > 0),
    due_at timestamptz,
    status text not null check (status in ('pending', 'submitted', 'disputed', 'released', 'refunded', 'split')),
    released_minor bigint not null default 0,
    refunded_minor bigint not null default 0,
    reason text,
    submitted_at timestamptz,
    updated_at timestamptz not null default clock_timestamp(),
    unique (escrow_id, position),
    check (released_minor >= 0 and refunded_minor >= 0 and released_minor + refunded_minor <= amount_minor)
);
create index escrow_milestones_escrow_idx on escrow_milestones (escrow_id);
create index escrow_milestones_inspection_idx on escrow_milestones (submitted_at) where status = 'submitted';

-- Stripe webhook events, each applied once (platform-wide: an event names its tenant only in its payload).
create table stripe_webhook_events (
    id text primary key check (length(id) between 1 and 255),
    type text not null,
    received_at timestamptz not null default now()
);

-- Deliveries refused before any effect: unsigned, forged or stale.
create table stripe_webhook_rejections (
    id uuid primary key,
    reason text not null,
    received_at timestamptz not null default now()
);

-- Checked when the transaction commits, after all of a journal's postings are in.
create function ledger_journal_balances() returns trigger language plpgsql as $$
begin
    if exists (
        select 1 from ledger_postings where journal_id = new.journal_id
        group by currency having sum(amount_minor) <> 0
    ) then
        raise exception 'journal % does not balance', new.journal_id using errcode = 'check_violation';
    end if;
    return null;
end $$;
create constraint trigger ledger_journal_balances after insert on ledger_postings
    deferrable initially deferred for each row execute function ledger_journal_balances();
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        statements = [
            SCHEMA,
            rls.tenant_isolation("billing_customers"),
            rls.tenant_isolation("payment_methods"),
            rls.tenant_isolation("payments"),
            rls.tenant_isolation("refunds"),
            rls.tenant_isolation("escrows"),
            rls.tenant_isolation("escrow_milestones"),
            rls.tenant_isolation("ledger_journals"),
            rls.tenant_isolation("ledger_postings"),
            rls.grant_to_app(role, "billing_customers", "select, insert"),
            rls.grant_to_app(role, "payment_methods", "select, insert, update"),
            rls.grant_to_app(role, "payments", "select, insert, update"),
            rls.grant_to_app(role, "refunds", "select, insert, update"),
            rls.grant_to_app(role, "escrows", "select, insert, update"),
            rls.grant_to_app(role, "escrow_milestones", "select, insert, update"),
            rls.grant_to_app(role, "stripe_webhook_events", "select, insert"),
            rls.grant_to_app(role, "stripe_webhook_rejections", "select, insert"),
            # Append-only: a correction is a new journal.
            rls.grant_to_app(role, "ledger_journals", "select, insert"),
            rls.grant_to_app(role, "ledger_postings", "select, insert"),
        ]
        await execute_all(statements)

    manager.add_raw(run)
    return manager
