"""Celery tasks: thin wrappers that take ids and call services. Every one is safe to run twice."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane import maintenance
from tenants import export
from workers.celery_app import app
from workers.runtime import run_async


@app.task(name="controlplane.export_tenant")
def export_tenant(tenant_id: str) -> dict[str, Any]:
    """A tenant's data export, computed inside that tenant's context (read-only, so repeatable)."""
    settings = app.conf.controlplane_settings
    return run_async(settings, lambda: export.export_tenant(uuid.UUID(tenant_id)))


@app.task(name="controlplane.purge_expired_idempotency_keys")
def purge_expired_idempotency_keys() -> int:
    settings = app.conf.controlplane_settings
    return run_async(settings, maintenance.purge_expired_idempotency_keys)
