"""A tenant's data export: everything the tenant owns, read inside its own context."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.db import fetch, tenant_tx
from tenants.errors import TenantNotFound


async def export_tenant(tenant_id: uuid.UUID) -> dict[str, Any]:
    async with tenant_tx(tenant_id):
        tenants = await fetch("select id, name, slug, status, currency from tenants")
        members = await fetch(
            "select m.user_id, u.email, m.role from memberships m join users u on u.id = m.user_id "
            "order by m.created_at"
        )
        api_keys = await fetch("select id, name, role, revoked_at from api_keys order by created_at")
        audit_count = await fetch("select count(*) as n from audit_events")
    if not tenants:
        raise TenantNotFound()
    # No tenant filter above: row-level security is what confines these reads to one tenant.
    return {
        "tenant": {k: str(v) for k, v in tenants[0].items()},
        "tenants_visible": len(tenants),
        "members": [{"user_id": str(m["user_id"]), "email": m["email"], "role": m["role"]} for m in members],
        "api_keys": [
            {"id": str(k["id"]), "name": k["name"], "role": k["role"], "revoked": k["revoked_at"] is not None}
            for k in api_keys
        ],
        "audit_events": int(audit_count[0]["n"]),
    }
