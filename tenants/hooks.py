"""Hooks: other domains answer the tenants domain, and act on a tenant's erasure, without tenants importing them.

The composition root (`controlplane.app.create_app`) registers them; tenants only call them.

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
- `on_currency_change(callback)`: `async def callback(tenant_id) -> str | None` answers why the tenant's
  currency may not change now (a live subscription, unpaid invoices), or None. Tenants await every callback
  inside the transaction that holds the tenant's row locked for update and then writes the new currency, so
  the check and the write commit together. A callback must not open a transaction of its own.
- `on_reseller_currency(callback)`: `async def callback(reseller_id) -> str | None` answers the currency of
  the agreement staff set with the reseller (None: no agreement yet), inside the caller's `partner_tx`.

Refusing is the safe default: with no currency callback registered, no currency changes at all, and with no
reseller callback, a reseller's admin creates no tenant (staff still can).
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


CurrencyLock = Callable[[uuid.UUID], Awaitable[str | None]]
ResellerCurrency = Callable[[uuid.UUID], Awaitable[str | None]]

_CURRENCY_LOCKS: list[CurrencyLock] = []
_RESELLER_CURRENCY: list[ResellerCurrency] = []

NOTHING_REGISTERED = "no billing hook is registered to check the change"


def on_currency_change(callback: CurrencyLock) -> CurrencyLock:
    """Register `callback` (once: registering it again changes nothing). Usable as a decorator."""
    if callback not in _CURRENCY_LOCKS:
        _CURRENCY_LOCKS.append(callback)
    return callback


def on_reseller_currency(callback: ResellerCurrency) -> ResellerCurrency:
    """Register the one answer to "which currency do this reseller's new tenants get" (the last one wins)."""
    _RESELLER_CURRENCY[:] = [callback]
    return callback


async def currency_lock(tenant_id: uuid.UUID) -> str | None:
    """Inside the caller's transaction: the first reason the tenant's currency may not change, or None."""
    if not _CURRENCY_LOCKS:
        return NOTHING_REGISTERED
    for callback in list(_CURRENCY_LOCKS):
        reason = await callback(tenant_id)
        if reason is not None:
            return reason
    return None


async def reseller_currency(reseller_id: uuid.UUID) -> str | None:
    """Inside the caller's `partner_tx`: the currency staff agreed with the reseller, or None."""
    if not _RESELLER_CURRENCY:
        return None
    return await _RESELLER_CURRENCY[0](reseller_id)


def clear_hooks() -> None:
    """Forget every callback (tests)."""
    _ERASED.clear()
    _AFTER.clear()
    _CURRENCY_LOCKS.clear()
    _RESELLER_CURRENCY.clear()
