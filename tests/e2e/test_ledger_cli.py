"""`controlplane ledger verify` against the test stack, as an operator runs it: 0 on clean books, 1 and the
tenant named once the books have been tampered with."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

from billing.ledger.rules import REVENUE, receivable
from tests.api.billing._support import invoices, plan, subscribe
from tests.conftest import connect_as_inspector
from tests.factories import Factory

START = datetime(2026, 1, 15, tzinfo=UTC)  # in the past: the first invoice is issued at once


def _cli(stack_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack_env}
    return subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "controlplane.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


async def test_ledger_verify(
    stack_env: dict[str, str], client: httpx.AsyncClient, factory: Factory, report: Any
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 1000}])
    tenants = [await factory.tenant(staff, tax_rate_bps=2000) for _ in range(2)]
    for tenant in tenants:
        await subscribe(client, staff.headers, tenant["id"], "pro", start_at=START)
    [first] = await invoices(client, staff.headers, tenants[0]["id"])
    response = await client.post(
        f"/v1/invoices/{first['id']}/credit-notes",
        json={"amount_minor": 50, "reason": "goodwill"},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text

    clean = _cli(stack_env, "ledger", "verify")
    assert clean.returncode == 0, (clean.stdout, clean.stderr)
    assert "journals: 3, postings: 9" in clean.stdout, clean.stdout  # two issues of 3 postings, a note of 3
    assert clean.stdout.strip().splitlines()[-1] == "ledger verified", clean.stdout
    assert "ledger has differences" not in clean.stdout

    # Tampering as the owner: a balanced journal moving 100 of the second tenant's receivable to revenue.
    victim = uuid.UUID(tenants[1]["id"])
    owner = await connect_as_inspector(stack_env)
    try:
        journal_id = uuid.uuid4()
        async with owner.transaction():
            await owner.execute(
                "insert into ledger_journals (id, tenant_id, source_type, source_id, description) "
                "values ($1, $2, 'payment', $3, 'tampering')",
                journal_id,
                victim,
                uuid.uuid4(),
            )
            await owner.executemany(
                "insert into ledger_postings (tenant_id, journal_id, account, amount_minor, currency) "
                "values ($1, $2, $3, $4, 'EUR')",
                [(victim, journal_id, receivable(victim), -100), (victim, journal_id, REVENUE, 100)],
            )
    finally:
        await owner.close()

    tampered = _cli(stack_env, "ledger", "verify")
    assert tampered.returncode == 1, (tampered.stdout, tampered.stderr)
    assert tampered.stdout.strip().splitlines()[-1] == "ledger has differences", tampered.stdout
    assert "receivables disagreeing with invoices and payments: 1" in tampered.stdout, tampered.stdout
    assert "unbalanced journals: 0" in tampered.stdout and "issued invoices without a journal: 0" in tampered.stdout
    assert f"tenant {victim} EUR" in tampered.stderr, tampered.stderr
    assert str(tenants[0]["id"]) not in tampered.stdout + tampered.stderr
    assert "Traceback" not in tampered.stderr
    report("ledger cli: verify exits 0 on clean books, 1 naming the tampered tenant")
