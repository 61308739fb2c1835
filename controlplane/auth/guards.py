"""Guards: plain functions `(connection, handler) -> None` that raise.

Tenant routes declare the permission they need in `opt={"permission": Permission.X}`; `tenant_access`
checks it for the tenant in the path. The database confines the handler's queries to that tenant anyway;
this check decides whether this principal may act there at all.
"""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from controlplane.auth.principal import Principal
from controlplane.exceptions import StaffOnly
from tenants import service
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
