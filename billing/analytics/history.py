"""The MRR history: every change of a tenant's MRR, appended in the transaction that made it.

Each row is a snapshot: the tenant's MRR (billing.analytics.mrr) in one currency just after a change, and when
the change takes effect (a boundary the billing cycle crossed late takes effect at the boundary; a subscription
imported by staff with a past start at that start). `record` is called inside the writing tenant transaction,
after the write, at every choke point that can move MRR: a subscription written (created, changed, canceled,
paused, resumed, its trial converted or canceled, by a request, the cycle or a payment), a discount redeemed or
ended, an add-on attached, resized or ended. It appends only when the value differs from the tenant's latest
row at or before that instant, except for trial events, which are kept for the trial figures even at 0.

An add-on becomes billable, or ends, at a time of its own with no write then (a plugin trial ends by itself):
`record` first appends those instants between the tenant's latest row and the change, each at its own time
(cause `addon_changed`); the periodic `catch_up_addon_changes` does the same for tenants nobody writes to, so
a month can still gain such a row up to one run (10 minutes) after it closes.

The app role may insert and read rows, never update or delete them: a closed month is only ever changed by a
row recorded later with an earlier effective time (a staff import), which `recorded_at` tells apart.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from billing.addons.rules import Addon, addon_from_row
from billing.analytics.mrr import Billed, Discount, tenant_mrr
from billing.catalogue.rules import Plan
from billing.subscriptions import state as subscription_state
from billing.subscriptions.states import Status
from controlplane.core import metrics
from controlplane.core.db import SystemReason, fetch, system_tx, tenant_tx

log = logging.getLogger("controlplane.billing.analytics")

TRIAL_CAUSES = frozenset({"trial_started", "trial_converted", "trial_canceled"})

# A subscription with its add-ons and discounts, in one round trip (`STATE_SELECT` + a where clause).
STATE_SELECT = """
select s.id, s.tenant_id, s.plan_id, s.seats, s.status, s.started_at, s.trial_end, s.canceled_at,
    (select coalesce(json_agg(json_build_object(
        'id', a.id, 'name', a.name, 'charge', a.charge, 'quantity', a.quantity,
        'billable_from', a.billable_from, 'ended_at', a.ended_at)), '[]'::json)
     from subscription_addons a where a.subscription_id = s.id and a.tenant_id = s.tenant_id) as addons,
    (select coalesce(json_agg(json_build_object(
        'position', d.position, 'duration', d.duration, 'percent_off_bps', d.percent_off_bps,
        'amount_off_minor', d.amount_off_minor, 'currency', d.currency, 'plan_codes', d.plan_codes,
        'created_at', d.created_at, 'ended_at', d.ended_at)), '[]'::json)
     from discounts d where d.subscription_id = s.id and d.tenant_id = s.tenant_id) as discounts
from subscriptions s
"""


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class TenantState:
    """What a tenant's MRR is computed from, read once per `record`."""

    def __init__(self, billed: Billed | None, addons: list[Addon], discounts: list[Discount]) -> None:
        self.billed = billed
        self.addons = addons
        self.discounts = discounts

    @property
    def currency(self) -> str | None:
        return self.billed.plan.currency if self.billed else None

    def mrr_at(self, at: datetime) -> int:
        return tenant_mrr(self.billed, self.addons, self.discounts, at)

    def addon_instants(self, after: datetime, before: datetime) -> list[datetime]:
        """When an add-on became billable or ended, strictly between `after` and `before`, in order."""
        instants = {a.billable_from for a in self.addons} | {a.ended_at for a in self.addons if a.ended_at}
        return sorted(moment for moment in instants if after < moment < before)


def state_from_row(row: Mapping[str, Any], plan: Plan, status: Status) -> TenantState:
    """The state of a `STATE_SELECT` row, billed as `status`."""
    addons = [
        addon_from_row({**raw, "billable_from": _moment(raw["billable_from"]), "ended_at": _moment(raw["ended_at"])})
        for raw in json.loads(row["addons"])
    ]
    discounts = [
        Discount(
            position=raw["position"],
            duration=raw["duration"],
            percent_off_bps=raw["percent_off_bps"],
            amount_off_minor=raw["amount_off_minor"],
            currency=raw["currency"],
            plan_codes=tuple(raw["plan_codes"]) if raw["plan_codes"] is not None else None,
            created_at=datetime.fromisoformat(raw["created_at"]),
            ended_at=_moment(raw["ended_at"]),
        )
        for raw in json.loads(row["discounts"])
    ]
    return TenantState(Billed(status, plan, row["seats"]), addons, discounts)


async def tenant_state(tenant_id: uuid.UUID) -> TenantState:
    """The tenant's live subscription (the one not canceled), as MRR needs it."""
    rows = await fetch(STATE_SELECT + "where s.tenant_id = {} and s.status <> 'canceled'", tenant_id)
    if not rows:
        return TenantState(None, [], [])
    plan = (await subscription_state.plans([rows[0]["plan_id"]]))[rows[0]["plan_id"]]
    return state_from_row(rows[0], plan, Status(rows[0]["status"]))


