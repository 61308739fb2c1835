"""Usage totals: per tenant and metric, the running `count` / `sum` of the events stored from a window's start
on, so that ingestion checks a batch against a metric's bound in O(batch) instead of re-aggregating the open
window (billing.usage.service.ingest).

One row per (tenant, metric): `window_start` is the subscription's `usage_from` the row was computed from,
`units` the metric's aggregate (`count`, or the `sum` of `value` / `properties ->> field`) and `events` the
number of events, over every event stored with `occurred_at >= window_start`. Ingestion writes it under the
metric's totals lock (`billing.usage.repository.lock_usage_totals`), in the transaction that stores the events;
a row of another window is recomputed from the events (or dropped), so nothing needs a backfill: existing
windows are computed at their first batch. Ingestion is the only writer of usage events; events inserted or
deleted by hand (as the owner) bypass the totals: delete the tenant's `usage_totals` rows after, and they are
computed again.

Ingestion stores a batch before it takes the metrics' totals locks (so batches of a metric insert side by side)
and removes, in the same transaction, the events the bound then refuses. The app role gains DELETE on
`usage_events` for that alone: a restrictive policy lets it delete only rows its own transaction inserted
(`xmin`), so usage once stored is never removed by the app.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T05:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "usage totals: running count and sum per tenant, metric and usage window"

SCHEMA = """
create table usage_totals (
    tenant_id uuid not null references tenants (id),
    metric_code text not null,
    window_start timestamptz not null,
    units numeric not null,
    events bigint not null check (events >= 0),
    primary key (tenant_id, metric_code)
);
"""


def discard_policy(role: str) -> str:
    # Restrictive: it only narrows what the tenant policies let the app role delete (its tenant's rows).
    return f"""
create policy discard_own_inserts on usage_events as restrictive for delete to {role}
    using (tenant_id = {rls.CURRENT_TENANT} and xmin = pg_current_xact_id()::xid);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("usage_totals"),
                rls.grant_to_app(role, "usage_totals", "select, insert, update, delete"),
                discard_policy(role),
                rls.grant_to_app(role, "usage_events", "delete"),
            ]
        )

    manager.add_raw(run)
    return manager
