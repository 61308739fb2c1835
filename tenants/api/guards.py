"""Guards: plain functions `(connection, handler) -> None` that raise.

Tenant routes declare the permission they need in `opt={"permission": Permission.X}`; `tenant_access`
checks it for the tenant in the path. The database confines the handler's queries to that tenant anyway;
this check decides whether this principal may act there at all.
"""

from __future__ import annotations

import uuid
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from controlplane.core.auth.principal import Principal
from controlplane.core.errors import DomainError, StaffOnly
from controlplane.core.problems import problem_responses
from tenants import service
from tenants.errors import SuspendedForNonPayment
from tenants.roles import Permission


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    return connection.user


def _automatic_options(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> bool:
    """Litestar's own OPTIONS answer (the `Allow` header) inherits a controller's guards, but the
    authentication middleware lets OPTIONS through without a principal: it reveals nothing, so it is allowed
    (rather than failing on the missing principal with a 500). An OPTIONS handler of our own is guarded."""
    return connection.scope.get("method") == "OPTIONS" and handler.handler_name == "options_handler"


def staff_only(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if _automatic_options(connection, handler):
        return
    if not principal_of(connection).is_staff:
        raise StaffOnly()


async def tenant_access(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if _automatic_options(connection, handler):
        return
    permission = handler.opt.get("permission")
    if not isinstance(permission, Permission):
        raise RuntimeError(f"{handler} has the tenant_access guard but declares no permission")
    principal = principal_of(connection)
    if permission is Permission.STAFF_ONLY:
        staff_only(connection, handler)
        return
    await service.authorize(
        principal,
        connection.path_params["tenant_id"],
        permission,
        method=str(connection.scope.get("method", "GET")),
    )


def allow(permission: Permission, *errors: int, shown_once: tuple[str, ...] = ()) -> dict[str, Any]:
    """The guard of a route under a tenant, and the errors it documents beyond those every such route can give.

    `shown_once` names response fields (secrets) that an idempotent replay leaves out.
    """
    return {
        "guards": [tenant_access],
        "opt": {"permission": permission, "idempotency_redact": shown_once},
        "responses": problem_responses(400, 401, 403, 404, *errors),
    }


async def may_act_in(principal: Principal, tenant_id: uuid.UUID) -> bool:
    """Whether the principal may act in the tenant at all (the idempotency middleware asks before it stores)."""
    try:
        await service.authorize(principal, tenant_id, Permission.READ_TENANT, method="GET")
    except SuspendedForNonPayment:
        return True  # a member still, who may settle: its billing POSTs must retry safely too
    except DomainError:
        return False
    return True
