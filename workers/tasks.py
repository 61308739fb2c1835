"""Celery tasks: thin wrappers that take ids and call services. Every one is safe to run twice."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane import maintenance
from controlplane.db import run_with_pool
from tenants import service
from workers.celery_app import app


@app.task(name="controlplane.export_tenant")
def export_tenant(tenant_id: str) -> dict[str, Any]:
    """A tenant's data export, computed inside that tenant's context (read-only, so repeatable)."""
    settings = app.conf.controlplane_settings
    return run_with_pool(settings.database_url, lambda: service.export_tenant(uuid.UUID(tenant_id)))


@app.task(name="controlplane.purge_expired_idempotency_keys")
def purge_expired_idempotency_keys() -> int:
    settings = app.conf.controlplane_settings
    return run_with_pool(settings.database_url, maintenance.purge_expired_idempotency_keys)
