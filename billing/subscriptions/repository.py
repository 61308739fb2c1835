"""Subscriptions: one live per tenant; the billing cycle finds the due ones across tenants."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from billing.locks import ROW_LOCKS
from controlplane.core import invalidation
from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause
from tenants.service import RATE_LIMIT_TOPIC

SUBSCRIPTION_COLUMNS = (
    "s.id, s.tenant_id, s.plan_id, p.code as plan_code, p.version as plan_version, s.seats, s.status, "
    "s.billing_anchor, s.anchor_date, s.started_at, s.trial_end, s.current_period_start, s.current_period_end, "
    "s.usage_from, s.cancel_at_period_end, s.canceled_at, s.pending_plan_id, pp.code as pending_plan_code, "
    "s.pending_seats, s.created_at, s.updated_at, s.billing_error, s.billing_error_at, s.billing_attempts, "
    "s.billing_retry_at"
)
SUBSCRIPTION_FROM = "subscriptions s join plans p on p.id = s.plan_id left join plans pp on pp.id = s.pending_plan_id"
WRITABLE_SUBSCRIPTION = {
    "plan_id",
    "seats",
    "status",
    "anchor_date",
    "current_period_start",
    "current_period_end",
    "usage_from",
    "cancel_at_period_end",
    "canceled_at",
    "pending_plan_id",
    "pending_seats",
    "trial_end",
}
# A tenant's rate-limit percentage follows the plan of its live subscription: a change to either is published
# (on the tenants domain's topic) in the changing transaction, so that every process's cache drops the tenant.
RATE_LIMIT_COLUMNS = frozenset({"plan_id", "status"})


async def insert_subscription(values: dict[str, Any]) -> bool:
    """False when the tenant already has a live subscription."""
    rows = await fetch(
        "insert into subscriptions (id, tenant_id, plan_id, seats, status, billing_anchor, anchor_date, started_at, "
        "trial_end, current_period_start, current_period_end, usage_from) "
        "values ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
        "on conflict (tenant_id) where status <> 'canceled' do nothing returning id",
        values["id"],
        values["tenant_id"],
        values["plan_id"],
        values["seats"],
        values["status"],
        values["billing_anchor"],
        values["anchor_date"],
        values["started_at"],
        values["trial_end"],
        values["current_period_start"],
        values["current_period_end"],
        values["usage_from"],
    )
    if rows:
        await invalidation.publish(RATE_LIMIT_TOPIC, values["tenant_id"])
    return bool(rows)


async def get_subscription(subscription_id: uuid.UUID, *, lock: str | None = None) -> dict[str, Any] | None:
    of = " of s" if lock else ""
    rows = await fetch(
        f"select {SUBSCRIPTION_COLUMNS} from {SUBSCRIPTION_FROM} where s.id = {{}}{ROW_LOCKS[lock]}{of}",
        subscription_id,
    )
    return rows[0] if rows else None


async def live_subscription(tenant_id: uuid.UUID, *, lock: str | None = None) -> dict[str, Any] | None:
    """The tenant's subscription that is not canceled, if any."""
    of = " of s" if lock else ""
    rows = await fetch(
        f"select {SUBSCRIPTION_COLUMNS} from {SUBSCRIPTION_FROM} "
        f"where s.tenant_id = {{}} and s.status <> 'canceled'{ROW_LOCKS[lock]}{of}",
        tenant_id,
    )
    return rows[0] if rows else None


async def live_plan_rate_limit_percent(tenant_id: uuid.UUID) -> int | None:
    """The rate-limit percentage of the plan of the tenant's live subscription (None: it has none)."""
    rows = await fetch(
        "select p.rate_limit_percent from subscriptions s join plans p on p.id = s.plan_id "
        "where s.tenant_id = {} and s.status <> 'canceled'",
        tenant_id,
    )
    return int(rows[0]["rate_limit_percent"]) if rows else None


async def list_subscriptions(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page, alias="s.")
    return await fetch(
        f"select {SUBSCRIPTION_COLUMNS} from {SUBSCRIPTION_FROM} where s.tenant_id = {{}}{clause} "
        f"order by s.created_at, s.id limit {{}}",
        tenant_id,
        *args,
        page.limit + 1,
    )


async def update_subscription(subscription_id: uuid.UUID, changes: dict[str, Any]) -> None:
    unknown = set(changes) - WRITABLE_SUBSCRIPTION
    if unknown:
        raise ValueError(f"columns {sorted(unknown)} cannot be updated")
    assignments = [f"{column} = {{}}" for column in changes] + ["updated_at = now()"]
    rows = await fetch(
        f"update subscriptions set {', '.join(assignments)} where id = {{}} returning tenant_id",
        *changes.values(),
        subscription_id,
    )
    if rows and RATE_LIMIT_COLUMNS & set(changes):
        await invalidation.publish(RATE_LIMIT_TOPIC, rows[0]["tenant_id"])


# An erased tenant is never billed again, even before its erasure's billing part has finished.
DUE = (
    "status in ('trialing', 'active', 'past_due') and current_period_end <= {} and not exists "
    "(select 1 from tenants t where t.id = subscriptions.tenant_id and t.status = 'pending_deletion')"
)


# A subscription whose billing failed waits for its retry moment (billing_retry_at), never billed ahead of it.
RETRY_DUE = "(billing_retry_at is null or billing_retry_at <= {})"


async def count_due_subscriptions(cutoff: datetime) -> int:
    rows = await fetch(f"select count(*) as n from subscriptions where {DUE} and {RETRY_DUE}", cutoff, cutoff)
    return int(rows[0]["n"])


async def due_subscriptions(
    cutoff: datetime, after: uuid.UUID | None, limit: int, *, retries: bool = False
) -> list[dict[str, Any]]:
    """Across tenants (system context): live subscriptions with a boundary at or before `cutoff`; the healthy
    ones, or with `retries` those whose billing failed and whose retry moment has come by `cutoff`."""
    which = "billing_retry_at <= {}" if retries else "billing_retry_at is null"
    args: list[Any] = [cutoff, cutoff] if retries else [cutoff]
    return await fetch(
        f"select id, tenant_id from subscriptions where {DUE} and {which} and id > {{}} order by id limit {{}}",
        *args,
        after or uuid.UUID(int=0),
        limit,
    )


async def record_billing_failure(subscription_id: uuid.UUID, reason: str, at: datetime, retry_at: datetime) -> int:
    """Note why the subscription could not be billed and when to retry; the attempts so far."""
    rows = await fetch(
        "update subscriptions set billing_error = {}, billing_error_at = {}, billing_attempts = billing_attempts + 1, "
        "billing_retry_at = {} where id = {} returning billing_attempts",
        reason,
        at,
        retry_at,
        subscription_id,
    )
    return int(rows[0]["billing_attempts"]) if rows else 0


async def clear_billing_failure(subscription_id: uuid.UUID) -> None:
    await fetch(
        "update subscriptions set billing_error = null, billing_error_at = null, billing_attempts = 0, "
        "billing_retry_at = null where id = {} and billing_attempts > 0",
        subscription_id,
    )


# A tenant's open usage window (its live subscription's `usage_from`): ingestion holds this lock shared while
# it checks and stores events, billing and plan changes hold it exclusively while they move the window. An
# advisory lock, unlike FOR SHARE on the row, writes nothing, so concurrent batches do not contend.
USAGE_WINDOW_LOCK = 7_301


async def lock_usage_window(tenant_id: uuid.UUID, *, shared: bool) -> None:
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await fetch(f"select {function}({USAGE_WINDOW_LOCK}, hashtext({{}}::text))", str(tenant_id))
