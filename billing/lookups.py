"""Reads other domains make inside their own transactions (the plugin registry prices plugins with them)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from billing.catalogue.service import MetricView, metric_view
from billing.commissions import repository as commissions_repository
from billing.invoices import repository as invoices_repository
from billing.subscriptions import repository as subscriptions_repository
from billing.subscriptions import state as _state
from billing.subscriptions.service import SubscriptionView, subscription_view


async def known_metrics(codes: Iterable[str]) -> dict[str, MetricView]:
    """The billable metrics among `codes` that exist, by code."""
    return {code: metric_view(row) for code, row in (await _state.metrics(codes)).items()}


async def live_subscription(tenant_id: uuid.UUID) -> SubscriptionView | None:
    """Inside the caller's transaction: the tenant's subscription that is not canceled, if any."""
    row = await subscriptions_repository.live_subscription(tenant_id)
    return None if row is None else subscription_view(row)


async def currency_lock(tenant_id: uuid.UUID) -> str | None:
    """Inside the caller's transaction (the tenants domain's hook `on_currency_change`): why the tenant's
    currency may not change now, or None. Subscriptions and invoices carry the currency they started in."""
    if await subscriptions_repository.live_subscription(tenant_id) is not None:
        return "the tenant has a live subscription"
    if await invoices_repository.has_unpaid_invoices(tenant_id):
        return "the tenant has unpaid invoices"
    return None


async def reseller_currency(reseller_id: uuid.UUID) -> str | None:
    """Inside the caller's `partner_tx` (the tenants domain's hook `on_reseller_currency`): the currency of
    the agreement staff set with the reseller, or None without one."""
    agreement = await commissions_repository.get_agreement(reseller_id)
    return str(agreement["currency"]) if agreement else None
