"""Tenant API keys: created (secret shown once), listed, revoked."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.core import invalidation
from controlplane.core.auth import api_keys as api_key_format
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of
from tenants import audit, repository
from tenants.errors import ApiKeyNotFound
from tenants.roles import Permission
from tenants.service._access import actor_role, check_grant
from tenants.service._auth import API_KEY_TOPIC, check_access
from tenants.service._page import Page


async def create_api_key(actor: Principal, tenant_id: uuid.UUID, name: str, role: str) -> tuple[dict[str, Any], str]:
    """The key row and its full text, which is shown this once and stored only as a hash."""
    key_id = uuid.uuid4()
    text, secret_hash = api_key_format.generate(tenant_id, key_id)
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_API_KEYS, method="POST")
        check_grant(actor, await actor_role(actor, tenant_id), role)
        row = await repository.insert_api_key(
            {
                "id": key_id,
                "tenant_id": tenant_id,
                "name": name,
                "role": role,
                "secret_hash": secret_hash,
                "created_by": actor.id if actor.kind == "user" else None,
            }
        )
        await audit.record(actor, tenant_id, "api_key.created", "api_key", key_id, after={"role": role})
    return row, text


async def list_api_keys(tenant_id: uuid.UUID, page: PageRequest) -> Page:
    async with tenant_tx(tenant_id):
        rows = await repository.list_api_keys(tenant_id, page)
    return page_of(rows, page)


async def revoke_api_key(actor: Principal, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Idempotent: revoking a revoked key changes nothing and records nothing."""
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_API_KEYS, method="DELETE")
        if await repository.revoke_api_key(key_id) is not None:
            await invalidation.publish(API_KEY_TOPIC, key_id)
            await audit.record(actor, tenant_id, "api_key.revoked", "api_key", key_id)
        elif await repository.get_api_key(key_id) is None:
            raise ApiKeyNotFound()
