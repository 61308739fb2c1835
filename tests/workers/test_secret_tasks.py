"""The scheduled secret rotation, run by a real Celery worker process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from controlplane.core.secrets import JWT_KEYS_PATH, SecretStore
from controlplane.core.settings import Settings
from controlplane.ops.rotation import DB_PASSWORD, JWT_SIGNING_KEY, LICENSE_SIGNING_KEY, PII_KEY
from tests.workers._worker import running_worker
from workers.schedule import BEAT_SCHEDULE


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Celery]:
    with running_worker(stack_env, tmp_path_factory.mktemp("worker") / "worker.log") as client:
        yield client


def test_beat_runs_the_rotation_once_a_day() -> None:
    (entry,) = [entry for entry in BEAT_SCHEDULE.values() if entry["task"] == "controlplane.secrets.rotate"]
    schedule: Any = entry["schedule"]
    assert (len(schedule.hour), len(schedule.minute), len(schedule.day_of_week)) == (1, 1, 7)


def test_the_scheduled_rotation_is_safe_to_run_twice(worker: Celery, settings: Settings) -> None:
    store = SecretStore.connect(settings)
    # Forced (as `controlplane secrets rotate --what jwt`): rotates now.
    forced = worker.send_task("controlplane.secrets.rotate", args=["jwt", False]).get(timeout=60)
    assert [(outcome["secret"], outcome["outcome"]) for outcome in forced] == [(JWT_SIGNING_KEY, "success")]
    active = store.read(JWT_KEYS_PATH)["active_kid"]
    assert active in forced[0]["detail"]

    # As beat runs it, twice: nothing is due, nothing changes.
    for _ in range(2):
        scheduled = worker.send_task("controlplane.secrets.rotate").get(timeout=60)
        assert {(outcome["secret"], outcome["outcome"]) for outcome in scheduled} == {
            (JWT_SIGNING_KEY, "skipped"),
            (LICENSE_SIGNING_KEY, "skipped"),
            (PII_KEY, "skipped"),
            (DB_PASSWORD, "skipped"),
        }
    assert store.read(JWT_KEYS_PATH)["active_kid"] == active
