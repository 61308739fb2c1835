"""Faults in the billing cycle: a run killed part way, duplicate and concurrent Celery deliveries, and a
subscription that cannot be billed. In every case each subscription is billed exactly once for its
boundary and every tenant's invoice numbers stay gapless.

Runs the real `controlplane billing run` command and a real Celery worker (prefork, so duplicate tasks
really run at the same time) against the session's dev stack; the data is seeded in bulk as the owner.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from celery import Celery

from tests.conftest import connect_as_inspector
from tests.workers._billing import (
    AS_OF,
    BOUNDARY,
    PERIOD_START,
    Seeded,
    assert_billed_exactly_once,
    assert_consistent,
    count_invoices,
    insert_plan,
    run_billing,
    seed_catalogue,
    seed_due_subscriptions,
    sessions_named,
    start_billing,
    summary_of,
)
from tests.workers._worker import PREFORK, running_worker

# Enough that a run with --concurrency 4 lasts several seconds, so it can be caught part way.
KILL_TENANTS = 1500
CELERY_TENANTS = 450  # three `bill_subscriptions` chunks of up to 200
BIGINT_MAX = 2**63 - 1
ONE_HOUR = timedelta(hours=1)
RETRY_AS_OF = "2026-02-01T03:00:00+00:00"  # an hour after AS_OF: past the first back-off


@pytest.fixture
async def inspector(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect_as_inspector(stack_env)
    try:
        yield connection
    finally:
        await connection.close()


async def _seed(inspector: asyncpg.Connection, count: int) -> list[Seeded]:
    plan_id = await seed_catalogue(inspector)
    return await seed_due_subscriptions(inspector, count, plan_id)


# -- 1. a run killed part way ---------------------------------------------------------------------------


@pytest.mark.slow
async def test_a_killed_run_is_finished_by_the_next_one_exactly_once(
    stack_env: dict[str, str], inspector: asyncpg.Connection, tmp_path: Path, report: Any
) -> None:
    seeded = await _seed(inspector, KILL_TENANTS)
    total = len(seeded)
    name = f"billing-kill-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "killed-run.log"
    with log.open("w") as out:
        process = start_billing(stack_env, out, application_name=name)
    try:
        deadline = time.monotonic() + 180
        while True:
            count_at_kill = await count_invoices(inspector)
            if count_at_kill >= total * 9 // 20:  # mid-way through the second page of 500 due subscriptions
                sessions_at_kill = await sessions_named(inspector, name)
                process.kill()  # SIGKILL: no cleanup, open transactions are cut off mid-way
                break
            assert process.poll() is None, (
                f"the run ended (exit {process.returncode}) after {count_at_kill} of {total} invoices before it "
                f"could be killed: seed more subscriptions\n{log.read_text()}"
            )
            assert time.monotonic() < deadline, f"only {count_at_kill} invoices after 180 s\n{log.read_text()}"
            await asyncio.sleep(0.005)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    assert process.returncode == -9, (process.returncode, log.read_text())
    assert sessions_at_kill > 0  # the run's sessions are recognisable, so waiting for them to end below means something
    assert "invoices created" not in log.read_text()  # it really died before its summary

    # The database lets go of the killed sessions (rolling back what they had open) before counting.
    deadline = time.monotonic() + 60
    while await sessions_named(inspector, name):
        assert time.monotonic() < deadline, "the killed run's database sessions did not end"
        await asyncio.sleep(0.05)
    count_after_kill = await count_invoices(inspector)
    assert 0 < count_at_kill <= count_after_kill < total, (count_at_kill, count_after_kill, total)
    # What the killed run committed is whole: each subscription billed and advanced, or untouched.
    assert await assert_consistent(inspector, seeded) == count_after_kill

    rerun = run_billing(stack_env, concurrency=4)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    counts = summary_of(rerun)
    assert counts["created"] == total - count_after_kill, counts
    assert counts["failed"] == 0, rerun.stderr
    await assert_billed_exactly_once(inspector, seeded)

    third = run_billing(stack_env, concurrency=4)
    assert third.returncode == 0, third.stdout + third.stderr
    assert summary_of(third)["created"] == 0
    assert summary_of(third)["seen"] == 0
    await assert_billed_exactly_once(inspector, seeded)
    report(
        f"billing kill test: killed after {count_after_kill} of {total} invoices; rerun produced {total} exactly once"
    )


# -- 2. Celery: duplicate beats and redeliveries ----------------------------------------------------------


@pytest.fixture(scope="module")
def billing_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Celery]:
    """A real worker with four processes, so duplicate tasks run at the same time (not one after the other)."""
    with running_worker(stack_env, tmp_path_factory.mktemp("billing-worker") / "worker.log", PREFORK) as client:
        yield client


def _wait_until_idle(worker: Celery, redis_url: str, timeout: float = 180) -> None:
    """No task queued, reserved or running (twice in a row), so nothing more can be written."""
    broker = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    quiet = 0
    try:
        while quiet < 2:
            inspect = worker.control.inspect(timeout=2, limit=1)
            active = inspect.active()
            reserved = inspect.reserved()
            queued = broker.llen("celery")
            busy = active is None or reserved is None or any(active.values()) or any(reserved.values()) or queued
            quiet = 0 if busy else quiet + 1
            assert time.monotonic() < deadline, f"the worker is still busy: {active} {reserved} {queued} queued"
            time.sleep(0.2)
    finally:
        broker.close()


async def _poll_invoices(inspector: asyncpg.Connection, expected: int, within: float = 180) -> None:
    deadline = time.monotonic() + within
    while (count := await count_invoices(inspector)) < expected:
        assert time.monotonic() < deadline, f"{count} of {expected} invoices after {within} s"
        await asyncio.sleep(0.1)


async def test_run_cycle_task_bills_once_and_duplicate_beats_add_nothing(
    billing_worker: Celery, stack_env: dict[str, str], inspector: asyncpg.Connection
) -> None:
    seeded = await _seed(inspector, CELERY_TENANTS)
    first = billing_worker.send_task("controlplane.billing.run_cycle", args=[AS_OF]).get(timeout=120)
    assert first == {"tasks": 3, "subscriptions": CELERY_TENANTS, "drafts_finalized": 0}, first
    await _poll_invoices(inspector, CELERY_TENANTS)
    _wait_until_idle(billing_worker, stack_env["REDIS_URL"])
    await assert_billed_exactly_once(inspector, seeded)

    # A duplicate beat and a redelivery of the same run, at the same time: nothing is due any more.
    again = [billing_worker.send_task("controlplane.billing.run_cycle", args=[AS_OF]) for _ in range(2)]
    results = [result.get(timeout=120) for result in again]
    assert all(result["subscriptions"] == 0 for result in results), results
    _wait_until_idle(billing_worker, stack_env["REDIS_URL"])
    await assert_billed_exactly_once(inspector, seeded)


async def test_two_beats_racing_over_due_subscriptions_bill_each_once(
    billing_worker: Celery, stack_env: dict[str, str], inspector: asyncpg.Connection
) -> None:
    seeded = await _seed(inspector, CELERY_TENANTS)
    beats = [billing_worker.send_task("controlplane.billing.run_cycle", args=[AS_OF]) for _ in range(2)]
    results = [result.get(timeout=120) for result in beats]
    # Each beat fans out whatever was still due when it looked (both may have seen all of it).
    assert all(0 <= result["subscriptions"] <= CELERY_TENANTS for result in results), results
    assert max(result["subscriptions"] for result in results) == CELERY_TENANTS, results
    await _poll_invoices(inspector, CELERY_TENANTS)
    _wait_until_idle(billing_worker, stack_env["REDIS_URL"])
    await assert_billed_exactly_once(inspector, seeded)


async def test_bill_subscriptions_delivered_twice_at_once_bills_each_once(
    billing_worker: Celery, stack_env: dict[str, str], inspector: asyncpg.Connection
) -> None:
    seeded = await _seed(inspector, 200)
    pairs = [[str(item.tenant_id), str(item.subscription_id)] for item in seeded]
    twice = [billing_worker.send_task("controlplane.billing.bill_subscriptions", args=[pairs, AS_OF]) for _ in range(2)]
    results = [result.get(timeout=180) for result in twice]
    assert [result["failed"] for result in results] == [[], []], results
    assert [result["seen"] for result in results] == [200, 200], results
    assert sum(result["invoices_created"] for result in results) == 200, results
    await assert_billed_exactly_once(inspector, seeded)

    late = billing_worker.send_task("controlplane.billing.bill_subscriptions", args=[pairs, AS_OF]).get(timeout=180)
    assert late == {"seen": 200, "invoices_created": 0, "failed": []}, late
    _wait_until_idle(billing_worker, stack_env["REDIS_URL"])
    await assert_billed_exactly_once(inspector, seeded)


# -- 3. one subscription failing never stops the others -------------------------------------------------


async def test_a_failing_subscription_is_reported_and_the_others_are_billed(
    stack_env: dict[str, str], inspector: asyncpg.Connection
) -> None:
    seeded = await _seed(inspector, 40)
    good_plan = await inspector.fetchval("select plan_id from subscriptions limit 1")
    # Early failure: the subscription's plan cannot be read (plans do not check their charges' content).
    early = seeded[13]
    broken_plan = uuid.uuid4()
    await insert_plan(inspector, broken_plan, "broken", [{"type": "bogus"}])
    await inspector.execute("update subscriptions set plan_id = $1 where id = $2", broken_plan, early.subscription_id)
    # Late failure: the invoice and its lines are written, then taking the tenant's next number overflows.
    late = seeded[27]
    await inspector.execute("update tenants set invoice_sequence = $1 where id = $2", BIGINT_MAX, late.tenant_id)
    others = [item for item in seeded if item not in (early, late)]

    result = run_billing(stack_env, concurrency=4)
    assert result.returncode == 1, result.stdout + result.stderr
    counts = summary_of(result)
    assert (counts["seen"], counts["created"], counts["failed"]) == (40, 38, 2), counts
    failures = {
        line.split()[1].rstrip(":"): line for line in result.stderr.splitlines() if line.startswith("  failed ")
    }
    assert set(failures) == {str(early.subscription_id), str(late.subscription_id)}, result.stderr
    assert "InvalidCharge: charges[0]: type must be flat, per_seat or metered" in failures[str(early.subscription_id)]
    assert "NumericValueOutOfRangeError: bigint out of range" in failures[str(late.subscription_id)], failures
    await assert_billed_exactly_once(inspector, others)

    # Neither failure left anything behind: no invoice or draft, no number taken, the period not advanced.
    for item in (early, late):
        row = await inspector.fetchrow(
            "select s.current_period_start, s.current_period_end, t.invoice_sequence, "
            "(select count(*) from invoices i where i.tenant_id = t.id) as invoices, "
            "(select count(*) from invoice_lines l where l.tenant_id = t.id) as lines, "
            "(select count(*) from pending_invoice_items p where p.tenant_id = t.id) as pending "
            "from subscriptions s join tenants t on t.id = s.tenant_id where s.id = $1",
            item.subscription_id,
        )
        assert (row["current_period_start"], row["current_period_end"]) == (PERIOD_START, BOUNDARY), dict(row)
        assert (row["invoices"], row["lines"], row["pending"]) == (0, 0, 0), dict(row)
        assert row["invoice_sequence"] == (BIGINT_MAX if item is late else 0), dict(row)
    # Each failure is recorded on its subscription, with a retry an hour after the run's cutoff (AS_OF - grace).
    recorded = await inspector.fetch(
        "select id, billing_error, billing_attempts, billing_retry_at from subscriptions "
        "where billing_error is not null"
    )
    assert {row["id"] for row in recorded} == {early.subscription_id, late.subscription_id}
    assert all((row["billing_attempts"], row["billing_retry_at"]) == (1, BOUNDARY + 2 * ONE_HOUR) for row in recorded)
    reasons = {row["id"]: row["billing_error"] for row in recorded}
    assert reasons[early.subscription_id].startswith("invalid_charge: InvalidCharge: charges[0]")
    assert reasons[late.subscription_id].startswith("unexpected: NumericValueOutOfRangeError")

    # The same run again does not retry them before their back-off.
    again = run_billing(stack_env, concurrency=4)
    assert again.returncode == 0, again.stdout + again.stderr
    assert (summary_of(again)["seen"], summary_of(again)["failed"]) == (0, 0), again.stdout

    # Repaired, the next run after the back-off bills just those two, numbered from 1, and clears the record.
    await inspector.execute("update subscriptions set plan_id = $1 where id = $2", good_plan, early.subscription_id)
    await inspector.execute("update tenants set invoice_sequence = 0 where id = $1", late.tenant_id)
    retry = run_billing(stack_env, concurrency=4, as_of=RETRY_AS_OF)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert (summary_of(retry)["created"], summary_of(retry)["failed"]) == (2, 0), retry.stdout
    await assert_billed_exactly_once(inspector, seeded)
    assert await inspector.fetchval("select count(*) from subscriptions where billing_error is not null") == 0
