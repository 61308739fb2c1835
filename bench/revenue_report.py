"""Revenue report: 36 months of MRR history, 10,000 tenants with 10 changes each in one currency.

The history is generated (seeded random, so every run is the same): each tenant walks through trials, sign-ups,
upgrades and downgrades, discounts, add-ons, pauses, cancellations and reactivations, at random instants between
the start of the first month and now. It is seeded in bulk SQL as the owner in the platform scope, in its own
currency so no other benchmark's rows mix in. Then three paths are timed on the same data:

1. the pure `revenue_report` over the changes, already in memory;
2. the service, `billing.analytics.service.revenue` as staff, in this process with a pool of its own: the
   read of `mrr_changes` in a system transaction, the rows turned into `Change`s, and the report;
3. `GET /v1/analytics/revenue` on the API process: the service plus HTTP and JSON.

Each is run once to warm up, then `repeats` times: best and median. All three must give the figures the pure
report gives over the generated history (else `Broken`: the timings would be of something else).
Target: under 1 s for one currency.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import httpx

from bench.stack import ApiProcess, Broken, Stack
from billing.analytics import service
from billing.analytics.report import Change, Month, MonthFigures, revenue_report
from controlplane.core import db
from controlplane.core.auth.principal import Principal

TARGET_SECONDS = 1.0
MONTHS = 36
REVENUE_CURRENCY = "USD"  # the other benchmarks bill in EUR
SLUG_PREFIX = "rev-"
SEED = 18  # issue 18
LIST_PRICES = (900, 1900, 2900, 4900, 9900, 19900)  # a month, per seat, in minor units
ADDON_PRICES = (0, 500, 1000, 2500)

SEED_TENANTS = """
insert into tenants (id, name, slug, currency)
select id, 'Revenue bench ' || n, $2 || lpad(n::text, 6, '0'), $3
from unnest($1::uuid[]) with ordinality as seeded (id, n)
"""
# In the order given, so the ids (the report's tie-break) follow the generated order.
SEED_CHANGES = """
insert into mrr_changes (tenant_id, currency, effective_at, mrr_minor, cause)
select tenant_id, $1, effective_at, mrr_minor, cause
from unnest($2::uuid[], $3::timestamptz[], $4::bigint[], $5::text[]) with ordinality
    as seeded (tenant_id, effective_at, mrr_minor, cause, n)
order by n
"""


@dataclass(frozen=True)
class Timing:
    seconds: list[float]

    @property
    def best(self) -> float:
        return min(self.seconds)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


@dataclass(frozen=True)
class RevenueResult:
    tenants: int
    changes: int
    months: int
    pure: Timing
    service: Timing
    http: Timing


class _Tenant:
    """One tenant's subscription while its history is generated: what it pays follows from these."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.status = "none"  # none, trialing, active, paused, canceled
        self.list_price = rng.choice(LIST_PRICES)
        self.seats = 1
        self.discount_percent = 0
        self.addons = 0

    @property
    def mrr(self) -> int:
        if self.status != "active":
            return 0
        gross = self.list_price * self.seats
        return (gross * (100 - self.discount_percent) + 50) // 100 + self.addons  # half up

    def step(self) -> str:
        """Moves the subscription on by one change; returns its cause."""
        rng = self.rng
        if self.status in ("none", "canceled"):
            if rng.random() < 0.4:
                self.status = "trialing"
                return "trial_started"
            self.status, self.seats, self.discount_percent, self.addons = "active", rng.randint(1, 3), 0, 0
            return "subscription_created"
        if self.status == "trialing":
            if rng.random() < 0.7:
                self.status = "active"
                return "trial_converted"
            self.status = "canceled"
            return "trial_canceled"
        if self.status == "paused":
            self.status = "active"
            return "subscription_resumed"
        roll = rng.random()
        if roll < 0.25:  # an upgrade: more seats or a dearer plan
            if rng.random() < 0.5 or self.list_price == LIST_PRICES[-1]:
                self.seats += rng.randint(1, 5)
            else:
                self.list_price = LIST_PRICES[LIST_PRICES.index(self.list_price) + 1]
            return "subscription_changed"
        if roll < 0.40:  # a downgrade
            if self.seats > 1:
                self.seats = rng.randint(1, self.seats - 1)
            elif self.list_price != LIST_PRICES[0]:
                self.list_price = LIST_PRICES[LIST_PRICES.index(self.list_price) - 1]
            return "subscription_changed"
        if roll < 0.55:
            if self.discount_percent:
                self.discount_percent = 0
                return "discount_ended"
            self.discount_percent = rng.choice((10, 15, 20, 25, 50))
            return "discount_applied"
        if roll < 0.70:
            self.addons = rng.choice(ADDON_PRICES)
            return "addon_changed"
        if roll < 0.77:
            self.status = "paused"
            return "subscription_paused"
        self.status = "canceled"
        return "subscription_canceled"


