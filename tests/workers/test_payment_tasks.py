"""The payment beats through a real Celery worker process: `collect_payments` charges a finalized invoice
once (a repeat and two duplicate deliveries at the same time charge nothing more), walks a declined card
through the dunning schedule to an uncollectible invoice and a tenant suspended for non-payment, and
`accept_overdue_milestones` releases an escrow milestone left unanswered past its inspection window.

The worker is prefork with four processes, so the duplicate deliveries really run at the same time. The
collection's clock is moved with `as_of`; the escrow beat has none (it uses now), so the submission is
moved back in time instead, as the owner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from celery import Celery
from httpx import AsyncClient

from billing import service
from tests.api._helpers import assert_problem
from tests.api.billing.test_escrow import _agreement
from tests.api.billing.test_payments import DECLINED_CARD, GOOD_CARD, _add_card, _invoiced_tenant, card, stripe_client
from tests.conftest import connect_as_inspector
from tests.factories import Factory
from tests.workers._worker import PREFORK, running_worker

__all__ = ["stripe_client"]  # the fixture, shared

COLLECT = "controlplane.billing.collect_payments"
ACCEPT_OVERDUE = "controlplane.billing.accept_overdue_milestones"
SCHEDULE = (1, 3, 5, 7)  # the settings' default BILLING_DUNNING_DAYS, which the worker runs with
NOTHING = {
    "attempted": 0,
    "succeeded": 0,
    "failed": 0,
    "uncollectible": 0,
    "without_payment_method": 0,
    "unreachable": [],
    "refused": 0,
    "errors": [],
    "refunds_resent": 0,
}
TASK_TIMEOUT = 120


@dataclass
class Worker:
    app: Celery
    log: Path
    sent: dict[str, int]

    def run(self, name: str, *args: Any) -> Any:
        """Send the task, wait for its result (the worker's log on failure)."""
        return self.gather([(name, args)])[0]

    def gather(self, calls: list[tuple[str, tuple[Any, ...]]]) -> list[Any]:
        """Send every task first (so a free worker process takes each at once), then wait for them all."""
        results = [self.app.send_task(name, args=list(args)) for name, args in calls]
        for name, _ in calls:
            self.sent[name] = self.sent.get(name, 0) + 1
        try:
            return [result.get(timeout=TASK_TIMEOUT) for result in results]
        except Exception as error:
            raise AssertionError(f"{error!r}\nworker log:\n{self.log.read_text()[-6000:]}") from error


@pytest.fixture(scope="module")
def payment_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    log = tmp_path_factory.mktemp("payment-worker") / "worker.log"
    # The default dunning schedule, which SCHEDULE repeats.
    with running_worker(stack_env, log, PREFORK, unset=("BILLING_DUNNING_DAYS",)) as client:
        yield Worker(client, log, {})


@pytest.fixture
async def inspector(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect_as_inspector(stack_env)
    try:
        yield connection
    finally:
        await connection.close()


def _intents_of(stripe_client: Any, invoice_id: str) -> list[Any]:
    """The PaymentIntents localstripe holds for this invoice (every page)."""
    found: list[Any] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = stripe_client.v1.payment_intents.list(params=params)
        found += [intent for intent in page.data if intent.metadata.to_dict().get("invoice_id") == invoice_id]
        if not page.has_more or not page.data:
            return found
        params = {"limit": 100, "starting_after": page.data[-1].id}


async def _attempts(inspector: asyncpg.Connection, invoice_id: str) -> list[dict[str, Any]]:
    rows = await inspector.fetch(
        "select attempt, status, idempotency_key, decline_code, created_at from payments "
        "where invoice_id = $1::uuid order by attempt",
        invoice_id,
    )
    return [dict(row) for row in rows]


# -- 1. a good card: charged once, however often the beat comes -------------------------------------------


async def test_collect_payments_charges_a_finalized_invoice_once_and_duplicates_charge_nothing(
    payment_worker: Worker,
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    inspector: asyncpg.Connection,
    report: Any,
) -> None:
    _, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    assert invoice["status"] == "finalized"
    assert _intents_of(stripe_client, invoice["id"]) == []
    as_of = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()

    first = payment_worker.run(COLLECT, as_of)
    assert first == {**NOTHING, "attempted": 1, "succeeded": 1}, first
    paid = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert (paid["status"], paid["amount_due_minor"]) == ("paid", 0), paid
    [attempt] = await _attempts(inspector, invoice["id"])
    assert (attempt["attempt"], attempt["status"]) == (1, "succeeded"), attempt
    assert attempt["idempotency_key"] == f"invoice:{invoice['id']}:attempt:1"
    [intent] = _intents_of(stripe_client, invoice["id"])
    assert (intent.status, intent.amount) == ("succeeded", invoice["amount_due_minor"])

    # The same beat delivered twice more, both at once: nothing is due, nothing is charged.
    again = payment_worker.gather([(COLLECT, (as_of,)), (COLLECT, (as_of,))])
    assert again == [NOTHING, NOTHING], again
    assert await _attempts(inspector, invoice["id"]) == [attempt]
    assert len(_intents_of(stripe_client, invoice["id"])) == 1
    still = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert (still["status"], still["amount_due_minor"]) == ("paid", 0), still
    ledger = await service.verify_ledger()
    assert ledger.ok, ledger
    assert ledger.journals == 2  # the invoice issued, one payment received
    report(
        f"payment tasks: collect_payments ran {payment_worker.sent[COLLECT]} times through a real worker "
        "(2 of them at once), 1 charge per invoice"
    )


# -- 2. a declined card: the dunning schedule, then uncollectible and suspended ---------------------------


async def test_collect_payments_walks_a_declined_card_through_dunning_to_suspension(
    payment_worker: Worker,
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    inspector: asyncpg.Connection,
    report: Any,
) -> None:
    _, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    tenant_url = f"/v1/tenants/{tenant['id']}"
    # The offsets count from the first failure's real time, a moment after this: a minute of slack.
    start = datetime.now(UTC) + timedelta(minutes=1)
    runs = 0

    def collect(at: datetime) -> dict[str, Any]:
        nonlocal runs
        runs += 1
        result: dict[str, Any] = payment_worker.run(COLLECT, at.isoformat())
        return result

    first = collect(start)
    assert first == {**NOTHING, "attempted": 1, "failed": 1}, first
    [failure] = await _attempts(inspector, invoice["id"])
    assert (failure["status"], failure["decline_code"]) == ("failed", "card_declined"), failure
    assert abs(failure["created_at"] - start) < timedelta(minutes=2)
    # Not due again until a day after the first failure.
    assert collect(start + timedelta(hours=23)) == NOTHING
    for day in SCHEDULE[:-1]:
        retry = collect(start + timedelta(days=day))
        assert retry == {**NOTHING, "attempted": 1, "failed": 1}, (day, retry)
        # Each retry once: the same moment again finds nothing due.
        assert collect(start + timedelta(days=day)) == NOTHING, day
    assert (await client.get(tenant_url, headers=admin.headers)).status_code == 200
    still_due = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert still_due["status"] == "finalized", still_due

    last = collect(start + timedelta(days=SCHEDULE[-1]))
    assert last == {**NOTHING, "attempted": 1, "failed": 1, "uncollectible": 1}, last
    assert collect(start + timedelta(days=30)) == NOTHING

    attempts = await _attempts(inspector, invoice["id"])
    assert [(row["attempt"], row["status"]) for row in attempts] == [(n, "failed") for n in range(1, 6)], attempts
    assert len({row["idempotency_key"] for row in attempts}) == 5
    uncollectible = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert uncollectible["status"] == "uncollectible", uncollectible
    body = assert_problem(await client.get(tenant_url, headers=admin.headers), 402, "suspended_for_non_payment")
    assert body["required_actions"] == ["pay_overdue_invoice", "add_payment_method"], body
    intents = _intents_of(stripe_client, invoice["id"])
    # One declined PaymentIntent per attempt (each its own key); nothing was ever captured.
    assert len(intents) == 5, [(intent.id, intent.status) for intent in intents]
    assert not any(intent.status == "succeeded" for intent in intents)
    assert (await service.verify_ledger()).ok
    report(f"payment tasks: dunning through a real worker, {runs} collect_payments runs, 5 declines -> suspended")


# -- 3. the escrow beat: a milestone left unanswered past its window is released ---------------------------


async def test_accept_overdue_milestones_releases_a_submission_past_its_inspection_window(
    payment_worker: Worker,
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    inspector: asyncpg.Connection,
    report: Any,
) -> None:
    staff, admin, _, agreement = await _agreement(client, factory, stripe_client)
    url = f"/v1/escrows/{agreement['id']}"
    design, build, launch = (m["id"] for m in agreement["milestones"])
    days = agreement["inspection_days"]
    assert days == 5
    funded = await client.post(f"{url}/fund", headers=admin.headers)
    assert funded.status_code == 200, funded.text
    for milestone in (design, build):
        submitted = await client.post(f"{url}/milestones/{milestone}/submit", headers=staff.headers)
        assert submitted.status_code == 200, submitted.text

    # Nothing is overdue yet: the beat accepts nothing.
    assert payment_worker.run(ACCEPT_OVERDUE) == 0
    # Design was submitted just past the window; Build an hour inside it.
    await inspector.execute(
        "update escrow_milestones set submitted_at = now() - make_interval(days => $2, mins => 1) where id = $1::uuid",
        design,
        days,
    )
    await inspector.execute(
        "update escrow_milestones set submitted_at = now() - make_interval(days => $2) + interval '1 hour' "
        "where id = $1::uuid",
        build,
        days,
    )

    assert payment_worker.run(ACCEPT_OVERDUE) == 1
    after = (await client.get(url, headers=admin.headers)).json()
    assert [m["status"] for m in after["milestones"]] == ["released", "submitted", "pending"], after
    assert [m["id"] for m in after["milestones"]] == [design, build, launch]
    assert after["milestones"][0]["released_minor"] == 3_000
    assert (after["status"], after["released_minor"], after["refunded_minor"], after["held_minor"]) == (
        "funded",
        3_000,
        0,
        7_000,
    ), after
    ledger = await service.verify_ledger()
    assert ledger.ok, ledger

    # The beat again, twice at once: nothing more is released.
    assert payment_worker.gather([(ACCEPT_OVERDUE, ()), (ACCEPT_OVERDUE, ())]) == [0, 0]
    again = (await client.get(url, headers=admin.headers)).json()
    assert (again["released_minor"], again["held_minor"]) == (3_000, 7_000), again
    releases = await inspector.fetchval(
        "select count(*) from ledger_journals where source_type = 'escrow_release' and source_id = $1::uuid", design
    )
    assert releases == 1
    assert (await service.verify_ledger()).ok
    report(f"payment tasks: accept_overdue_milestones ran {payment_worker.sent[ACCEPT_OVERDUE]} times, 1 release")
