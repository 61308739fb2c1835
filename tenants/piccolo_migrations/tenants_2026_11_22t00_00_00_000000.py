"""Tenants, users, memberships, API keys, audit events and idempotency keys, with RLS."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.db import ENGINE
from controlplane.core.migrate import app_role

ID = "2026-11-22T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenants core with row-level security"

SCHEMA = """
create table users (
    id uuid primary key,
    email text not null check (email = lower(email) and length(email) between 3 and 320),
    password_hash text,
    is_platform_staff boolean not null default false,
    status text not null default 'active' check (status in ('active', 'disabled', 'erased')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create unique index users_email_key on users (email);

create table tenants (
    id uuid primary key,
    name text not null check (length(name) between 1 and 200),
    slug text not null unique check (slug ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
    status text not null default 'active' check (status in ('active', 'suspended', 'pending_deletion')),
    billing_email text,
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    reseller_id uuid,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    erasure_requested_at timestamptz
);
create index tenants_reseller_id_idx on tenants (reseller_id);
create index tenants_created_idx on tenants (created_at, id);

create table memberships (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    user_id uuid not null references users (id),
    role text not null check (role in ('tenant_admin', 'tenant_member', 'billing_viewer')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    unique (tenant_id, user_id)
);
create index memberships_user_id_idx on memberships (user_id);

create table api_keys (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    name text not null check (length(name) between 1 and 200),
    role text not null check (role in ('tenant_admin', 'tenant_member', 'billing_viewer')),
    secret_hash bytea not null,
    created_by uuid,
    created_at timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at timestamptz
);
create index api_keys_created_idx on api_keys (tenant_id, created_at, id);

-- Append-only: the app role may insert and read, never change or delete.
create table audit_events (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    actor_type text not null check (actor_type in ('user', 'api_key', 'system')),
    actor_id uuid,
    action text not null,
    target_type text not null,
    target_id text not null,
    before jsonb,
    after jsonb,
    request_id text,
    created_at timestamptz not null default clock_timestamp()
);
create index audit_events_page_idx on audit_events (tenant_id, created_at, id);

-- tenant_id is null for requests outside any tenant (e.g. a staff member creating a tenant).
create table idempotency_keys (
    id uuid primary key,
    tenant_id uuid references tenants (id),
    principal text not null,
    key text not null check (length(key) between 1 and 255),
    method text not null,
    path text not null,
    request_hash text not null,
    state text not null check (state in ('in_progress', 'completed')),
    response_status integer,
    response_body bytea,
    response_content_type text,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    unique nulls not distinct (tenant_id, principal, key)
);
create index idempotency_keys_expires_idx on idempotency_keys (expires_at);
"""

# Tenants are isolated on their own id; a signed-in user also sees the tenants they belong to,
# and their own memberships, in a user context (listing "my tenants").
MEMBER_VISIBILITY = f"""
create policy own_memberships on memberships for select
    using (user_id = {rls.CURRENT_USER});
create policy member_tenants on tenants for select
    using (id in (select m.tenant_id from memberships m where m.user_id = {rls.CURRENT_USER}));
create policy reseller_tenants on tenants for select
    using (reseller_id = {rls.CURRENT_RESELLER});
"""

# Users are platform-wide identities holding personal data. A tenant context sees its own members, a
# user context sees that user; looking a person up by email (sign-in, invitations) is system work.
USER_VISIBILITY = f"""
alter table users enable row level security;
alter table users force row level security;
create policy platform_access on users
    using ({rls.SYSTEM_SCOPE})
    with check ({rls.SYSTEM_SCOPE});
create policy own_user on users for select
    using (id = {rls.CURRENT_USER});
create policy tenant_members on users for select
    using (id in (select m.user_id from memberships m where m.tenant_id = {rls.CURRENT_TENANT}));
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        statements = [
            SCHEMA,
            rls.tenant_isolation("tenants", column="id"),
            rls.tenant_isolation("memberships"),
            rls.tenant_isolation("api_keys"),
            rls.tenant_isolation("audit_events"),
            rls.tenant_isolation("idempotency_keys"),
            MEMBER_VISIBILITY,
            USER_VISIBILITY,
            rls.grant_to_app(role, "users", "select, insert, update"),
            rls.grant_to_app(role, "tenants", "select, insert, update"),
            rls.grant_to_app(role, "memberships"),
            rls.grant_to_app(role, "api_keys", "select, insert, update"),
            rls.grant_to_app(role, "audit_events", "select, insert"),
            rls.grant_to_app(role, "idempotency_keys"),
        ]
        # execute() without arguments accepts several statements; all in one transaction.
        async with ENGINE.transaction() as tx:
            for sql in statements:
                await tx.connection.execute(sql)

    manager.add_raw(run)
    return manager
