"""The Celery app: Redis broker and result backend from settings, the beat schedule, task metrics.

A worker serves /metrics on CONTROLPLANE_WORKER_METRICS_PORT. Tasks run in pool child processes, so with
the prefork pool PROMETHEUS_MULTIPROC_DIR must be set: the children write their series there and the
worker's main process merges them at each scrape.

Tasks are thin and idempotent: they take ids and call a service. Each run owns its event loop and its
database pool (`run_async`), because an asyncpg pool cannot be shared across event loops.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import signals
from prometheus_client import multiprocess, start_http_server

from controlplane.core import metrics
from controlplane.core.celery import create_celery
from controlplane.core.settings import Settings
from workers.schedule import BEAT_SCHEDULE

log = logging.getLogger("controlplane.workers")

_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_started(task_id: str, **_: Any) -> None:
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_finished(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    started = _started.pop(task_id, None)
    if started is not None:
        metrics.CELERY_TASK_SECONDS.labels(task=task.name).observe(time.perf_counter() - started)
    metrics.CELERY_TASK_RUNS_TOTAL.labels(task=task.name, outcome=(state or "unknown").lower()).inc()


@signals.worker_init.connect
def _serve_metrics(sender: Any = None, **_: Any) -> None:
    """In the worker's main process, before the pool's children start."""
    port = app.conf.controlplane_settings.worker_metrics_port
    if not port:
        return
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        log.warning("PROMETHEUS_MULTIPROC_DIR is unset: /metrics shows only this process, not its pool's tasks")
    start_http_server(port, registry=metrics.scrape_registry())
    log.info("worker metrics on :%d/metrics", port)


@signals.worker_process_shutdown.connect
def _forget_child(pid: int | None = None, **_: Any) -> None:
    # A dead child's live gauges must leave the merge (its counters stay: they are totals).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())


app = create_celery(Settings.from_env(), beat_schedule=BEAT_SCHEDULE, include=["workers.tasks"])
