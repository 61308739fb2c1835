"""Hooks: other domains act on a tenant's erasure without the tenants domain importing them.

Two kinds, wired by the composition root (`controlplane.app.create_app`):

- `on_tenant_erased(callback)`: `async def callback(tenant_id, now) -> None`, awaited in registration order
  inside one `tenant_tx(tenant_id)` that the erasure opens right after the tenant turned `pending_deletion`
  (billing cancels the subscription and ends add-ons, the plugin registry revokes licenses). A callback must
  not open a transaction of its own; if one raises, the whole transaction rolls back and the erasure
  answers with that error. Erasure runs the callbacks again on every request (a retry finishes the job), so
  each must be idempotent.
- `after_erasure(name, callback)`: `async def callback(tenant_id) -> None`, awaited after that transaction
  committed, on every erasure request, for effects outside the database (billing detaches the tenant's
  cards at Stripe). One callback per name: registering a name again replaces it. An outage raises its 503;
  the client retries the erasure and the callback finishes what is left.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

TenantErased = Callable[[uuid.UUID, datetime], Awaitable[None]]
AfterErasure = Callable[[uuid.UUID], Awaitable[None]]

_ERASED: list[TenantErased] = []
_AFTER: dict[str, AfterErasure] = {}


def on_tenant_erased(callback: TenantErased) -> TenantErased:
    """Register `callback` (once: registering it again changes nothing). Usable as a decorator."""
    if callback not in _ERASED:
        _ERASED.append(callback)
    return callback


def after_erasure(name: str, callback: AfterErasure) -> None:
    _AFTER[name] = callback


async def tenant_erased(tenant_id: uuid.UUID, now: datetime) -> None:
    """Called by the erasure inside the tenant's transaction."""
    for callback in list(_ERASED):
        await callback(tenant_id, now)


async def erased_after_commit(tenant_id: uuid.UUID) -> None:
    """Called by the erasure once its transactions committed."""
    for callback in list(_AFTER.values()):
        await callback(tenant_id)


def clear_hooks() -> None:
    """Forget every callback (tests)."""
    _ERASED.clear()
    _AFTER.clear()
