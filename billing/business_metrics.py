"""Business gauges, read from the database when the API is scraped (at most once a minute): active tenants,
subscriptions by status, and MRR by currency.

MRR is the recurring (advance-billed) price of every active or past-due subscription normalised to a month
(`Plan.monthly_amount`: a yearly price / 12), summed in `Decimal` per currency and rounded once, by the house
rule. Trials, paused and canceled subscriptions, metered usage and plugin add-ons are not in it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from billing.catalogue.rules import plan_from_row
from billing.money import round_minor
from controlplane.core import metrics
from controlplane.core.db import SystemReason, fetch, system_tx

SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "paused")
MRR_STATUSES = ("active", "past_due")


@dataclass(frozen=True, slots=True)
class Figures:
    active_tenants: int
    subscriptions: dict[str, int]  # every live status, 0 included
    mrr_minor: dict[str, int]  # currency -> minor units


async def read_figures() -> Figures:
    # One read-only system transaction: these are counts across every tenant, for the platform's operators.
    async with system_tx(SystemReason.METRICS):
        tenants = await fetch("select count(*) as n from tenants where status = 'active'")
        statuses = await fetch("select status, count(*) as n from subscriptions where status <> 'canceled' group by 1")
        plans = await fetch(
            "select p.id, p.code, p.version, p.name, p.currency, p.interval, p.trial_days, p.charges, "
            "p.proration_upgrade, p.proration_downgrade, count(*) as subscriptions, sum(s.seats) as seats "
            "from subscriptions s join plans p on p.id = s.plan_id where s.status = any({}) group by p.id",
            list(MRR_STATUSES),
        )
    mrr: dict[str, Decimal] = {}
    for row in plans:
        charges = row["charges"]
        plan = plan_from_row(row, json.loads(charges) if isinstance(charges, str) else charges)
        # The monthly price is linear in seats: a fixed part per subscription and a part per seat.
        fixed = plan.monthly_amount(0)
        per_seat = plan.monthly_amount(1) - fixed
        mrr[plan.currency] = mrr.get(plan.currency, Decimal(0)) + fixed * row["subscriptions"] + per_seat * row["seats"]
    by_status = {status: 0 for status in SUBSCRIPTION_STATUSES} | {row["status"]: int(row["n"]) for row in statuses}
    return Figures(int(tenants[0]["n"]), by_status, {currency: round_minor(amount) for currency, amount in mrr.items()})


def publish(figures: Figures) -> None:
    metrics.ACTIVE_TENANTS.set(figures.active_tenants)
    for status, count in figures.subscriptions.items():
        metrics.SUBSCRIPTIONS.labels(status=status).set(count)
    for currency, amount in figures.mrr_minor.items():
        metrics.MRR_MINOR_UNITS.labels(currency=currency).set(amount)


class BusinessGauges(metrics.ScrapeRefresher):
    """The business gauges, read from the database when the API is scraped."""

    def __init__(self, **options: Any) -> None:
        async def refresh() -> None:
            publish(await read_figures())

        super().__init__("business gauges", refresh, **options)
