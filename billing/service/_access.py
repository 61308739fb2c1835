"""Which tenant an id-addressed subscription or invoice belongs to, and may this principal act there."""

from __future__ import annotations

import uuid

from billing import repository
from billing.errors import EscrowNotFound, InvoiceNotFound, SubscriptionNotFound
from controlplane.auth.principal import Principal
from controlplane.db import SystemReason, system_tx, tenant_tx
from tenants.errors import TenantNotFound
from tenants.roles import Permission
from tenants.service import authorize

NOT_FOUND = {"subscriptions": SubscriptionNotFound, "invoices": InvoiceNotFound, "escrows": EscrowNotFound}


async def tenant_of(
    principal: Principal, table: str, resource_id: uuid.UUID, permission: Permission, method: str
) -> uuid.UUID:
    """The owning tenant, once `principal` is authorized there; otherwise the resource is not found.

    An API key can only reach its own tenant, so it looks there directly. Others need a routing lookup
    across tenants; a principal without access gets the same 404 as for an id that does not exist.
    """
    if principal.kind == "api_key" and principal.tenant_id is not None:
        async with tenant_tx(principal.tenant_id):
            tenant_id = await repository.resource_tenant(table, resource_id)
    else:
        async with system_tx(SystemReason.ROUTING):
            tenant_id = await repository.resource_tenant(table, resource_id)
    if tenant_id is None:
        raise NOT_FOUND[table]()
    try:
        await authorize(principal, tenant_id, permission, method=method)
    except TenantNotFound:
        raise NOT_FOUND[table]() from None
    return tenant_id
