"""Helpers of the billing-cycle fault tests: bulk seeding of due subscriptions (as the owner, in SQL),
the `controlplane billing run` command as a subprocess, and the exactly-once checks on what is stored.

Seeding goes behind the application's back on purpose: a thousand tenants through the API would take
minutes. The rows are the ones the service would write for a calendar subscription started on
2026-01-01 whose first period was never billed: its first invoice is the boundary 2026-02-01, numbered
{SLUG}-000001.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from billing.catalogue.rules import charge_to_json, parse_charges

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2026-02-01T02:00:00+00:00"  # one hour past the boundary and the default one-hour usage grace
PERIOD_START = datetime(2026, 1, 1, tzinfo=UTC)
BOUNDARY = datetime(2026, 2, 1, tzinfo=UTC)
NEXT_BOUNDARY = datetime(2026, 3, 1, tzinfo=UTC)
EVENTS_PER_TENANT = 3
# 3 events x 0.5 = 1.5 -> 2 (metered, in arrears for January), then 1000 flat for February.
EXPECTED_LINES = [2, 1000]
TAX_RATE_BPS = 2000
EXPECTED_TOTAL = 1002 + 200  # 20 % of 1002 = 200.4 -> 200
CHARGES = [
    {"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "0.5"},
    {"type": "flat", "amount_minor": 1000},
]
SUMMARY = re.compile(
    r"subscriptions seen: (?P<seen>\d+), invoices created: (?P<created>\d+), already billed: (?P<already>\d+), "
    r"drafts finalized: (?P<finalized>\d+), failed: (?P<failed>\d+)"
)


@dataclass(frozen=True)
class Seeded:
    tenant_id: uuid.UUID
    slug: str
    subscription_id: uuid.UUID


async def seed_catalogue(inspector: asyncpg.Connection) -> uuid.UUID:
    """The metric `api_calls` and plan `pro` v1 (flat 1000 + 0.5 per call, EUR, monthly); the plan's id."""
    await inspector.execute(
        "insert into billable_metrics (id, code, name, aggregation) values ($1, 'api_calls', 'API calls', 'count')",
        uuid.uuid4(),
    )
    plan_id = uuid.uuid4()
    await insert_plan(inspector, plan_id, "pro", [charge_to_json(charge) for charge in parse_charges(CHARGES)])
    return plan_id


async def insert_plan(inspector: asyncpg.Connection, plan_id: uuid.UUID, code: str, charges: Any) -> None:
    """A plan row as stored; `charges` is written as given (the table does not check it)."""
    await inspector.execute(
        "insert into plans (id, code, version, name, currency, interval, trial_days, charges, proration_upgrade, "
        "proration_downgrade) values ($1, $2, 1, $2, 'EUR', 'month', 0, $3::jsonb, 'immediate', 'next_period')",
        plan_id,
        code,
        json.dumps(charges),
    )


async def seed_due_subscriptions(inspector: asyncpg.Connection, count: int, plan_id: uuid.UUID) -> list[Seeded]:
    """`count` tenants, each with one active monthly subscription due at 2026-02-01 and three usage events
    in January; in one transaction of a few set-based statements (about a second for a thousand)."""
    async with inspector.transaction():
        tenants = await inspector.fetch(
            "insert into tenants (id, name, slug, currency, tax_rate_bps) "
            "select gen_random_uuid(), 'Billed ' || i, 'bc-' || lpad(i::text, 6, '0'), 'EUR', $2 "
            "from generate_series(1, $1) as i returning id, slug",
            count,
            TAX_RATE_BPS,
        )
        ids = [row["id"] for row in tenants]
        subscriptions = await inspector.fetch(
            "insert into subscriptions (id, tenant_id, plan_id, seats, status, billing_anchor, anchor_date, "
            "started_at, current_period_start, current_period_end, usage_from) "
            "select gen_random_uuid(), t, $2, 1, 'active', 'calendar', $5, $3, $3, $4, $3 "
            "from unnest($1::uuid[]) as t returning id, tenant_id",
            ids,
            plan_id,
            PERIOD_START,
            BOUNDARY,
            PERIOD_START.date(),
        )
        await inspector.execute(
            "insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at) "
            "select t, 'seed-' || k, 'api_calls', $2::timestamptz + k * interval '1 hour' "
            "from unnest($1::uuid[]) as t cross join generate_series(1, $3) as k",
            ids,
            datetime(2026, 1, 20, tzinfo=UTC),
            EVENTS_PER_TENANT,
        )
    slugs = {row["id"]: row["slug"] for row in tenants}
    return sorted(
        (Seeded(row["tenant_id"], slugs[row["tenant_id"]], row["id"]) for row in subscriptions),
        key=lambda seeded: seeded.subscription_id,
    )


# -- the command --------------------------------------------------------------------------------------


def cli_env(stack_env: dict[str, str], application_name: str | None = None) -> dict[str, str]:
    """The stack env, as tests/e2e/test_cli.py runs the command; with an application name on the app role's
    connections, so the test can tell when the database has let go of a killed run's sessions."""
    env = {**os.environ, **stack_env}
    if application_name:
        parts = urlsplit(env["DATABASE_URL"])
        query = "&".join(filter(None, [parts.query, f"application_name={application_name}"]))
        env["DATABASE_URL"] = urlunsplit(parts._replace(query=query))
    return env


def billing_command(concurrency: int = 4, as_of: str = AS_OF) -> list[str]:
    return [
        sys.executable,
        "-m",
        "controlplane.cli",
        "billing",
        "run",
        "--as-of",
        as_of,
        "--concurrency",
        str(concurrency),
    ]


