"""A tenant's erasure, as billing sees it (registered as tenants.hooks by the composition root).

In the erasure's tenant transaction: the live subscription is cancelled now (the final invoice and credit
notes follow the ordinary cancel rules), every add-on ends, and no card stays the default, so no cycle
bills and no collection charges the tenant again. Billing maths never blocks an erasure: when the final
invoice cannot be computed (an amount beyond billing.limits, a plan that cannot be read), the subscription
ends all the same, without it, and the failure is recorded on it for staff (`billing_error`, counted in
`controlplane_billing_subscription_failures_total{reason}`) and on the audit trail. After it commits: the
cards are detached at Stripe, each marked once done, so a retry after an outage (503) detaches only what is
left.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from billing.addons import repository as addons_repository
from billing.analytics import history as mrr_history
from billing.invoices.cycle import failure_reason
from billing.payments import repository as payments_repository
from billing.payments.gateway import StripeGateway
from billing.subscriptions import repository
from billing.subscriptions.service import cancel_in_tx, summary
from billing.subscriptions.states import Status
from controlplane.core import metrics
from controlplane.core.db import ENGINE, tenant_tx
from controlplane.core.errors import DomainError
from tenants import audit


async def end_for_erased_tenant(tenant_id: uuid.UUID, now: datetime) -> None:
    """Inside the erasure's tenant transaction; idempotent."""
    live = await repository.live_subscription(tenant_id, lock="update")
    if live is not None and live["status"] != Status.CANCELED:
        await _end_subscription(tenant_id, live, now)
    for addon in await addons_repository.end_all_addons(tenant_id, now):
        await audit.record(
            None,
            tenant_id,
            "subscription_addon.ended",
            "subscription",
            addon["subscription_id"],
            after={"addon_id": str(addon["id"]), "ended_at": addon["ended_at"].isoformat(), "reason": "tenant_erased"},
        )
    await mrr_history.record(tenant_id, "tenant_erased", now)
    await payments_repository.retire_payment_methods(tenant_id)


async def _end_subscription(tenant_id: uuid.UUID, live: dict[str, Any], now: datetime) -> None:
    """Cancel now with the final invoice; if billing cannot compute it, end the subscription without it and
    record why (a savepoint undoes what the cancel had written)."""
    transaction = ENGINE.current_transaction.get()
    assert transaction is not None  # inside the erasure's tenant transaction
    savepoint = await transaction.savepoint()
    try:
        await cancel_in_tx(None, tenant_id, live["id"], False, now)
    except DomainError as error:
        await savepoint.rollback_to()
        code, reason = failure_reason(error)
        metrics.BILLING_SUBSCRIPTION_FAILURES_TOTAL.labels(reason=code).inc()
        await repository.update_subscription(
            live["id"], {"status": Status.CANCELED.value, "cancel_at_period_end": False, "canceled_at": now}
        )
        # A canceled subscription is never retried by the cycle: the record is for staff.
        await repository.record_billing_failure(live["id"], reason, now, now)
        await audit.record(
            None,
            tenant_id,
            "subscription.canceled",
            "subscription",
            live["id"],
            before=summary(live),
            after=summary(live) | {"status": Status.CANCELED.value, "final_invoice_error": reason},
        )
    else:
        await savepoint.release()


async def detach_erased_cards(gateway: StripeGateway, tenant_id: uuid.UUID) -> None:
    """After the erasure committed: each card still attached leaves Stripe's customer, then is marked."""
    async with tenant_tx(tenant_id):
        methods = await payments_repository.attached_payment_methods(tenant_id)
    for method in methods:
        await asyncio.to_thread(gateway.detach_card, method["stripe_payment_method_id"])
        async with tenant_tx(tenant_id):
            await payments_repository.mark_detached(tenant_id, method["id"])
