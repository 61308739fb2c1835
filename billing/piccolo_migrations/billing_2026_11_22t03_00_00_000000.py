"""Subscription add-ons: extra charges (a paid plugin's price) billed with a subscription at its boundaries."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-22T03:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "subscription add-ons"

SCHEMA = """
-- One charge in the catalogue's JSON form, added to a subscription by another domain (the plugin registry)
-- under its own id (`source_id`, e.g. a plugin install): attaching the same source again changes nothing.
create table subscription_addons (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    subscription_id uuid not null references subscriptions (id),
    source_id uuid not null unique,
    name text not null check (length(name) between 1 and 200),
    charge jsonb not null check (jsonb_typeof(charge) = 'object' and charge ->> 'type' in ('flat', 'per_seat', 'metered')),
    currency char(3) not null check (currency ~ '^[A-Z]{3}$'),
    quantity integer not null default 1 check (quantity between 1 and 1000000),
    -- A plugin trial's end, or the install time: nothing is billed before it.
    billable_from timestamptz not null,
    -- Set once (the first end stands); billing stops there, without a credit for a period already invoiced.
    ended_at timestamptz,
    created_at timestamptz not null default clock_timestamp()
);
create index subscription_addons_subscription_idx on subscription_addons (subscription_id);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("subscription_addons"),
                rls.grant_to_app(role, "subscription_addons", "select, insert, update"),
            ]
        )

    manager.add_raw(run)
    return manager
