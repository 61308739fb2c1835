"""Hooks: other domains react to billing events without billing importing them.

`on_invoice_paid(callback)` registers `async def callback(tenant_id, invoice_id) -> None` (the plugin registry
renews licenses with it). Billing awaits every callback, in registration order, inside the transaction in
which the invoice turned `paid`, right after it did, so what a callback writes commits or rolls back with
the payment:

- a collection (`collect_invoice`) records Stripe's answer in the tenant's `tenant_tx`;
- a Stripe webhook applies it in the webhook's `system_tx` (the event names its tenant only in its
  payload), so a callback must name `tenant_id` in its queries rather than rely on the tenant context.

A callback must not open a transaction of its own (transactions do not nest). If it raises, the whole
transaction rolls back: the invoice stays unpaid and the collection attempt pending, and the next
collection or the webhook settles it again (and calls the callbacks again), so a callback should be
idempotent. Each invoice turns paid once, so callbacks run once per invoice when they succeed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

InvoicePaid = Callable[[uuid.UUID, uuid.UUID], Awaitable[None]]

_INVOICE_PAID: list[InvoicePaid] = []


def on_invoice_paid(callback: InvoicePaid) -> InvoicePaid:
    """Register `callback` (once: registering it again changes nothing). Usable as a decorator."""
    if callback not in _INVOICE_PAID:
        _INVOICE_PAID.append(callback)
    return callback


async def invoice_paid(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> None:
    """Called by billing, inside the caller's transaction, right after the invoice turned `paid`."""
    for callback in list(_INVOICE_PAID):
        await callback(tenant_id, invoice_id)


def clear_hooks() -> None:
    """Forget every callback (tests)."""
    _INVOICE_PAID.clear()
    _DISPUTE_CHANGED.clear()


# -- disputes ---------------------------------------------------------------------------------------------------

# `async def callback(tenant_id, dispute_id, status) -> None`, status `open`, `won` or `lost`: awaited like the
# `invoice_paid` callbacks (in registration order, inside the webhook's `system_tx`, right after the dispute was
# opened or decided; naming `tenant_id` in its queries; raising rolls the event back, and Stripe's redelivery
# applies it again). A dispute whose `closed` event came first is opened and decided in one go: one call, with
# the final status. The composition root tells the tenant through it (`billing.notices.dispute_changed`).
DisputeChanged = Callable[[uuid.UUID, uuid.UUID, str], Awaitable[None]]

_DISPUTE_CHANGED: list[DisputeChanged] = []


def on_dispute_changed(callback: DisputeChanged) -> DisputeChanged:
    """Register `callback` (once: registering it again changes nothing). Usable as a decorator."""
    if callback not in _DISPUTE_CHANGED:
        _DISPUTE_CHANGED.append(callback)
    return callback


async def dispute_changed(tenant_id: uuid.UUID, dispute_id: uuid.UUID, status: str) -> None:
    """Called by billing, inside the webhook's transaction, right after a dispute was opened or decided."""
    for callback in list(_DISPUTE_CHANGED):
        await callback(tenant_id, dispute_id, status)


# -- trial grants ---------------------------------------------------------------------------------------

# `async def check(plugin_id) -> None`, raising the registry's own not-found error for an unknown plugin: staff
# grant a plugin's trial by its id, and billing does not know plugins.
PluginCheck = Callable[[uuid.UUID], Awaitable[None]]

_PLUGIN_CHECK: list[PluginCheck] = []


def check_plugins_with(check: PluginCheck) -> PluginCheck:
    """Set the check of plugin ids for trial grants (setting it again replaces it)."""
    _PLUGIN_CHECK[:] = [check]
    return check


async def check_plugin(plugin_id: uuid.UUID) -> bool:
    """Run the registered check; False when none is registered."""
    for check in _PLUGIN_CHECK:
        await check(plugin_id)
        return True
    return False
