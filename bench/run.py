"""`make bench`: the control plane's figures, each measured on a dev stack of its own.

1. Ingestion: events/s through `POST /v1/usage` (batches of 1,000, one API process) next to the raw limit,
   the same INSERT … ON CONFLICT DO NOTHING (as `insert_usage_events` builds it) straight through asyncpg, in
   the same run.
   Target: the API reaches at least half the raw limit.
2. Billing run: 10,000 active subscriptions (flat + metered, 100 events each) invoiced by one worker
   process (`controlplane billing run`). Target: 30 s or less; a rerun adds 0 invoices.
3. Entitlement check: requests/s and p50/p99 at 16 connections next to a bare Litestar handler served
   alike, in the same run, with the rate limiter on (and, for comparison, off). Target: with the limiter,
   at least 0.45 of the bare handler's requests/s.
4. Licenses: tokens/s signed through OpenBao transit, and verified offline.
5. Revenue report: 36 months of MRR history, 10,000 tenants with 10 changes each in one currency, timed as the
   pure report, through the service (the read and the report) and through `GET /v1/analytics/revenue`.
   Target: under 1 s.
6. CRUD latency: `wrk -t2 -c50` on a tenant admin's reads (the tenant, its members, its invoices) and the
   entitlement check, each next to the bare handler, both served by as many API processes as `controlplane run`
   starts. Target: each route at least 0.15 of the bare handler's requests/s, with p95 under 25 ms.

A report, not a test: a missed target still exits 0. Exit 1 means something is broken (an error, a wrong
invoice count or amount, a rerun that adds invoices, revenue figures other than the report's), so the figures
mean nothing.

    .venv/bin/python -m bench.run --help
"""

from __future__ import annotations

import argparse
import sys
import time

from bench import billing_run, crud, entitlements, ingestion, licenses, revenue_report
from bench.stack import Broken, api_process, dev_stack, set_up_catalogue
from controlplane.cli import default_api_workers

