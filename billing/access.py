"""Which tenant an id-addressed subscription or invoice belongs to, and may this principal act there."""

from __future__ import annotations

import uuid

from billing.errors import EscrowNotFound, InvoiceNotFound, SubscriptionNotFound
from billing.invoices import repository as invoices_repository
from controlplane.core.auth.principal import Principal
from tenants.roles import Permission
from tenants.service import tenant_for_resource

NOT_FOUND = {"subscriptions": SubscriptionNotFound, "invoices": InvoiceNotFound, "escrows": EscrowNotFound}


async def tenant_of(
    principal: Principal, table: str, resource_id: uuid.UUID, permission: Permission, method: str
) -> uuid.UUID:
    """The tenant owning a subscription, invoice or escrow, once `principal` is authorized there."""
    return await tenant_for_resource(
        principal, lambda: invoices_repository.resource_tenant(table, resource_id), NOT_FOUND[table], permission, method
    )
