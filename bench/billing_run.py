"""Billing run: N active subscriptions (flat + metered, 100 events each) invoiced by one worker process.

The data is seeded in bulk SQL as the owner in the platform scope (the API would take longer than the run
being measured), then `controlplane billing run` bills it as a subprocess: the real path, one process with
its own pool. A rerun must add no invoice.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from bench.stack import CURRENCY, FLAT_MINOR, METRIC_CODE, UNIT_MINOR, Broken, Stack

PERIOD_START = datetime(2026, 1, 1, tzinfo=UTC)
PERIOD_END = datetime(2026, 2, 1, tzinfo=UTC)
AS_OF = "2026-02-01T02:00:00+00:00"  # past the boundary and the default 1 h usage grace
SLUG_PREFIX = "bill-"
REPORT_LINE = re.compile(
    r"subscriptions seen: (?P<seen>\d+), invoices created: (?P<created>\d+), already billed: (?P<already>\d+), "
    r"drafts finalized: (?P<drafts>\d+), failed: (?P<failed>\d+) \((?P<seconds>[\d.]+) s\)"
)

# Interleaved in time across tenants, as real traffic arrives: event e of every tenant, then e + 1, …
# 100 events x 7 h + up to 10,000 s stays inside January.
SEED_SQL = (
    """
insert into tenants (id, name, slug, currency)
select gen_random_uuid(), 'Billing bench ' || n, $1 || lpad(n::text, 6, '0'), $2
from generate_series(1, $3::int) as n
""",
    """
insert into subscriptions (id, tenant_id, plan_id, seats, status, billing_anchor, anchor_date, started_at,
    current_period_start, current_period_end, usage_from)
select gen_random_uuid(), t.id, $1, 1, 'active', 'calendar', $2::timestamptz::date, $2, $2, $3, $2
from tenants t where t.slug like $4 || '%'
""",
    """
insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at, value, properties)
select t.id, 'seed-' || e, $1, $2::timestamptz + e * interval '7 hours' + t.n * interval '1 second', 1,
    '{"endpoint": "/v1/things", "region": "eu-west"}'::jsonb
