"""A tenant's data export: everything the tenant owns, read inside its own context."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from controlplane.core.db import tenant_tx
from tenants import repository
from tenants.errors import TenantNotFound


@dataclass(frozen=True, slots=True)
class ExportedTenant:
    id: str
    name: str
    slug: str
    status: str
    currency: str


@dataclass(frozen=True, slots=True)
class ExportedMember:
    user_id: str
    email: str
    role: str


@dataclass(frozen=True, slots=True)
class ExportedApiKey:
    id: str
    name: str
    role: str
    revoked: bool


@dataclass(frozen=True, slots=True)
class TenantExport:
    """What the tenant owns, as plain values (the worker hands it on as JSON)."""

    tenant: ExportedTenant
    tenants_visible: int  # 1 by construction; kept so a leak would show in the export
    members: list[ExportedMember]
    api_keys: list[ExportedApiKey]
    audit_events: int


async def export_tenant(tenant_id: uuid.UUID) -> TenantExport:
    async with tenant_tx(tenant_id):
        # Unfiltered reads: row-level security is what confines them to this one tenant.
        visible = await repository.visible_tenants()
        members = await repository.visible_members()
        api_keys = await repository.visible_api_keys()
        audit_events = await repository.count_visible_audit_events()
    if not visible:
        raise TenantNotFound()
    tenant = visible[0]
    return TenantExport(
        tenant=ExportedTenant(**{name: str(tenant[name]) for name in ("id", "name", "slug", "status", "currency")}),
        tenants_visible=len(visible),
        members=[ExportedMember(user_id=str(m["user_id"]), email=m["email"], role=m["role"]) for m in members],
        api_keys=[
            ExportedApiKey(id=str(k["id"]), name=k["name"], role=k["role"], revoked=k["revoked_at"] is not None)
            for k in api_keys
        ],
        audit_events=audit_events,
    )
