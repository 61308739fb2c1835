"""A tenant's people and keys in the console: members (invite, change a role, remove), API keys (create, shown
once; revoke) and the audit trail. The same service calls as the API's member, key and audit routes, whose own
access checks (and role grants: who may grant which role) apply."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter
from litestar.response import Redirect
from msgspec import Meta

from controlplane.console.pages import may, signed_in, tenant_in_view
from controlplane.console.params import PAGE_SIZE, Cursor, Form, TenantPath
from controlplane.console.rendering import page
from controlplane.core.pagination import PageRequest
from controlplane.core.web import Email, Name
from tenants import service as tenants
from tenants.roles import TENANT_ROLES, Permission

UserPath = Annotated[uuid.UUID, PathParameter(description="The member's user id")]
KeyPath = Annotated[uuid.UUID, PathParameter(description="The API key's id")]
ROLES = tuple(role.value for role in TENANT_ROLES)


@dataclass
class MemberForm:
    csrf_token: str
    email: Email  # the API's own checks: one bare address, a one-line name
    role: Annotated[str, Meta(max_length=32)]


@dataclass
class RoleForm:
    csrf_token: str
    role: Annotated[str, Meta(max_length=32)]


@dataclass
class KeyForm:
    csrf_token: str
    name: Name
    role: Annotated[str, Meta(max_length=32)]


class TeamPages(Controller):
    path = "/tenants/{tenant_id:uuid}"
    include_in_schema = False

    @get("/members")
    async def members(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, cursor: Cursor = None
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_MEMBERS)
        found = await tenants.list_members(tenant_id, PageRequest.parse(PAGE_SIZE, cursor))
        manage = await may(principal, tenant_id, Permission.MANAGE_MEMBERS, method="POST")
        return page(
            request,
            "members.html",
            tenant=tenant,
            members=found.items,
            next_cursor=found.next_cursor,
            manage=manage,
            roles=ROLES,
        )

    @post("/members", status_code=303)
    async def add_member(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[MemberForm, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.add_member(principal, tenant_id, data.email, data.role)
        return Redirect(f"/console/tenants/{tenant_id}/members", status_code=303)

    @post("/members/{user_id:uuid}/role", status_code=303)
    async def change_role(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, user_id: UserPath, data: Annotated[RoleForm, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.change_member_role(principal, tenant_id, user_id, data.role)
        return Redirect(f"/console/tenants/{tenant_id}/members", status_code=303)

    @post("/members/{user_id:uuid}/remove", status_code=303)
    async def remove_member(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, user_id: UserPath
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.remove_member(principal, tenant_id, user_id)
        return Redirect(f"/console/tenants/{tenant_id}/members", status_code=303)

    @get("/api-keys")
    async def api_keys(self, request: Request[Any, Any, Any], tenant_id: TenantPath) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.MANAGE_API_KEYS)
        found = await tenants.list_api_keys(tenant_id, PageRequest.parse(PAGE_SIZE, None))
        return page(request, "api_keys.html", tenant=tenant, keys=found.items, roles=ROLES, created=None)

    @post("/api-keys", status_code=201)
    async def create_api_key(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[KeyForm, Form]
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.MANAGE_API_KEYS)
        created = await tenants.create_api_key(principal, tenant_id, data.name.strip() or "API key", data.role)
        found = await tenants.list_api_keys(tenant_id, PageRequest.parse(PAGE_SIZE, None))
        # The secret is in this answer only: a reload shows the list without it.
        return page(request, "api_keys.html", status=201, tenant=tenant, keys=found.items, roles=ROLES, created=created)

    @post("/api-keys/{key_id:uuid}/revoke", status_code=303)
    async def revoke_api_key(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, key_id: KeyPath
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.revoke_api_key(principal, tenant_id, key_id)
        return Redirect(f"/console/tenants/{tenant_id}/api-keys", status_code=303)

    @get("/audit")
    async def audit(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, cursor: Cursor = None
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_AUDIT)
        found = await tenants.list_audit_events(tenant_id, PageRequest.parse(PAGE_SIZE, cursor))
        return page(request, "audit.html", tenant=tenant, events=found.items, next_cursor=found.next_cursor)
