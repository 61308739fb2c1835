"""The credit expiry beat through a real Celery worker process: two deliveries of `expire_credits` at the same
time expire each lot once (the lot is locked and emptied; a rerun finds nothing)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery import Celery
from httpx import AsyncClient

from billing import service
from tests.factories import Factory
from tests.workers._worker import PREFORK, running_worker
from workers.schedule import BEAT_SCHEDULE

EXPIRE = "controlplane.billing.expire_credits"


@pytest.fixture(scope="module")
def wallet_worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Celery]:
    log: Path = tmp_path_factory.mktemp("wallet-worker") / "worker.log"
    with running_worker(stack_env, log, PREFORK) as client:
        yield client


def test_expire_credits_is_on_the_beat() -> None:
    assert any(entry["task"] == EXPIRE for entry in BEAT_SCHEDULE.values())


async def test_two_expiry_runs_at_once_expire_each_lot_once(
    client: AsyncClient, factory: Factory, wallet_worker: Celery
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    for amount in (100, 250, 400):
        response = await client.post(
            f"/v1/tenants/{tenant['id']}/wallet/top-ups",
            json={"amount_minor": amount, "paid": False, "expires_at": soon},
            headers=staff.headers,
        )
        assert response.status_code == 201, response.text
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    runs = [wallet_worker.send_task(EXPIRE, args=[later]) for _ in range(2)]
    reports = [run.get(timeout=120) for run in runs]
    assert sum(report["expired"] for report in reports) == 3
    assert all(report["failed"] == 0 for report in reports)
    assert wallet_worker.send_task(EXPIRE, args=[later]).get(timeout=120) == {"expired": 0, "failed": 0}
    wallet = (await client.get(f"/v1/tenants/{tenant['id']}/wallet", headers=staff.headers)).json()
    assert wallet["balance_minor"] == 0
    assert sorted(item["amount_minor"] for item in wallet["transactions"] if item["kind"] == "expired") == [
        -400,
        -250,
        -100,
    ]
    report = await service.verify_ledger()
    assert report.ok, report
