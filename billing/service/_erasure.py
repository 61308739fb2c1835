"""A tenant's erasure, as billing sees it (registered as tenants.hooks by the composition root).

In the erasure's tenant transaction: the live subscription is cancelled now (the final invoice and credit
notes follow the ordinary cancel rules), every add-on ends, and no card stays the default, so no cycle
bills and no collection charges the tenant again. After it commits: the cards are detached at Stripe, each
marked once done, so a retry after an outage (503) detaches only what is left.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from billing import addons_repository, payments_repository, repository
from billing.payments_gateway import StripeGateway
from billing.service._subscriptions import cancel_in_tx
from billing.states import Status
from controlplane.db import tenant_tx
from tenants import audit


async def end_for_erased_tenant(tenant_id: uuid.UUID, now: datetime) -> None:
    """Inside the erasure's tenant transaction; idempotent."""
    live = await repository.live_subscription(tenant_id, lock="update")
    if live is not None and live["status"] != Status.CANCELED:
        await cancel_in_tx(None, tenant_id, live["id"], False, now)
    for addon in await addons_repository.end_all_addons(tenant_id, now):
        await audit.record(
            None,
            tenant_id,
            "subscription_addon.ended",
            "subscription",
            addon["subscription_id"],
            after={"addon_id": str(addon["id"]), "ended_at": addon["ended_at"].isoformat(), "reason": "tenant_erased"},
        )
    await payments_repository.retire_payment_methods(tenant_id)


async def detach_erased_cards(gateway: StripeGateway, tenant_id: uuid.UUID) -> None:
    """After the erasure committed: each card still attached leaves Stripe's customer, then is marked."""
    async with tenant_tx(tenant_id):
        methods = await payments_repository.attached_payment_methods(tenant_id)
    for method in methods:
        await asyncio.to_thread(gateway.detach_card, method["stripe_payment_method_id"])
        async with tenant_tx(tenant_id):
            await payments_repository.mark_detached(tenant_id, method["id"])