from generate_series(1, $3::int) as e
cross join (select id, row_number() over (order by slug) as n from tenants where slug like $4 || '%') as t
order by e, t.n
""",
)


@dataclass(frozen=True)
class CliRun:
    seconds: float  # wall clock of the whole process, start-up included
    cycle_seconds: float  # what run_cycle itself reports
    created: int
    seen: int
    failed: int


@dataclass(frozen=True)
class BillingResult:
    subscriptions: int
    first: CliRun
    rerun: CliRun
    invoices_added: int
    rerun_added: int


async def seed(stack: Stack, plan_id: uuid.UUID, subscriptions: int, events: int) -> None:
    connection = await stack.owner()
    try:
        started = time.perf_counter()
        async with connection.transaction():
            # Exactly the data set of the target: no rows left over from the ingestion benchmark.
            await connection.execute("truncate usage_events")
            await connection.execute(SEED_SQL[0], SLUG_PREFIX, CURRENCY, subscriptions)
            await connection.execute(SEED_SQL[1], plan_id, PERIOD_START, PERIOD_END, SLUG_PREFIX)
            await connection.execute(SEED_SQL[2], METRIC_CODE, PERIOD_START, events, SLUG_PREFIX)
        seeded = time.perf_counter()
        # A live database has had its autovacuum and statistics; a fresh bulk load has not.
        await connection.execute("vacuum (analyze) tenants, subscriptions, usage_events")
        print(
            f"  seeded {subscriptions:,} tenants and subscriptions, {subscriptions * events:,} usage events "
            f"in {seeded - started:.1f} s (+ vacuum analyze {time.perf_counter() - seeded:.1f} s)",
            flush=True,
        )
    finally:
        await connection.close()


async def count_invoices(stack: Stack) -> int:
    connection = await stack.owner()
    try:
        return int(await connection.fetchval("select count(*) from invoices"))
    finally:
        await connection.close()


async def check_billed(stack: Stack, subscriptions: int, events: int) -> None:
    """Every seeded subscription has exactly one finalized cycle invoice of the expected amount, and has moved on."""
    expected_total = FLAT_MINOR + int((Decimal(UNIT_MINOR) * events).to_integral_value(ROUND_HALF_UP))
    connection = await stack.owner()
    try:
        row = await connection.fetchrow(
            """
            select count(*) as invoices,
                   count(*) filter (where i.status = 'finalized' and i.number is not null) as finalized,
                   count(*) filter (where i.total_minor = $3) as right_total,
                   count(distinct i.subscription_id) as subscriptions
            from invoices i join tenants t on t.id = i.tenant_id
            where t.slug like $1 || '%' and i.kind = 'cycle' and i.cycle_boundary = $2
            """,
            SLUG_PREFIX,
            PERIOD_END,
            expected_total,
        )
        moved = await connection.fetchval(
            "select count(*) from subscriptions s join tenants t on t.id = s.tenant_id "
            "where t.slug like $1 || '%' and s.current_period_start = $2 and s.usage_from = $2",
            SLUG_PREFIX,
            PERIOD_END,
        )
    finally:
        await connection.close()
    wanted = {"invoices": subscriptions, "finalized": subscriptions, "right_total": subscriptions}
    wanted["subscriptions"] = subscriptions
    got = dict(row)
    if got != wanted or moved != subscriptions:
        raise Broken(
            f"after the billing run: {got}, subscriptions moved to the next period: {moved}; "
            f"expected {wanted} (total {expected_total} minor units each) and {subscriptions} moved"
        )


def billing_cli(stack: Stack, concurrency: int, already: int, progress_every: float = 30.0) -> CliRun:
    """`controlplane billing run` as its own process, as an operator (or cron) would run it; while it runs,
    the invoices written so far are counted every `progress_every` seconds."""
    executable = Path(sys.executable).with_name("controlplane")
    command = [str(executable), "billing", "run", "--as-of", AS_OF, "--concurrency", str(concurrency)]
    output = stack.root / "billing-run.log"
    started = time.perf_counter()
    with output.open("w") as log:
        process = subprocess.Popen(command, env=stack.process_env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
        while True:
            try:
                process.wait(timeout=progress_every)
                break
            except subprocess.TimeoutExpired:
                written = asyncio.run(count_invoices(stack)) - already
                elapsed = time.perf_counter() - started
                print(f"    … {written:,} invoices after {elapsed:.0f} s ({written / elapsed:,.0f}/s)", flush=True)
    seconds = time.perf_counter() - started
    text = output.read_text()
    match = REPORT_LINE.search(text)
    if process.returncode != 0 or match is None:
        raise Broken(f"`{' '.join(command[1:])}` exited with {process.returncode}:\n{text[-5000:]}")
    print(f"    {match.group(0)}", flush=True)
    return CliRun(
        seconds=seconds,
        cycle_seconds=float(match["seconds"]),
        created=int(match["created"]),
        seen=int(match["seen"]),
        failed=int(match["failed"]),
    )


def run(stack: Stack, plan_id: uuid.UUID, *, subscriptions: int, events: int, concurrency: int) -> BillingResult:
    print(
        f"\n== billing run: {subscriptions:,} active subscriptions (flat + metered, {events} events each), "
        f"one worker process, concurrency {concurrency} ==",
        flush=True,
    )
    asyncio.run(seed(stack, plan_id, subscriptions, events))
    before = asyncio.run(count_invoices(stack))
    print(f"  controlplane billing run --as-of {AS_OF}", flush=True)
    first = billing_cli(stack, concurrency, before)
    after = asyncio.run(count_invoices(stack))
    print(f"    {after - before:,} invoices in {first.seconds:.1f} s (process wall clock)", flush=True)
    asyncio.run(check_billed(stack, subscriptions, events))
    print("  rerun (must add nothing)", flush=True)
    rerun = billing_cli(stack, concurrency, after)
    again = asyncio.run(count_invoices(stack))
    print(f"    {again - after:,} invoices in {rerun.seconds:.1f} s", flush=True)
    result = BillingResult(subscriptions, first, rerun, after - before, again - after)
    if result.invoices_added != subscriptions or first.created != subscriptions:
        raise Broken(
            f"the billing run added {result.invoices_added} invoices (reported {first.created}); "
            f"expected {subscriptions}"
        )
    if result.rerun_added != 0 or rerun.created != 0:
        raise Broken(f"the rerun added {result.rerun_added} invoices (reported {rerun.created}); expected 0")
    return result