def start_billing(stack_env: dict[str, str], out: IO[str], *, application_name: str) -> subprocess.Popen[bytes]:
    """The command in the background, both streams to `out`."""
    return subprocess.Popen(  # noqa: S603 (our own interpreter and module)
        billing_command(), cwd=REPO, env=cli_env(stack_env, application_name), stdout=out, stderr=out
    )


def run_billing(
    stack_env: dict[str, str], concurrency: int = 4, timeout: float = 300, as_of: str = AS_OF
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own interpreter and module)
        billing_command(concurrency, as_of),
        cwd=REPO,
        env=cli_env(stack_env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def summary_of(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The counts of the command's summary line ("subscriptions seen: …, invoices created: N, …")."""
    found = SUMMARY.search(result.stdout)
    assert found, f"no summary line (exit {result.returncode}):\n{result.stdout}\n{result.stderr}"
    return {name: int(value) for name, value in found.groupdict().items()}


# -- what is stored -----------------------------------------------------------------------------------


async def count_invoices(inspector: asyncpg.Connection) -> int:
    return int(await inspector.fetchval("select count(*) from invoices"))


async def sessions_named(inspector: asyncpg.Connection, application_name: str) -> int:
    """Backends with this application name (visible to every role, unlike their state)."""
    return int(
        await inspector.fetchval("select count(*) from pg_stat_activity where application_name = $1", application_name)
    )


async def assert_consistent(inspector: asyncpg.Connection, seeded: list[Seeded]) -> int:
    """Whatever the run got to: each subscription is either billed once for 2026-02-01 (a finalized,
    complete invoice numbered {SLUG}-000001 and its period advanced, all committed together) or untouched
    (no invoice, period still January, no number taken). Returns how many are billed."""
    rows = await inspector.fetch(
        """
        select s.id, s.current_period_start, s.current_period_end, s.usage_from, s.status, t.slug, t.invoice_sequence,
               (select count(*) from invoices i where i.subscription_id = s.id) as invoices,
               (select count(*) from invoices i where i.subscription_id = s.id and i.status = 'finalized') as finalized,
               (select array_agg(i.number) from invoices i where i.subscription_id = s.id) as numbers
        from subscriptions s join tenants t on t.id = s.tenant_id
        where s.id = any($1::uuid[])
        """,
        [item.subscription_id for item in seeded],
    )
    assert len(rows) == len(seeded)
    billed = 0
    problems = []
    for row in rows:
        state = dict(row)
        if row["invoices"] == 0:
            ok = (
                row["current_period_start"] == PERIOD_START
                and row["current_period_end"] == BOUNDARY
                and row["invoice_sequence"] == 0
            )
        else:
            billed += 1
            ok = (
                row["invoices"] == 1
                and row["finalized"] == 1
                and row["numbers"] == [f"{row['slug'].upper()}-000001"]
                and row["invoice_sequence"] == 1
                and (row["current_period_start"], row["current_period_end"]) == (BOUNDARY, NEXT_BOUNDARY)
                and row["usage_from"] == BOUNDARY
                and row["status"] == "active"
            )
        if not ok:
            problems.append(state)
    assert not problems, f"{len(problems)} subscriptions in an impossible state, e.g. {problems[:3]}"

    duplicates = await inspector.fetch(
        "select subscription_id, cycle_boundary, count(*) as n from invoices "
        "group by subscription_id, cycle_boundary having count(*) > 1"
    )
    assert not duplicates, duplicates[:5]
    invoices = await inspector.fetch(
        """
        select i.id, i.kind, i.cycle_boundary, i.period_start, i.period_end, i.subtotal_minor, i.tax_minor,
               i.total_minor, i.amount_due_minor, i.currency,
               array_agg(l.amount_minor order by l.position) filter (where l.id is not null) as lines
        from invoices i left join invoice_lines l on l.invoice_id = i.id
        group by i.id
        """
    )
    assert len(invoices) == billed, (len(invoices), billed)
    wrong = [
        dict(invoice)
        for invoice in invoices
        if (
            invoice["kind"],
            invoice["cycle_boundary"],
            invoice["period_start"],
            invoice["period_end"],
            invoice["lines"],
            invoice["total_minor"],
            invoice["amount_due_minor"],
            invoice["currency"],
        )
        != ("cycle", BOUNDARY, BOUNDARY, NEXT_BOUNDARY, EXPECTED_LINES, EXPECTED_TOTAL, EXPECTED_TOTAL, "EUR")
    ]
    assert not wrong, f"{len(wrong)} invoices are incomplete or wrong, e.g. {wrong[:3]}"
    orphans = await inspector.fetchval(
        "select count(*) from invoice_lines l where not exists (select 1 from invoices i where i.id = l.invoice_id)"
    )
    assert orphans == 0
    return billed


async def assert_billed_exactly_once(inspector: asyncpg.Connection, seeded: list[Seeded]) -> None:
    """Every seeded subscription has exactly one invoice for 2026-02-01 and every tenant's numbering is
    gapless (its sequence equals its number of finalized invoices), and there is nothing else."""
    billed = await assert_consistent(inspector, seeded)
    assert billed == len(seeded), f"{len(seeded) - billed} of {len(seeded)} subscriptions were not billed"
    assert await count_invoices(inspector) == len(seeded)
    gaps = await inspector.fetch(
        """
        select t.slug, t.invoice_sequence,
               (select count(*) from invoices i where i.tenant_id = t.id and i.number is not null) as numbered
        from tenants t
        where t.id = any($1::uuid[])
          and t.invoice_sequence <> (select count(*) from invoices i where i.tenant_id = t.id and i.number is not null)
        """,
        [item.tenant_id for item in seeded],
    )
    assert not gaps, gaps[:5]
    drafts = await inspector.fetchval("select count(*) from invoices where status <> 'finalized'")
    assert drafts == 0
