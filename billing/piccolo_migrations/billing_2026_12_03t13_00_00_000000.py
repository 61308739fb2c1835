"""A subscription the billing cycle could not bill records why (its reason, when, how many attempts) and when it
is retried next; the cycle bills the healthy ones first and retries these on a bounded back-off. A draft
invoice that cannot be finalized records the same way."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-12-03T13:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing failures recorded per subscription"

SCHEMA = """
alter table subscriptions
    add column billing_error text check (length(billing_error) between 1 and 1000),
    add column billing_error_at timestamptz,
    add column billing_attempts integer not null default 0 check (billing_attempts >= 0),
    add column billing_retry_at timestamptz,
    add check ((billing_error is null) = (billing_retry_at is null));
create index subscriptions_retry_idx on subscriptions (billing_retry_at) where billing_retry_at is not null;

-- A draft that could not be finalized: why, and how often; its finalize_at is moved to the next retry.
alter table invoices
    add column finalize_error text check (length(finalize_error) between 1 and 1000),
    add column finalize_attempts integer not null default 0 check (finalize_attempts >= 0);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
