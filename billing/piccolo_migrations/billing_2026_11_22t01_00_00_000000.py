"""Billing: metrics and plans (global, immutable), subscriptions, usage events, invoices, lines, credit notes."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-22T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing engine with row-level security"

SCHEMA = """
alter table tenants
    add column tax_rate_bps integer not null default 0 check (tax_rate_bps between 0 and 10000),
    add column invoice_grace_hours integer not null default 0 check (invoice_grace_hours between 0 and 720),
    add column invoice_sequence bigint not null default 0;

-- The catalogue is platform-wide and append-only: the app role may read and add, never change.
create table billable_metrics (
    id uuid primary key,
    code text not null unique check (code ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    name text not null check (length(name) between 1 and 200),
    aggregation text not null check (aggregation in ('count', 'sum', 'max', 'unique_count', 'latest')),
    field text check (length(field) between 1 and 100),
    created_at timestamptz not null default now(),
    check (aggregation <> 'unique_count' or field is not null)
);

create table plans (
    id uuid primary key,
    code text not null check (code ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    version integer not null check (version >= 1),
    name text not null check (length(name) between 1 and 200),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    interval text not null check (interval in ('month', 'year')),
    trial_days integer not null default 0 check (trial_days between 0 and 730),
    charges jsonb not null,
    proration_upgrade text not null check (proration_upgrade in ('immediate', 'next_period')),
    proration_downgrade text not null check (proration_downgrade in ('immediate', 'next_period')),
    created_at timestamptz not null default now(),
    unique (code, version)
);

create table subscriptions (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    plan_id uuid not null references plans (id),
    seats integer not null check (seats between 1 and 1000000),
    status text not null check (status in ('trialing', 'active', 'past_due', 'paused', 'canceled')),
    billing_anchor text not null check (billing_anchor in ('calendar', 'anniversary')),
    anchor_date date not null,
    started_at timestamptz not null,
    trial_end timestamptz,
    current_period_start timestamptz not null,
    current_period_end timestamptz not null,
    usage_from timestamptz not null,
    cancel_at_period_end boolean not null default false,
    canceled_at timestamptz,
    pending_plan_id uuid references plans (id),
    pending_seats integer check (pending_seats between 1 and 1000000),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (current_period_end >= current_period_start)
);
-- One live subscription per tenant: usage and plugin charges have one place to go.
create unique index subscriptions_one_live_idx on subscriptions (tenant_id) where status <> 'canceled';
create index subscriptions_due_idx on subscriptions (current_period_end) where status in ('trialing', 'active', 'past_due');
create index subscriptions_page_idx on subscriptions (tenant_id, created_at, id);

create table usage_events (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references tenants (id),
    idempotency_key text not null check (length(idempotency_key) between 1 and 255),
    metric_code text not null,
    occurred_at timestamptz not null,
    value numeric,
    properties jsonb,
    received_at timestamptz not null default now(),
    unique (tenant_id, idempotency_key)
);
create index usage_events_window_idx on usage_events (tenant_id, metric_code, occurred_at);

create table invoices (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    subscription_id uuid not null references subscriptions (id),
    kind text not null check (kind in ('cycle', 'change', 'final')),
    -- The period boundary a cycle invoice bills: at most one invoice per subscription and boundary.
    cycle_boundary timestamptz,
    number text,
    status text not null check (status in ('draft', 'finalized', 'paid', 'void', 'uncollectible')),
    currency char(3) not null,
    period_start timestamptz not null,
    period_end timestamptz not null,
    subtotal_minor bigint not null,
    tax_rate_bps integer not null,
    tax_minor bigint not null,
    total_minor bigint not null,
    credited_minor bigint not null default 0 check (credited_minor >= 0),
    amount_due_minor bigint not null check (amount_due_minor >= 0),
    finalize_at timestamptz,
    issued_at timestamptz,
    voided_at timestamptz,
    -- The clock, not the transaction start: a run writes several invoices in one transaction, in order.
    created_at timestamptz not null default clock_timestamp(),
    check (kind <> 'cycle' or cycle_boundary is not null),
    check (status = 'draft' or number is not null),
    check (total_minor = subtotal_minor + tax_minor)
);
create unique index invoices_cycle_key on invoices (subscription_id, cycle_boundary);
create unique index invoices_number_key on invoices (tenant_id, number);
create index invoices_page_idx on invoices (tenant_id, created_at, id);
create index invoices_drafts_idx on invoices (finalize_at) where status = 'draft';

create table invoice_lines (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references tenants (id),
    invoice_id uuid not null references invoices (id),
    position integer not null,
    description text not null,
    charge_kind text not null check (charge_kind in ('flat', 'per_seat', 'metered', 'proration')),
    charge_index integer,
    metric_code text,
    quantity numeric not null,
    unit_amount_minor numeric not null,
    precise_amount_minor numeric not null,
    amount_minor bigint not null,
    period_start timestamptz not null,
    period_end timestamptz not null,
    unique (invoice_id, position)
);

-- Proration credits and charges waiting for the next invoice (downgrades, credit carried forward).
create table pending_invoice_items (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    subscription_id uuid not null references subscriptions (id),
    description text not null,
    charge_kind text not null check (charge_kind in ('flat', 'per_seat', 'metered', 'proration')),
    metric_code text,
    quantity numeric not null,
    unit_amount_minor numeric not null,
    precise_amount_minor numeric not null,
    amount_minor bigint not null,
    period_start timestamptz not null,
    period_end timestamptz not null,
    created_at timestamptz not null default clock_timestamp(),
    invoice_id uuid references invoices (id)
);
create index pending_invoice_items_open_idx on pending_invoice_items (subscription_id) where invoice_id is null;

create table credit_notes (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    invoice_id uuid not null references invoices (id),
    amount_minor bigint not null check (amount_minor > 0),
    currency char(3) not null,
    reason text not null check (length(reason) between 1 and 500),
    created_at timestamptz not null default now()
);
create index credit_notes_invoice_idx on credit_notes (invoice_id);

-- A finalized invoice is immutable: only its status and what was credited may change after.
create function invoices_immutable() returns trigger language plpgsql as $$
begin
    if old.status <> 'draft' and (
        new.number is distinct from old.number or new.currency <> old.currency
        or new.subtotal_minor <> old.subtotal_minor or new.tax_minor <> old.tax_minor
        or new.total_minor <> old.total_minor or new.period_start <> old.period_start
        or new.period_end <> old.period_end or new.issued_at is distinct from old.issued_at
        or new.tenant_id <> old.tenant_id or new.subscription_id <> old.subscription_id
    ) then
        raise exception 'invoice % is % and cannot change', old.id, old.status using errcode = 'check_violation';
    end if;
    if old.status in ('void', 'paid', 'uncollectible') and new.status = 'draft' then
        raise exception 'invoice % cannot return to draft', old.id using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger invoices_immutable before update on invoices for each row execute function invoices_immutable();

create function invoice_lines_only_on_drafts() returns trigger language plpgsql as $$
begin
    if (select status from invoices where id = new.invoice_id) <> 'draft' then
        raise exception 'invoice % is not a draft; its lines cannot change', new.invoice_id
            using errcode = 'check_violation';
    end if;
    return new;
end $$;
create trigger invoice_lines_only_on_drafts before insert on invoice_lines
    for each row execute function invoice_lines_only_on_drafts();
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        statements = [
            SCHEMA,
            rls.tenant_isolation("subscriptions"),
            rls.tenant_isolation("usage_events"),
            rls.tenant_isolation("invoices"),
            rls.tenant_isolation("invoice_lines"),
            rls.tenant_isolation("pending_invoice_items"),
            rls.tenant_isolation("credit_notes"),
            "create index if not exists invoice_lines_invoice_idx on invoice_lines (invoice_id);",
            rls.grant_to_app(role, "billable_metrics", "select, insert"),
            rls.grant_to_app(role, "plans", "select, insert"),
            rls.grant_to_app(role, "subscriptions", "select, insert, update"),
            rls.grant_to_app(role, "usage_events", "select, insert"),
            rls.grant_to_app(role, "invoices", "select, insert, update"),
            # Lines are written once, with their draft invoice; nothing edits or removes them.
            rls.grant_to_app(role, "invoice_lines", "select, insert"),
            rls.grant_to_app(role, "pending_invoice_items", "select, insert, update"),
            rls.grant_to_app(role, "credit_notes", "select, insert"),
        ]
        await execute_all(statements)

    manager.add_raw(run)
    return manager
