"""The notification outbox: one row per event and recipient, written in the transaction of the change it
tells about and sent later by a worker. The unique key makes "once per event and recipient" the database's
rule, not the sender's hope."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T02:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "notification outbox"

SCHEMA = f"""
create table notifications (
    id bigint generated always as identity primary key,
    tenant_id uuid references tenants (id),
    partner_id uuid references partners (id),
    event_type text not null check (event_type ~ '^[a-z_]+\\.[a-z_]+$'),
    event_key text not null check (length(event_key) between 1 and 200),
    recipient text not null check (recipient = 'billing_contact' or recipient ~ '^user:[0-9a-f-]{{36}}$'),
    user_id uuid references users (id) on delete set null,
    data jsonb not null default '{{}}'::jsonb,
    attachment_id uuid,
    status text not null default 'pending' check (status in ('pending', 'sent', 'failed', 'skipped')),
    attempts integer not null default 0 check (attempts >= 0),
    next_attempt_at timestamptz,
    last_error text,
    sent_at timestamptz,
    failed_at timestamptz,
    created_at timestamptz not null default clock_timestamp(),
    check ((tenant_id is null) <> (partner_id is null)),
    -- One row per occurrence and recipient, within its tenant or partner (exactly one of the two is set).
    unique nulls not distinct (tenant_id, partner_id, event_type, event_key, recipient)
);
create index notifications_due_idx on notifications (next_attempt_at nulls first, id) where status = 'pending';
create index notifications_tenant_idx on notifications (tenant_id, id) where tenant_id is not null;
create index notifications_partner_idx on notifications (partner_id, id) where partner_id is not null;

alter table notifications enable row level security;
alter table notifications force row level security;
create policy tenant_or_partner on notifications
    using (tenant_id = {rls.CURRENT_TENANT} or partner_id = {rls.CURRENT_RESELLER})
    with check (tenant_id = {rls.CURRENT_TENANT} or partner_id = {rls.CURRENT_RESELLER});
create policy platform_access on notifications
    using ({rls.SYSTEM_SCOPE})
    with check ({rls.SYSTEM_SCOPE});
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all([SCHEMA, rls.grant_to_app(role, "notifications", "select, insert, update")])

    manager.add_raw(run)
    return manager
