"""Activations: the seats of a license, held by machines (fingerprints) that send heartbeats."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.views import view_of
from plugins_registry import repository
from plugins_registry.errors import (
    ActivationNotFound,
    ActivationRateLimited,
    LicenseNotActive,
    LicenseNotFound,
    SeatsExhausted,
)
from plugins_registry.service._events import record
from plugins_registry.service._licenses import tenant_of_license
from tenants.roles import Permission

RATE_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ActivationView:
    """A seat of a license held by one machine (its fingerprint)."""

    id: uuid.UUID
    license_id: uuid.UUID
    fingerprint: str
    label: str
    last_heartbeat_at: datetime
    created_at: datetime


async def activate(
    actor: Principal, license_id: uuid.UUID, fingerprint: str, label: str, *, per_hour: int
) -> tuple[ActivationView, bool]:
    """(activation, created). The same fingerprint again answers with its activation, so a retry is safe.

    The license row is locked, so concurrent activations cannot both take the last seat.
    """
    tenant_id = await tenant_of_license(actor, license_id, Permission.USE_PLUGINS, "POST")
    now = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        row = await repository.get_license(license_id, lock=True)
        if row is None:
            raise LicenseNotFound()
        if row["status"] != "active" or (row["expires_at"] is not None and row["expires_at"] <= now):
            raise LicenseNotActive(f"the license is {row['status']}; nothing can be activated on it")
        existing = await repository.live_activation(license_id, fingerprint)
        if existing is not None:
            return view_of(ActivationView, existing), False
        if await repository.count_recent_activations(tenant_id, license_id, now - RATE_WINDOW) >= per_hour:
            raise ActivationRateLimited(
                f"at most {per_hour} activations of one license an hour",
                retry_after_seconds=int(RATE_WINDOW.total_seconds()),
            )
        in_use = await repository.count_live_activations(tenant_id, license_id)
        if in_use >= row["seats"]:
            raise SeatsExhausted(f"all {row['seats']} seats are in use; release one or buy more seats")
        activation = await repository.insert_activation(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "license_id": license_id,
                "fingerprint": fingerprint,
                "label": label,
            }
        )
        assert activation is not None  # the license lock serializes activations of this license
        await record(
            actor,
            tenant_id,
            "license.activated",
            "license",
            license_id,
            {"license_id": str(license_id), "activation_id": str(activation["id"]), "seats_used": in_use + 1},
        )
        return view_of(ActivationView, activation), True


async def deactivate(actor: Principal, license_id: uuid.UUID, activation_id: uuid.UUID) -> None:
    """Frees the seat. Releasing a released activation again changes nothing."""
    tenant_id = await tenant_of_license(actor, license_id, Permission.USE_PLUGINS, "DELETE")
    async with tenant_tx(tenant_id):
        if await repository.get_activation(license_id, activation_id) is None:
            raise ActivationNotFound()
        released = await repository.release_activation(activation_id, "deactivated", datetime.now(UTC))
        if released:
            await record(
                actor,
                tenant_id,
                "license.deactivated",
                "license",
                license_id,
                {"license_id": str(license_id), "activation_id": str(activation_id)},
            )


async def heartbeat(actor: Principal, license_id: uuid.UUID, activation_id: uuid.UUID) -> ActivationView:
    tenant_id = await tenant_of_license(actor, license_id, Permission.USE_PLUGINS, "POST")
    async with tenant_tx(tenant_id):
        if await repository.get_activation(license_id, activation_id) is None:
            raise ActivationNotFound()
        row = await repository.touch_activation(activation_id, datetime.now(UTC))
        if row is None:
            raise ActivationNotFound(
                "the activation was released (no heartbeat in time, or deactivated); activate again"
            )
        return view_of(ActivationView, row)


async def list_activations(actor: Principal, license_id: uuid.UUID) -> list[ActivationView]:
    """The license's live activations, oldest first."""
    tenant_id = await tenant_of_license(actor, license_id, Permission.READ_PLUGINS, "GET")
    async with tenant_tx(tenant_id):
        return [view_of(ActivationView, row) for row in await repository.list_activations(tenant_id, license_id)]


async def seats_in_use(tenant_id: uuid.UUID) -> dict[uuid.UUID, int]:
    """The seats held on each active license of the tenant (its live activations), by license id, in one read.
    The caller has checked READ_PLUGINS in the tenant, as for `list_installs`."""
    async with tenant_tx(tenant_id):
        return {row["license_id"]: row["seats_used"] for row in await repository.seats_in_use(tenant_id)}


async def release_stale(silence: timedelta, now: datetime | None = None) -> int:
    """The beat task: activations silent (no heartbeat) for `silence` give their seat back. Safe to rerun."""
    now = now or datetime.now(UTC)
    before = now - silence
    released = 0
    async with system_tx(SystemReason.PLATFORM_JOB):
        tenants = await repository.stale_activation_tenants(before, 10_000)
    for item in tenants:
        tenant_id = item["tenant_id"]
        try:
            released += await _release_tenant(tenant_id, before, now)
        except Exception as error:
            metrics.stop_batch_on_outage("release_stale_activations", error)
            metrics.batch_item_failed("release_stale_activations", error)
    return released


async def _release_tenant(tenant_id: uuid.UUID, before: datetime, now: datetime) -> int:
    """One tenant's silent activations released, each an event, in one transaction (all or none: a failed
    tenant keeps its activations for the next run)."""
    async with tenant_tx(tenant_id):
        rows = await repository.release_silent_activations(tenant_id, before, now)
        for row in rows:
            await record(
                None,
                tenant_id,
                "license.activation_released",
                "license",
                row["license_id"],
                {
                    "license_id": str(row["license_id"]),
                    "activation_id": str(row["id"]),
                    "reason": "heartbeat_timeout",
                },
            )
    return len(rows)
