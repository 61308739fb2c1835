"""Reading a tenant's audit trail (writing it is `tenants.audit`)."""

from __future__ import annotations

import uuid

from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of
from tenants import repository
from tenants.service._page import Page


async def list_audit_events(tenant_id: uuid.UUID, page: PageRequest) -> Page:
    async with tenant_tx(tenant_id):
        rows = await repository.list_audit_events(tenant_id, page)
    return page_of(rows, page)