async def _latest(tenant_id: uuid.UUID, currency: str, at: datetime) -> tuple[datetime, int] | None:
    rows = await fetch(
        "select effective_at, mrr_minor from mrr_changes where tenant_id = {} and currency = {} "
        "and effective_at <= {} order by effective_at desc, id desc limit 1",
        tenant_id,
        currency,
        at,
    )
    return (rows[0]["effective_at"], rows[0]["mrr_minor"]) if rows else None


async def _latest_any(tenant_id: uuid.UUID) -> tuple[str, datetime, int] | None:
    """The tenant's latest row in any currency: its currency, effective time and MRR."""
    rows = await fetch(
        "select currency, effective_at, mrr_minor from mrr_changes where tenant_id = {} "
        "order by effective_at desc, id desc limit 1",
        tenant_id,
    )
    return (rows[0]["currency"], rows[0]["effective_at"], rows[0]["mrr_minor"]) if rows else None


async def _append(tenant_id: uuid.UUID, currency: str, at: datetime, mrr_minor: int, cause: str) -> None:
    await fetch(
        "insert into mrr_changes (tenant_id, currency, effective_at, mrr_minor, cause) values ({}, {}, {}, {}, {})",
        tenant_id,
        currency,
        at,
        mrr_minor,
        cause,
    )


async def record(tenant_id: uuid.UUID, cause: str, at: datetime) -> None:
    """Inside the tenant transaction that changed what the tenant's MRR is computed from, after the write.

    A change never takes effect before the tenant's latest row, so that row is always the current value: a
    subscription started on the day of a cancellation (its first period starts at that midnight, before the
    cancellation) or a boundary crossed late, after a later change was recorded, takes effect at that row's
    instant instead.
    """
    latest = await _latest_any(tenant_id)
    if latest is not None and latest[1] > at:
        at = latest[1]
    state = await tenant_state(tenant_id)
    currency = state.currency
    if currency is None:
        # No live subscription (canceled, or the tenant's erasure): its MRR is 0 from now on, in the currency
        # it was last recorded in.
        if latest is not None and (latest[2] != 0 or cause in TRIAL_CAUSES):
            await _append(tenant_id, latest[0], at, 0, cause)
        return
    latest_row = await _latest(tenant_id, currency, at)
    previous = latest_row[1] if latest_row else 0
    if latest_row is not None:
        for instant in state.addon_instants(latest_row[0], at):
            value = state.mrr_at(instant)
            if value != previous:
                await _append(tenant_id, currency, instant, value, "addon_changed")
                previous = value
    value = state.mrr_at(at)
    if value != previous or cause in TRIAL_CAUSES:
        await _append(tenant_id, currency, at, value, cause)


def subscription_cause(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """Why a subscription write moved MRR, from the row before (None: just created) and after it."""
    now = Status(after["status"])
    if before is None:
        return "trial_started" if now is Status.TRIALING else "subscription_created"
    was = Status(before["status"])
    if was is Status.TRIALING and now in (Status.ACTIVE, Status.PAST_DUE):
        return "trial_converted"
    if was is Status.TRIALING and now is Status.CANCELED:
        return "trial_canceled"
    if now is Status.CANCELED:
        return "subscription_canceled"
    if now is Status.PAUSED and was is not Status.PAUSED:
        return "subscription_paused"
    if was is Status.PAUSED and now is not Status.PAUSED:
        return "subscription_resumed"
    return "subscription_changed"


async def subscription_written(
    tenant_id: uuid.UUID, before: Mapping[str, Any] | None, after: Mapping[str, Any], at: datetime
) -> None:
    await record(tenant_id, subscription_cause(before, after), at)


CATCH_UP_JOB = "record_addon_changes"
# How far back the catch-up looks for an add-on instant nobody recorded: a beat stopped for longer leaves the
# instant to the tenant's next write, which records it at its own time as well.
CATCH_UP_LOOKBACK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class CatchUpReport:
    tenants: int
    failed: int


async def catch_up_addon_changes(now: datetime | None = None, limit: int = 10_000) -> CatchUpReport:
    """Every 10 minutes: tenants with an add-on that became billable or ended since their latest row (a plugin
    trial ending by itself, with no write then) get it recorded at its own time. One tenant per transaction; a
    tenant that fails is counted and left for the next run (an outage stops the run). Safe to run twice: `record`
    appends only a value that differs from the latest row."""
    now = now or datetime.now(UTC)
    async with system_tx(SystemReason.PLATFORM_JOB):
        due = await fetch(
            "select distinct a.tenant_id from subscription_addons a "
            "join subscriptions s on s.id = a.subscription_id and s.tenant_id = a.tenant_id "
            "cross join lateral (values (a.billable_from), (a.ended_at)) as instant(at) "
            "where s.status <> 'canceled' and instant.at > {} and instant.at <= {} "
            "and instant.at > coalesce((select max(m.effective_at) from mrr_changes m "
            "where m.tenant_id = a.tenant_id), '-infinity') limit {}",
            now - CATCH_UP_LOOKBACK,
            now,
            limit,
        )
    failed = 0
    for row in due:
        try:
            async with tenant_tx(row["tenant_id"]):
                await record(row["tenant_id"], "addon_changed", now)
        except Exception as error:
            metrics.stop_batch_on_outage(CATCH_UP_JOB, error)
            metrics.batch_item_failed(CATCH_UP_JOB, error)
            log.exception("recording the MRR of tenant %s failed", row["tenant_id"])
            failed += 1
    return CatchUpReport(len(due) - failed, failed)
