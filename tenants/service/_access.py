"""Checks shared by the use cases that add rows under a tenant."""

from __future__ import annotations

import uuid

from controlplane.auth.principal import Principal
from controlplane.exceptions import InvalidInput
from tenants import repository
from tenants.errors import RoleNotGrantable, TenantNotActive, TenantNotFound
from tenants.roles import TENANT_ROLES, may_grant
from tenants.status import TenantStatus


def check_grant(actor: Principal, actor_role: str | None, role: str) -> None:
    if role not in TENANT_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(TENANT_ROLES)}")
    if not actor.is_staff and not may_grant(actor_role, role):
        raise RoleNotGrantable()


async def require_tenant(tenant_id: uuid.UUID) -> None:
    """Inside `tenant_tx`, before adding rows under a tenant: it exists and is not being erased.

    The share lock holds off a concurrent erasure (which locks the row for update) until this transaction
    commits, so nothing is added to a tenant after its erasure. Callers other than the API skip `authorize`.
    """
    tenant = await repository.get_tenant(tenant_id, lock="share")
    if tenant is None:
        raise TenantNotFound()
    if tenant["status"] == TenantStatus.PENDING_DELETION:
        raise TenantNotActive("the tenant is being deleted")


async def actor_role(actor: Principal, tenant_id: uuid.UUID) -> str | None:
    if actor.kind == "api_key":
        return actor.api_key_role
    membership = await repository.get_membership(tenant_id, actor.id)
    return membership["role"] if membership else None
