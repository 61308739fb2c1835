"""The notification task in a real Celery worker: it decrypts the billing contact's address with the worker's
own OpenBao login, sends through the stack's SMTP server, and a second run sends nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.schedules import crontab

from controlplane.core.db import tenant_tx
from controlplane.devstack.mail_store import MailStore
from tenants.notifications import notify, sender
from tests.integration.notifications._support import people, queue, rows
from tests.unit.notifications.samples import SAMPLES
from tests.workers._worker import running_worker
from workers.schedule import BEAT_SCHEDULE
from workers.tasks import send_notifications


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Celery]:
    with running_worker(stack_env, tmp_path_factory.mktemp("worker") / "worker.log") as client:
        yield client


def test_the_task_runs_every_minute_and_a_late_run_is_dropped() -> None:
    (entry,) = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == "controlplane.notifications.send"]
    assert entry["schedule"] == crontab()
    assert entry["options"] == {"expires": 55}


def test_the_task_stops_well_inside_its_lease() -> None:
    assert sender.RUN_SECONDS < 55  # beat runs it every minute; a run waiting 55 s expires
    assert sender.RUN_SECONDS < sender.LEASE_SECONDS // 2
    assert send_notifications.soft_time_limit is not None
    assert sender.RUN_SECONDS < send_notifications.soft_time_limit < sender.LEASE_SECONDS


async def test_the_worker_sends_the_outbox_once(worker: Celery, client: Any, mailbox: MailStore) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    await queue(who, "partner.checkpoint_approved")

    first = worker.send_task("controlplane.notifications.send").get(timeout=60)
    again = worker.send_task("controlplane.notifications.send").get(timeout=60)

    assert first == {"claimed": 3, "sent": 3, "retrying": 0, "failed": 0, "skipped": 0}
    assert again["claimed"] == 0
    assert sorted(str(message["To"]) for message in mailbox.messages()) == sorted(
        [who.billing_email, who.admin_email, who.partner_admin_email]
    )
    assert {row["status"] for row in await rows()} == {"sent"}


async def test_one_run_of_the_task_sends_200_emails(worker: Celery, client: Any, mailbox: MailStore) -> None:
    who = await people()
    async with tenant_tx(who.tenant_id):
        for number in range(100):  # 100 events, each to the billing contact and the admin
            await notify("invoice.paid", f"inv-{number}", SAMPLES["invoice.paid"], tenant_id=who.tenant_id)

    report = worker.send_task("controlplane.notifications.send").get(timeout=120)

    assert (report["claimed"], report["sent"]) == (200, 200)
    assert len(mailbox.messages()) == 200
    assert {row["status"] for row in await rows()} == {"sent"}
