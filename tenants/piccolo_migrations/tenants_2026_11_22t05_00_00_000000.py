"""Partners (resellers and publishers), their members, qualification checkpoints and the history of every
checkpoint transition; tenants owned by a reseller reference it. A partner context sees one partner's rows."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-22T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "partners and qualification"

SCHEMA = """
create table partners (
    id uuid primary key,
    kind text not null check (kind in ('reseller', 'publisher')),
    subtype text not null check (subtype in ('standard', 'referral')),
    name text not null check (length(name) between 1 and 200),
    email text not null check (length(email) between 3 and 320),
    stripe_account_id text check (stripe_account_id ~ '^acct_[A-Za-z0-9]{1,64}$'),
    -- Kept by every qualification change, so the gates that run inside a tenant's transaction (commission
    -- on a payment) can read them: qualified now = qualified and (qualified_until is null or > now()).
    qualified boolean not null default false,
    qualified_until timestamptz,
    created_by uuid,
    created_at timestamptz not null default clock_timestamp()
);
create index partners_page_idx on partners (created_at, id);

create table partner_members (
    partner_id uuid not null references partners (id),
    user_id uuid not null references users (id),
    role text not null check (role in ('reseller_admin', 'reseller_viewer')),
    created_at timestamptz not null default now(),
    primary key (partner_id, user_id)
);
create index partner_members_user_idx on partner_members (user_id);

-- The current state of each checkpoint a partner has acted on (none yet: not started).
create table partner_checkpoints (
    partner_id uuid not null references partners (id),
    code text not null check (length(code) between 1 and 63),
    status text not null check (status in ('submitted', 'approved', 'rejected', 'expired')),
    evidence jsonb not null default '{}',
    submitted_at timestamptz,
    approved_at timestamptz,
    expires_at timestamptz,
    reason text,  -- the last rejection's
    updated_at timestamptz not null default clock_timestamp(),
    primary key (partner_id, code)
);
create index partner_checkpoints_queue_idx on partner_checkpoints (code, status, updated_at);
create index partner_checkpoints_expiry_idx on partner_checkpoints (expires_at) where status = 'approved';

-- Append-only: who moved which checkpoint from what to what, when and why.
create table partner_checkpoint_history (
    id bigint generated always as identity primary key,
    partner_id uuid not null references partners (id),
    code text not null,
    from_status text not null,
    to_status text not null,
    actor_type text not null check (actor_type in ('user', 'api_key', 'system')),
    actor_id uuid,
    reason text,
    at timestamptz not null
);
create index partner_checkpoint_history_partner_idx on partner_checkpoint_history (partner_id, id);

alter table tenants add constraint tenants_reseller_fk foreign key (reseller_id) references partners (id);
-- Since when the current reseller owns the tenant: commission follows the owner from this moment.
alter table tenants add column reseller_since timestamptz;
"""


# A signed-in user sees the partners they belong to, and their own partner memberships.
MEMBER_VISIBILITY = f"""
create policy own_partner_memberships on partner_members for select
    using (user_id = {rls.CURRENT_USER});
create policy member_partners on partners for select
    using (id in (select pm.partner_id from partner_members pm where pm.user_id = {rls.CURRENT_USER}));
-- A tenant's context sees the reseller that owns it (whether it may earn commission on a payment).
create policy tenant_reseller on partners for select
    using (id = (select t.reseller_id from tenants t where t.id = {rls.CURRENT_TENANT}));
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.partner_isolation("partners", "id"),
                rls.partner_isolation("partner_members", "partner_id"),
                rls.partner_isolation("partner_checkpoints", "partner_id"),
                rls.partner_isolation("partner_checkpoint_history", "partner_id"),
                MEMBER_VISIBILITY,
                rls.grant_to_app(role, "partners", "select, insert, update"),
                rls.grant_to_app(role, "partner_members", "select, insert, update, delete"),
                rls.grant_to_app(role, "partner_checkpoints", "select, insert, update"),
                rls.grant_to_app(role, "partner_checkpoint_history", "select, insert"),
            ]
        )

    manager.add_raw(run)
    return manager
