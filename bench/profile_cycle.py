"""Where a billing run's time goes: bill a sample of the seeded subscriptions in-process, under cProfile, with
the database time of every statement recorded.

Seeds the same data as `make bench` (full size by default, since query costs grow with the tables), then runs
`billing.service._cycle.bill_many` (what `run_cycle` runs for each page of due subscriptions) on the first
`--sample` due subscriptions, and prints: time per subscription and the projection for all of them, the
database time per statement, and the top Python functions.

    .venv/bin/python -m bench.profile_cycle [--sample 300] [--subscriptions 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import re
import sys
import time
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from bench import billing_run
from bench.stack import Broken, Stack, api_process, dev_stack, set_up_catalogue


class StatementTimes:
    """Database time per statement (whitespace-normalised SQL text), from asyncpg's query logger."""

    def __init__(self) -> None:
        self.count: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def observe(self, record: Any) -> None:
        sql = re.sub(r"\s+", " ", record.query).strip()
        self.count[sql] += 1
        self.seconds[sql] += record.elapsed

    def report(self, subscriptions: int, top: int = 12) -> str:
        total = sum(self.seconds.values())
        lines = [f"  {'ms/sub':>8} {'calls':>7} {'share':>6}  statement (database round trip as seen by asyncpg)"]
        for sql, seconds in sorted(self.seconds.items(), key=lambda item: -item[1])[:top]:
            lines.append(
                f"  {1000 * seconds / subscriptions:8.2f} {self.count[sql]:7d} {seconds / total:6.1%}  {sql[:150]}"
            )
        calls = sum(self.count.values())
        lines.append(
            f"  {1000 * total / subscriptions:8.2f} {calls:7d} 100.0%  all {calls / subscriptions:.1f} per sub"
        )
        return "\n".join(lines)


async def profile(stack: Stack, sample: int, concurrency: int) -> tuple[float, int, StatementTimes, pstats.Stats]:
    from billing.invoices.cycle import DueSubscription, bill_many, due_batches
    from controlplane.core import db

    times = StatementTimes()
    original = db._observe_query

    def observe(record: Any) -> None:
        original(record)
        times.observe(record)

    db._observe_query = observe  # read when the pool opens each connection
    await db.start_pool(stack.env["DATABASE_URL"], min_size=1, max_size=concurrency + 1)
    try:
        as_of = datetime.fromisoformat(billing_run.AS_OF)
        grace = timedelta(hours=1)
        pairs: list[DueSubscription] = []
        async for page in due_batches(as_of - grace, size=min(sample, 500)):
            pairs += page
            if len(pairs) >= sample:
                break
        pairs = pairs[:sample]
        times.count.clear()
        times.seconds.clear()
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        report = await bill_many(pairs, as_of, grace, concurrency=concurrency)
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        await db.stop_pool()
        db._observe_query = original
    if report.invoices_created != len(pairs) or report.failed:
        raise Broken(f"profiled run: {report}")
    return seconds, len(pairs), times, pstats.Stats(profiler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_cycle", description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000, help="subscriptions seeded (default 10,000)")
    parser.add_argument("--events", type=int, default=100, help="usage events per subscription (default 100)")
    parser.add_argument("--sample", type=int, default=300, help="subscriptions billed under the profiler (default 300)")
    parser.add_argument("--concurrency", type=int, default=4, help="as `billing run --concurrency` (default 4)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's temporary folder")
    args = parser.parse_args(argv)
    try:
        with dev_stack(keep=args.keep) as stack:
            with api_process(stack) as api:
                catalogue = set_up_catalogue(stack, api.url)
            print(f"\n== profile: {args.sample} of {args.subscriptions:,} subscriptions, in-process ==", flush=True)
            asyncio.run(billing_run.seed(stack, catalogue.plan_id, args.subscriptions, args.events))
            seconds, billed, times, stats = asyncio.run(profile(stack, args.sample, args.concurrency))
    except Broken as error:
        print(f"\nBROKEN: {error}", file=sys.stderr)
        return 1
    per_sub = seconds / billed
    print(
        f"  {billed} subscriptions billed in {seconds:.2f} s under cProfile = {1000 * per_sub:.1f} ms each; "
        f"{args.subscriptions:,} would take ~{per_sub * args.subscriptions:.0f} s"
    )
    print("\n-- database time per statement --")
    print(times.report(billed))
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats(order).print_stats(20)
        print(f"\n-- python, top 20 by {order} --")
        print(out.getvalue().split("\n\n", 1)[-1].rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