def history(tenants: int, changes_each: int, since: datetime, until: datetime) -> tuple[list[uuid.UUID], list[Change]]:
    """`tenants` ids and their `changes_each` changes each at instants in [since, until), sorted by time."""
    rng = random.Random(SEED)  # noqa: S311 - a reproducible load, not a secret
    span = int((until - since) / timedelta(microseconds=1))
    ids: list[uuid.UUID] = []
    changes: list[Change] = []
    for _ in range(tenants):
        tenant_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        ids.append(tenant_id)
        tenant = _Tenant(rng)
        for offset in sorted(rng.randrange(span) for _ in range(changes_each)):
            cause = tenant.step()
            changes.append(Change(tenant_id, since + timedelta(microseconds=offset), tenant.mrr, cause))
    changes.sort(key=lambda change: change.at)  # stable: a tenant's changes at one instant keep their order
    return ids, changes


async def seed(stack: Stack, ids: list[uuid.UUID], changes: list[Change]) -> None:
    connection = await stack.owner()
    try:
        started = time.perf_counter()
        async with connection.transaction():
            await connection.execute(SEED_TENANTS, ids, SLUG_PREFIX, REVENUE_CURRENCY)
            await connection.execute(
                SEED_CHANGES,
                REVENUE_CURRENCY,
                [change.tenant_id for change in changes],
                [change.at for change in changes],
                [change.mrr_minor for change in changes],
                [change.cause for change in changes],
            )
        seeded = time.perf_counter()
        # A live database has had its autovacuum and statistics; a fresh bulk load has not.
        await connection.execute("vacuum (analyze) tenants, mrr_changes")
        print(
            f"  seeded {len(ids):,} tenants and {len(changes):,} MRR changes in {seeded - started:.1f} s "
            f"(+ vacuum analyze {time.perf_counter() - seeded:.1f} s)",
            flush=True,
        )
    finally:
        await connection.close()


def _timed(call: Callable[[], object], repeats: int) -> Timing:
    call()  # warm up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return Timing(seconds)


async def _time_service(stack: Stack, first: Month, last: Month, repeats: int) -> tuple[Timing, list[MonthFigures]]:
    staff = Principal(kind="user", id=uuid.uuid4(), is_staff=True)  # what the guard hands the service
    await db.start_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        figures = await service.revenue(staff, first, last, REVENUE_CURRENCY, None)  # warm up
        seconds = []
        for _ in range(repeats):
            started = time.perf_counter()
            figures = await service.revenue(staff, first, last, REVENUE_CURRENCY, None)
            seconds.append(time.perf_counter() - started)
        return Timing(seconds), figures
    finally:
        await db.stop_pool()


def _verdict(seconds: float) -> str:
    return "PASS" if seconds < TARGET_SECONDS else "MISS"


def run(
    stack: Stack, api: ApiProcess, staff_headers: dict[str, str], *, tenants: int, changes_each: int, repeats: int
) -> RevenueResult:
    print(
        f"\n== revenue report: {tenants:,} tenants x {changes_each} MRR changes over {MONTHS} months, "
        f"one currency ({REVENUE_CURRENCY}); best and median of {repeats} ==",
        flush=True,
    )
    now = datetime.now(UTC)
    last = Month.of(now)
    first = last
    for _ in range(MONTHS - 1):
        first = first.previous()
    ids, changes = history(tenants, changes_each, first.start, now)
    asyncio.run(seed(stack, ids, changes))
    # Every change is before `now`, so the report is the same at any later instant in the current month.
    expected = revenue_report(changes, first, last, now)
    if expected[-1].mrr_end_minor <= 0 or sum(month.churned_customers for month in expected) == 0:
        raise Broken("the generated history has no MRR or no churn: not a realistic load")

    pure = _timed(lambda: revenue_report(changes, first, last, now), repeats)
    print(f"  pure report        best {pure.best:.3f} s, median {pure.median:.3f} s", flush=True)

    served, figures = asyncio.run(_time_service(stack, first, last, repeats))
    if figures != expected:
        raise Broken("the service's figures differ from the report over the generated history")
    print(f"  service            best {served.best:.3f} s, median {served.median:.3f} s", flush=True)

    params = {"from": str(first), "to": str(last), "currency": REVENUE_CURRENCY}
    bodies: list[object] = []
    with httpx.Client(base_url=api.url, headers=staff_headers, timeout=120) as client:

        def get() -> None:
            response = client.get("/v1/analytics/revenue", params=params)
            if response.status_code != 200:
                raise Broken(f"GET /v1/analytics/revenue: {response.status_code} {response.text[:2000]}")
            bodies.append(response.json())

        http = _timed(get, repeats)
    wanted = {"currency": REVENUE_CURRENCY, "months": [asdict(month) for month in expected]}
    if any(body != wanted for body in bodies):
        raise Broken("GET /v1/analytics/revenue answered other figures than the report over the generated history")
    print(f"  GET /v1/analytics/revenue  best {http.best:.3f} s, median {http.median:.3f} s", flush=True)

    result = RevenueResult(tenants, len(changes), MONTHS, pure, served, http)
    print_table(result)
    return result


def print_table(result: RevenueResult) -> None:
    print(
        f"\n  revenue report, {result.changes:,} changes of {result.tenants:,} tenants, {result.months} months:\n"
        f"  {'path':<34} {'best':>8} {'median':>8}   target"
    )
    for name, timing in (
        ("pure revenue_report", result.pure),
        ("service (SQL + rows + report)", result.service),
        ("GET /v1/analytics/revenue", result.http),
    ):
        print(
            f"  {name:<34} {timing.best:>6.3f} s {timing.median:>6.3f} s   < {TARGET_SECONDS:.0f} s "
            f"{_verdict(timing.median)}"
        )