INGESTION_TARGET = 0.5  # API events/s over raw events/s
BILLING_TARGET_SECONDS = 30.0
ENTITLEMENT_TARGET = 0.45  # rate-limited check requests/s over bare handler requests/s


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=200, help="timed batches per side and round (default 200)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1,000)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent ingestion clients (default 4)")
    parser.add_argument("--rounds", type=int, default=3, help="ingestion rounds, API then raw; medians (default 3)")
    parser.add_argument("--subscriptions", type=int, default=10_000, help="subscriptions to bill (default 10,000)")
    parser.add_argument("--events", type=int, default=100, help="usage events per subscription (default 100)")
    parser.add_argument("--concurrency", type=int, default=4, help="billing run concurrency (default 4)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per entitlement round (default 5)")
    parser.add_argument("--revenue-tenants", type=int, default=10_000, help="tenants with MRR history (default 10,000)")
    parser.add_argument("--revenue-changes", type=int, default=10, help="MRR changes per tenant (default 10)")
    parser.add_argument("--revenue-repeats", type=int, default=5, help="timed revenue reports per path (default 5)")
    parser.add_argument(
        "--only",
        choices=("ingestion", "billing", "entitlements", "licenses", "revenue", "crud"),
        help="run one of the benchmarks",
    )
    parser.add_argument("--crud-seconds", type=float, default=10.0, help="seconds per CRUD route (default 10)")
    parser.add_argument("--keep", action="store_true", help="keep the stack's temporary folder (logs, data)")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    try:
        with dev_stack(keep=args.keep) as stack:
            with api_process(stack) as api:
                catalogue = set_up_catalogue(stack, api.url)
                ingested = None
                if args.only in (None, "ingestion"):
                    ingested = ingestion.run(
                        api,
                        stack,
                        catalogue.tenant_id,
                        catalogue.api_key,
                        batches=args.batches,
                        size=args.batch_size,
                        clients=args.clients,
                        rounds=args.rounds,
                    )
                checked = None
                if args.only in (None, "entitlements"):
                    with (
                        api_process(stack, "bench.bare_app:create_bare_app", "/constant") as bare,
                        api_process(stack, rate_limited=False) as unlimited,
                    ):
                        checked = entitlements.run(
                            api, unlimited, bare, catalogue, seconds=args.seconds, rounds=args.rounds
                        )
                crud_results = None
                if args.only in (None, "crud"):
                    workers = default_api_workers()
                    with (
                        api_process(stack, workers=workers) as served,
                        api_process(stack, "bench.bare_app:create_bare_app", "/constant", workers=workers) as bare,
                    ):
                        crud_results = crud.run(stack, served, bare, catalogue, seconds=args.crud_seconds)
                reported = None
                if args.only in (None, "revenue"):
                    reported = revenue_report.run(
                        stack,
                        api,
                        catalogue.staff_headers,
                        tenants=args.revenue_tenants,
                        changes_each=args.revenue_changes,
                        repeats=args.revenue_repeats,
                    )
            licensed = licenses.measure(stack.env) if args.only in (None, "licenses") else None
            billed = None
            if args.only in (None, "billing"):
                billed = billing_run.run(
                    stack,
                    catalogue.plan_id,
                    subscriptions=args.subscriptions,
                    events=args.events,
                    concurrency=args.concurrency,
                )
    except Broken as error:
        print(f"\nBROKEN: {error}", file=sys.stderr)
        return 1

    print(f"\n== summary ({time.perf_counter() - started:.0f} s in all) ==")
    if ingested is not None:
        api_rate, raw_rate, ratio = ingested.api.per_second, ingested.raw.per_second, ingested.ratio
        rounds = len(ingested.api_rounds)
        print(
            f"ingestion  API {api_rate:,.0f} events/s, raw limit {raw_rate:,.0f} events/s (medians of {rounds})"
            f"   API/raw = {ratio:.2f} (target >= {INGESTION_TARGET:.2f})   {_verdict(ratio >= INGESTION_TARGET)}"
        )
    if billed is not None:
        first, added = billed.first, billed.invoices_added
        print(
            f"billing    {added:,} invoices in {first.seconds:.1f} s, {added / first.seconds:,.0f} invoices/s "
            f"(run_cycle itself {first.cycle_seconds:.1f} s)"
            f"   30 s / measured = {BILLING_TARGET_SECONDS / first.seconds:.2f} (target >= 1.00)"
            f"   {_verdict(first.seconds <= BILLING_TARGET_SECONDS)}"
        )
        print(f"rerun      {billed.rerun_added} new invoices in {billed.rerun.seconds:.1f} s   OK")
    if checked is not None:
        check, bare, off = checked.check, checked.bare, checked.unlimited
        print(
            f"check      rate limited {check.per_second:,.0f} req/s, p50 {check.percentile(50):.2f} ms, "
            f"p99 {check.percentile(99):.2f} ms; without the limiter {off.per_second:,.0f} req/s "
            f"(p99 {off.percentile(99):.2f} ms); bare handler {bare.per_second:,.0f} req/s "
            f"(p99 {bare.percentile(99):.2f} ms)   check/bare = {checked.ratio:.2f} "
            f"(without the limiter {checked.unlimited_ratio:.2f}; target >= {ENTITLEMENT_TARGET:.2f})   "
            f"{_verdict(checked.ratio >= ENTITLEMENT_TARGET)}"
        )
    if licensed is not None:
        print(
            f"licenses   issuance {licensed.sequential.per_second:,.0f} tokens/s sequential, "
            f"{licensed.threaded.per_second:,.0f} tokens/s with {licensed.threads} threads (OpenBao transit); "
            f"verification {licensed.verification.per_second:,.0f} tokens/s offline"
        )
    if reported is not None:
        service, http = reported.service, reported.http
        print(
            f"revenue    {reported.changes:,} changes, {reported.months} months: pure report "
            f"{reported.pure.median:.2f} s, service {service.median:.2f} s, HTTP {http.median:.2f} s (medians of "
            f"{len(service.seconds)})   target < {revenue_report.TARGET_SECONDS:.0f} s   "
            f"{_verdict(service.median < revenue_report.TARGET_SECONDS)}"
        )
    for result in crud_results or []:
        print(
            f"crud       {result.route}: {result.load.per_second:,.0f} req/s = {result.ratio:.2f} of bare, "
            f"p50 {result.load.p50_ms:.1f} ms, p95 {result.load.p95_ms:.1f} ms, p99 {result.load.p99_ms:.1f} ms"
            f"   target >= {crud.TARGET_RATIO:.2f} and p95 < {crud.TARGET_P95_MS:.0f} ms   {_verdict(result.met)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
