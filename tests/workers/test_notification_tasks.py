"""The notification task in a real Celery worker: it decrypts the billing contact's address with the worker's
own OpenBao login, sends through the stack's SMTP server, and a second run sends nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.schedules import crontab

from controlplane.devstack.mail_store import MailStore
from tests.integration.notifications._support import people, queue, rows
from tests.workers._worker import running_worker
from workers.schedule import BEAT_SCHEDULE


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Celery]:
    with running_worker(stack_env, tmp_path_factory.mktemp("worker") / "worker.log") as client:
        yield client


def test_the_task_runs_every_minute_and_a_late_run_is_dropped() -> None:
    (entry,) = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == "controlplane.notifications.send"]
    assert entry["schedule"] == crontab()
    assert entry["options"] == {"expires": 55}


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
