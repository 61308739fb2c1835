"""A tenant's outbound webhooks: where they go, and the signing secret its admin rotates (kept in the tenant's
OpenBao namespace)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime

from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.tenant_vault import TenantVault
from controlplane.core.views import view_of
from tenants import audit, repository, webhook_endpoints, webhook_secrets
from tenants.errors import TenantNotActive, TenantNotFound, WebhookEndpointNotSet
from tenants.status import TenantStatus


@dataclass(frozen=True, slots=True)
class WebhookSecretRotation:
    """The new signing secret (shown this once), and until when the previous one still signs."""

    secret: str
    rotated_at: datetime
    previous_valid_until: datetime | None


@dataclass(frozen=True, slots=True)
class WebhookSecretStatusView:
    """When the secret was last rotated, until when the previous one signs, and how many signatures a delivery
    carries now (never the secret)."""

    rotated_at: datetime
    previous_valid_until: datetime | None
    signatures: int


@dataclass(frozen=True, slots=True)
class WebhookEndpointView:
    tenant_id: uuid.UUID
    url: str
    created_at: datetime
    updated_at: datetime


async def _ensure_live(tenant_id: uuid.UUID) -> None:
    async with tenant_tx(tenant_id):
        tenant = await repository.get_tenant(tenant_id)
    if tenant is None:
        raise TenantNotFound()
    if tenant["status"] == TenantStatus.PENDING_DELETION:
        raise TenantNotActive("an erased tenant's secrets are destroyed and cannot be made again")


async def rotate_webhook_secret(actor: Principal, vault: TenantVault, tenant_id: uuid.UUID) -> WebhookSecretRotation:
    """A new secret (shown once, here); deliveries carry the previous one's signature too for a day."""
    await _ensure_live(tenant_id)
    state = await asyncio.to_thread(webhook_secrets.rotate, vault, tenant_id)
    async with tenant_tx(tenant_id):
        await audit.record(
            actor,
            tenant_id,
            "tenant.webhook_secret_rotated",
            "tenant",
            tenant_id,
            after={
                "previous_valid_until": state.previous_valid_until.isoformat() if state.previous_valid_until else None
            },
        )
    return WebhookSecretRotation(state.secret, state.rotated_at, state.previous_valid_until)


async def webhook_secret_status(vault: TenantVault, tenant_id: uuid.UUID) -> WebhookSecretStatusView:
    """When the secret was last rotated and until when the previous one still signs (never the secret)."""
    await _ensure_live(tenant_id)
    state, in_force = await asyncio.to_thread(webhook_secrets.current, vault, tenant_id)
    return WebhookSecretStatusView(state.rotated_at, state.previous_valid_until, len(in_force))


async def set_webhook_endpoint(
    actor: Principal, tenant_id: uuid.UUID, url: str, *, production: bool
) -> WebhookEndpointView:
    """Deliveries go to `url` from now on (events queued for the previous endpoint and not yet delivered
    included; events that happened while none was set were never queued). Repeating it changes nothing more."""
    await _ensure_live(tenant_id)
    checked = await asyncio.to_thread(webhook_endpoints.check, url, production=production)
    async with tenant_tx(tenant_id):
        before = await repository.webhook_endpoint(tenant_id)
        row = await repository.put_webhook_endpoint(tenant_id, checked)
        if before is None or before["url"] != checked:
            await audit.record(
                actor, tenant_id, "tenant.webhook_endpoint_set", "tenant", tenant_id, after={"url": checked}
            )
    return view_of(WebhookEndpointView, row)


async def get_webhook_endpoint(tenant_id: uuid.UUID) -> WebhookEndpointView:
    async with tenant_tx(tenant_id):
        row = await repository.webhook_endpoint(tenant_id)
    if row is None:
        raise WebhookEndpointNotSet()
    return view_of(WebhookEndpointView, row)


async def remove_webhook_endpoint(actor: Principal, tenant_id: uuid.UUID) -> None:
    """No more events are queued; those already queued wait for an endpoint set again (within the outbox's
    30-day retention). Safe to repeat."""
    async with tenant_tx(tenant_id):
        if await repository.delete_webhook_endpoint(tenant_id):
            await audit.record(actor, tenant_id, "tenant.webhook_endpoint_removed", "tenant", tenant_id)
