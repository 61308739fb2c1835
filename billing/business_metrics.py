"""Business gauges, read from the database when the API is scraped (at most once a minute): active tenants,
subscriptions by status, and per currency MRR, ARR, customers and the current month's trial conversion.

The revenue figures come from the MRR history (billing/analytics/history.py), as the revenue report's do: MRR is
the sum of each tenant's latest MRR (each already rounded once, by the house rule), customers the tenants whose
latest MRR is above 0, ARR 12 x MRR, and trial conversion the trials converted over the trials that ended
(converted or canceled) since the 1st of this month, left out while none has ended.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from billing.analytics.report import Month
from controlplane.core import metrics
from controlplane.core.db import SystemReason, fetch, system_tx

SUBSCRIPTION_STATUSES = ("trialing", "active", "past_due", "paused")


@dataclass(frozen=True, slots=True)
class Revenue:
    mrr_minor: int
    customers: int
    trial_conversion: Fraction | None  # this month's; None while no trial has ended this month

    @property
    def arr_minor(self) -> int:
        return 12 * self.mrr_minor


@dataclass(frozen=True, slots=True)
class Figures:
    active_tenants: int
    subscriptions: dict[str, int]  # every live status, 0 included
    revenue: dict[str, Revenue]  # by currency


async def read_figures(now: datetime | None = None) -> Figures:
    now = now or datetime.now(UTC)
    # One read-only system transaction: these are counts across every tenant, for the platform's operators.
    async with system_tx(SystemReason.METRICS):
        tenants = await fetch("select count(*) as n from tenants where status = 'active'")
        statuses = await fetch("select status, count(*) as n from subscriptions where status <> 'canceled' group by 1")
        latest = await fetch(
            "select currency, sum(mrr_minor) as mrr, count(*) filter (where mrr_minor > 0) as customers from ("
            "select distinct on (tenant_id, currency) currency, mrr_minor from mrr_changes where effective_at <= {} "
            "order by tenant_id, currency, effective_at desc, id desc) as latest group by currency",
            now,
        )
        trials = await fetch(
            "select currency, count(*) filter (where cause = 'trial_converted') as converted, "
            "count(*) filter (where cause = 'trial_canceled') as canceled from mrr_changes "
            "where effective_at >= {} and effective_at <= {} group by currency",
            Month.of(now).start,
            now,
        )
    conversion = {
        row["currency"].strip(): Fraction(row["converted"], row["converted"] + row["canceled"])
        for row in trials
        if row["converted"] + row["canceled"]
    }
    revenue = {
        row["currency"].strip(): Revenue(
            int(row["mrr"]), int(row["customers"]), conversion.get(row["currency"].strip())
        )
        for row in latest
    }
    by_status = {status: 0 for status in SUBSCRIPTION_STATUSES} | {row["status"]: int(row["n"]) for row in statuses}
    return Figures(int(tenants[0]["n"]), by_status, revenue)


def publish(figures: Figures) -> None:
    metrics.ACTIVE_TENANTS.set(figures.active_tenants)
    for status, count in figures.subscriptions.items():
        metrics.SUBSCRIPTIONS.labels(status=status).set(count)
    metrics.TRIAL_CONVERSION_RATIO.clear()  # a currency whose trials have not ended this month has no ratio
    for currency, revenue in figures.revenue.items():
        metrics.MRR_MINOR_UNITS.labels(currency=currency).set(revenue.mrr_minor)
        metrics.ARR_MINOR_UNITS.labels(currency=currency).set(revenue.arr_minor)
        metrics.CUSTOMERS.labels(currency=currency).set(revenue.customers)
        if revenue.trial_conversion is not None:
            metrics.TRIAL_CONVERSION_RATIO.labels(currency=currency).set(float(revenue.trial_conversion))


class BusinessGauges(metrics.ScrapeRefresher):
    """The business gauges, read from the database when the API is scraped."""

    def __init__(self, **options: Any) -> None:
        async def refresh() -> None:
            publish(await read_figures())

        super().__init__("business gauges", refresh, **options)
