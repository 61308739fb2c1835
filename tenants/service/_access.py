"""Who may grant which role: checks shared by the use cases that add members and API keys."""

from __future__ import annotations

import uuid

from controlplane.core.auth.principal import Principal
from controlplane.core.errors import InvalidInput
from tenants import repository
from tenants.errors import RoleNotGrantable
from tenants.roles import TENANT_ROLES, may_grant


def check_grant(actor: Principal, actor_role: str | None, role: str) -> None:
    if role not in TENANT_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(TENANT_ROLES)}")
    if not actor.is_staff and not may_grant(actor_role, role):
        raise RoleNotGrantable()


async def actor_role(actor: Principal, tenant_id: uuid.UUID) -> str | None:
    if actor.kind == "api_key":
        return actor.api_key_role
    membership = await repository.get_membership(tenant_id, actor.id)
    return membership["role"] if membership else None
