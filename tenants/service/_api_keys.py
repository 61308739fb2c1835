"""Tenant API keys: created (secret shown once), listed, revoked."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

from controlplane.core import invalidation
from controlplane.core.auth import api_keys as api_key_format
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import audit, repository
from tenants.errors import ApiKeyNotFound
from tenants.roles import Permission
from tenants.service._access import actor_role, check_grant
from tenants.service._auth import API_KEY_TOPIC, check_access


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    """A tenant's API key (never its secret or its hash)."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    role: str
    created_by: uuid.UUID | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A key just created, and its full text: shown this once, stored only as a hash."""

    key: ApiKeyView
    secret: str


async def create_api_key(actor: Principal, tenant_id: uuid.UUID, name: str, role: str) -> NewApiKey:
    """The key and its full text, which is shown this once and stored only as a hash."""
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
    return NewApiKey(view_of(ApiKeyView, row), text)


async def list_api_keys(tenant_id: uuid.UUID, page: PageRequest) -> Page[ApiKeyView]:
    async with tenant_tx(tenant_id):
        rows = await repository.list_api_keys(tenant_id, page)
    return page_of_views(rows, page, functools.partial(view_of, ApiKeyView))


async def revoke_api_key(actor: Principal, tenant_id: uuid.UUID, key_id: uuid.UUID) -> None:
    """Idempotent: revoking a revoked key changes nothing and records nothing."""
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_API_KEYS, method="DELETE")
        if await repository.revoke_api_key(key_id) is not None:
            await invalidation.publish(API_KEY_TOPIC, key_id)
            await audit.record(actor, tenant_id, "api_key.revoked", "api_key", key_id)
        elif await repository.get_api_key(key_id) is None:
            raise ApiKeyNotFound()
