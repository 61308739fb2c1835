"""Starting a real Celery worker process for a test module, and stopping it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from celery import Celery

from controlplane.core.celery import create_celery
from controlplane.core.settings import Settings

REPO = Path(__file__).resolve().parents[2]
# Four processes, so duplicate tasks run at the same time rather than one after the other.
PREFORK = ("--pool", "prefork", "--concurrency", "4")
SOLO = ("--pool", "solo")


@contextmanager
def running_worker(
    stack_env: dict[str, str],
    log: Path,
    pool: tuple[str, ...] = SOLO,
    *,
    unset: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> Iterator[Celery]:
    """A worker on the stack's broker, its output in `log`; yields a client once the worker answers a ping."""
    env = {**os.environ, **stack_env, "CONTROLPLANE_ENV": "test", **(extra_env or {})}
    for name in unset:
        env.pop(name, None)
    command = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker", *pool, "--loglevel", "INFO"]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
    client = create_celery(Settings.from_env({**stack_env, "CONTROLPLANE_ENV": "test"}))
    try:
        deadline = time.monotonic() + 60
        while not client.control.ping(timeout=1):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "worker did not answer: " + log.read_text()
        yield client
    finally:
        process.terminate()
        process.wait(timeout=60)
