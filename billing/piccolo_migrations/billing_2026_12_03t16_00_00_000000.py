"""Batch failures recorded on their items: what a month close could not do for a reseller (an event skipped,
its invoice in another currency than the agreement, or the reseller's whole close failed, retried by the next
run), and a milestone the hourly auto-accept could not release (attempts, last error, when)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-03T16:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "month-close issues per reseller; auto-accept failures per milestone"

SCHEMA = """
create table commission_close_issues (
    id uuid primary key,
    reseller_id uuid not null references partners (id),
    month date not null,
    kind text not null check (kind in ('skipped_event', 'close_failed')),
    event_id uuid unique references commission_events (id),
    invoice_id uuid,
    invoice_number text,
    currency char(3),
    net_minor bigint,
    reason text not null check (length(reason) between 1 and 80),
    detail text not null check (length(detail) <= 500),
    attempts integer not null default 1 check (attempts >= 1),
    resolved_at timestamptz,
    created_at timestamptz not null default clock_timestamp(),
    updated_at timestamptz not null default clock_timestamp(),
    check ((kind = 'skipped_event') = (event_id is not null))
);
-- One failure record per reseller and month, counting its attempts.
create unique index commission_close_failures_once on commission_close_issues (reseller_id, month)
    where kind = 'close_failed';
create index commission_close_issues_month_idx on commission_close_issues (reseller_id, month);

alter table escrow_milestones
    add column auto_accept_attempts integer not null default 0 check (auto_accept_attempts >= 0),
    add column auto_accept_error text check (length(auto_accept_error) <= 500),
    add column auto_accept_failed_at timestamptz;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.partner_isolation("commission_close_issues"),
                rls.grant_to_app(role, "commission_close_issues", "select, insert, update"),
            ]
        )

    manager.add_raw(run)
    return manager
