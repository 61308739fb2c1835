"""Coupons (a platform-wide catalogue staff manage) and the discounts subscriptions redeem from them.

A coupon counts its redemptions in `times_redeemed`, raised by one conditional UPDATE (`< max_redemptions`), so
concurrent redemptions never pass the maximum. A discount keeps a snapshot of its coupon's terms (staff may
archive the coupon; the discount keeps what was redeemed), its redemption order on the subscription, the
periods it has used (repeating) and the amount it still has to give (a `once` amount coupon). A tenant redeems
a coupon at most once, even after the discount ended: `unique (tenant_id, coupon_id)`. Each invoice a discount
took something off is a row of `discount_applications`.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T00:20:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "coupons, discounts and what each invoice used of them"

SCHEMA = """
create table coupons (
    id uuid primary key,
    code text not null unique check (code ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    name text not null check (length(name) between 1 and 200),
    percent_off_bps integer check (percent_off_bps between 1 and 10000),
    amount_off_minor bigint check (amount_off_minor between 1 and 1000000000000000),
    currency char(3) check (currency ~ '^[A-Z]{3}$'),
    duration text not null check (duration in ('once', 'repeating', 'forever')),
    duration_periods integer check (duration_periods between 1 and 120),
    plan_codes text[] check (cardinality(plan_codes) between 1 and 50),
    max_redemptions integer check (max_redemptions between 1 and 1000000000),
    redeem_by timestamptz,
    times_redeemed integer not null default 0 check (times_redeemed >= 0),
    created_by uuid,
    archived_at timestamptz,
    archived_by uuid,
    created_at timestamptz not null default clock_timestamp(),
    check ((percent_off_bps is null) <> (amount_off_minor is null)),
    check ((amount_off_minor is null) = (currency is null)),
    check ((duration = 'repeating') = (duration_periods is not null)),
    check (max_redemptions is null or times_redeemed <= max_redemptions)
);

create table discounts (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    subscription_id uuid not null references subscriptions (id),
    coupon_id uuid not null references coupons (id),
    position integer not null check (position >= 1),
    coupon_code text not null,
    name text not null,
    percent_off_bps integer check (percent_off_bps between 1 and 10000),
    amount_off_minor bigint check (amount_off_minor between 1 and 1000000000000000),
    currency char(3),
    duration text not null check (duration in ('once', 'repeating', 'forever')),
    duration_periods integer check (duration_periods between 1 and 120),
    plan_codes text[],
    periods_used integer not null default 0 check (periods_used >= 0),
    amount_remaining_minor bigint check (amount_remaining_minor >= 0),
    status text not null default 'active' check (status in ('active', 'ended', 'removed')),
    ended_reason text check (ended_reason in ('used', 'periods_over', 'plan_mismatch', 'currency_mismatch', 'removed')),
    ended_at timestamptz,
    created_at timestamptz not null default clock_timestamp(),
    unique (tenant_id, coupon_id),
    unique (subscription_id, position),
    check ((percent_off_bps is null) <> (amount_off_minor is null)),
    check (amount_remaining_minor is null or amount_remaining_minor <= amount_off_minor),
    check ((status = 'active') = (ended_at is null))
);
create index discounts_subscription_idx on discounts (subscription_id, position);

create table discount_applications (
    id uuid primary key,
    tenant_id uuid not null references tenants (id),
    discount_id uuid not null references discounts (id),
    invoice_id uuid not null references invoices (id),
    amount_minor bigint not null check (amount_minor >= 0),
    created_at timestamptz not null default clock_timestamp(),
    unique (discount_id, invoice_id)
);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("discounts"),
                rls.tenant_isolation("discount_applications"),
                # Staff add and archive coupons; redemptions raise the counter. Nothing deletes one.
                rls.grant_to_app(role, "coupons", "select, insert, update"),
                rls.grant_to_app(role, "discounts", "select, insert, update"),
                rls.grant_to_app(role, "discount_applications", "select, insert"),
            ]
        )

    manager.add_raw(run)
    return manager
