"""The Celery app factory: broker and result backend on Redis, JSON only, late acknowledgement."""

from __future__ import annotations

from typing import Any

from celery import Celery

from controlplane.core.settings import Settings

# Longer than the longest task, so Redis does not hand an unacknowledged task to a second worker.
VISIBILITY_TIMEOUT_SECONDS = 3600


def create_celery(
    settings: Settings, *, beat_schedule: dict[str, Any] | None = None, include: list[str] | None = None
) -> Celery:
    """The Celery app on the settings' Redis. The worker passes its tasks and the beat schedule; a client that
    only sends tasks or pings workers (readiness, tests) passes neither."""
    app = Celery("controlplane", broker=settings.redis_url, backend=settings.redis_url, include=include or [])
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        timezone="UTC",
        enable_utc=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        result_backend_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        # Results (an export holds member emails) live only as long as a caller plausibly polls for them.
        result_expires=3600,
        broker_connection_retry_on_startup=True,
        beat_schedule=beat_schedule or {},
    )
    app.conf.controlplane_settings = settings
    return app
