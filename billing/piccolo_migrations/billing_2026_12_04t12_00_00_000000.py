"""The MRR history (billing.analytics.history): one row per change of a tenant's MRR, appended in the transaction
of the change; the app role may insert and read, never update or delete.

The backfill replays what today's subscriptions tell, with the MRR definition of this version
(billing.analytics.mrr) and each subscription's plan, seats, add-ons and discounts as they are now (earlier
plan or seat changes left no trace): a trial started at its start and converted at its end; a subscription
without a trial from its start; a cancellation at `canceled_at`; and, for a live subscription whose MRR now
differs from the replay (paused, say), its value now. Causes are `backfill` except the trial events.
"""

import json
from datetime import UTC, datetime
from typing import Any

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from billing.analytics.history import STATE_SELECT, state_from_row
from billing.catalogue.rules import Plan, plan_from_row
from billing.subscriptions.states import Status
from controlplane.core import db, rls
from controlplane.core.migrate import app_role

ID = "2026-12-04T12:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "mrr_changes: the append-only MRR history, backfilled from today's subscriptions"

CAUSES = (
    "backfill", "import", "subscription_created", "subscription_changed", "subscription_canceled",
    "subscription_paused", "subscription_resumed", "trial_started", "trial_converted", "trial_canceled",
    "discount_applied", "discount_ended", "addon_changed", "tenant_erased", "correction",
)  # fmt: skip

SCHEMA = f"""
create table mrr_changes (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references tenants (id),
    currency char(3) not null,
    effective_at timestamptz not null,
    mrr_minor bigint not null check (mrr_minor >= 0),
    cause text not null check (cause in ({", ".join(f"'{cause}'" for cause in CAUSES)})),
    recorded_at timestamptz not null default clock_timestamp()
);
create index mrr_changes_tenant_time_idx on mrr_changes (tenant_id, currency, effective_at desc, id desc);
create index mrr_changes_currency_time_idx on mrr_changes (currency, effective_at, id);
"""

PLANS = (
    "select id, code, version, name, currency, interval, trial_days, charges, proration_upgrade, proration_downgrade "
    "from plans"
)


def _replay(row: dict[str, Any], plan: Plan) -> list[tuple[Any, ...]]:
    """The rows one subscription leaves, as (tenant, currency, effective_at, mrr, cause)."""
    now = datetime.now(UTC)
    tenant, currency, status = row["tenant_id"], plan.currency, Status(row["status"])
    paying = state_from_row(row, plan, Status.ACTIVE)
    current = state_from_row(row, plan, status)
    canceled_at = row["canceled_at"] if status is Status.CANCELED else None
    out: list[tuple[Any, ...]] = []
    trial_end = row["trial_end"]
    if trial_end is not None:
        out.append((tenant, currency, row["started_at"], 0, "trial_started"))
        if status is Status.CANCELED and (canceled_at is None or canceled_at <= trial_end):
            out.append((tenant, currency, canceled_at or trial_end, 0, "trial_canceled"))
            return out
        if status is not Status.TRIALING and trial_end <= now:
            out.append((tenant, currency, trial_end, paying.mrr_at(trial_end), "trial_converted"))
    elif row["started_at"] <= now:
        out.append((tenant, currency, row["started_at"], paying.mrr_at(row["started_at"]), "backfill"))
    if status is Status.CANCELED:
        out.append((tenant, currency, canceled_at or now, 0, "backfill"))
    elif out and out[-1][3] != current.mrr_at(now):
        out.append((tenant, currency, now, current.mrr_at(now), "backfill"))
    return out


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="billing", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        async with db.ENGINE.transaction() as tx:
            connection = tx.connection
            await connection.execute(SCHEMA)
            await connection.execute(rls.tenant_isolation("mrr_changes"))
            await connection.execute(rls.grant_to_app(role, "mrr_changes", "select, insert"))
            await connection.execute("select set_config('app.scope', 'system', true)")
            plans = {
                row["id"]: plan_from_row(dict(row), json.loads(row["charges"])) for row in await connection.fetch(PLANS)
            }
            replayed: list[tuple[Any, ...]] = []
            for row in await connection.fetch(STATE_SELECT + "order by s.started_at, s.id"):
                replayed += _replay(dict(row), plans[row["plan_id"]])
            replayed.sort(key=lambda change: change[2])
            await connection.executemany(
                "insert into mrr_changes (tenant_id, currency, effective_at, mrr_minor, cause) "
                "values ($1, $2, $3, $4, $5)",
                replayed,
            )

    manager.add_raw(run)
    return manager
