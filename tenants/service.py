"""Use cases of the tenants domain: each opens its transaction, checks, writes, and audits.

Authorization of the principal for a tenant happens in `authorize` (called by the API guards) and the
database's row-level security confines every query to the tenant in context.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from controlplane import idempotency
from controlplane.auth import api_keys as api_key_format
from controlplane.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from controlplane.auth.principal import Principal
from controlplane.db import SystemReason, anonymous_tx, system_tx, tenant_tx, user_tx
from controlplane.exceptions import InvalidInput
from controlplane.pagination import PageRequest, page_of
from tenants import audit, repository
from tenants.errors import (
    ApiKeyNotFound,
    ForbiddenForRole,
    InvalidCredentials,
    InvalidStatusTransition,
    LastAdmin,
    MemberExists,
    MemberNotFound,
    RevokedApiKey,
    RoleNotGrantable,
    TenantNotActive,
    TenantNotFound,
    TenantSlugTaken,
    UserExists,
    WeakPassword,
)
from tenants.roles import TENANT_ROLES, Permission, Role, may_grant, role_allows
from tenants.status import TenantStatus, next_status

Page = tuple[list[dict[str, Any]], str | None]


# -- authentication -----------------------------------------------------------------------------


async def authenticate_password(email: str, password: str) -> dict[str, Any]:
    async with anonymous_tx():
        user = await repository.get_user_by_email(email.strip().lower())
    ok = verify_password(user["password_hash"] if user else None, password)
    if not ok or user is None or user["status"] != "active":
        raise InvalidCredentials()
    return user


async def principal_for_user(user_id: uuid.UUID) -> Principal:
    async with anonymous_tx():
        user = await repository.get_user(user_id)
    if user is None or user["status"] != "active":
        raise InvalidCredentials("the token's user no longer exists or is disabled")
    return Principal(kind="user", id=user["id"], is_staff=user["is_platform_staff"])


async def principal_for_api_key(text: str) -> Principal:
    parsed = api_key_format.parse(text)
    if parsed is None:
        raise RevokedApiKey("the API key is malformed")
    async with tenant_tx(parsed.tenant_id):
        key = await repository.get_api_key(parsed.key_id)
        if (
            key is None
            or key["revoked_at"] is not None
            or not api_key_format.secret_matches(parsed.secret, key["secret_hash"])
        ):
            raise RevokedApiKey()
        await repository.touch_api_key(parsed.key_id)
    return Principal(kind="api_key", id=parsed.key_id, tenant_id=parsed.tenant_id, api_key_role=key["role"])


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def authorize(principal: Principal, tenant_id: uuid.UUID, permission: Permission, *, method: str) -> None:
    """Raise unless `principal` may use `permission` on the tenant with this HTTP method.

    Unknown and foreign tenants look alike (404). A suspended tenant's own principals may only read.
    Staff act on suspended tenants too, and on a tenant being erased they may only read or remove
    (so a retried erasure succeeds but nothing new is added).
    """
    writes = method not in READ_METHODS
    if principal.kind == "api_key" and principal.tenant_id != tenant_id:
        raise TenantNotFound()
    async with tenant_tx(tenant_id):
        tenant = await repository.get_tenant(tenant_id)
        membership = None
        if tenant is not None and principal.kind == "user" and not principal.is_staff:
            membership = await repository.get_membership(tenant_id, principal.id)
    if tenant is None:
        raise TenantNotFound()
    if principal.is_staff:
        # Staff act on suspended tenants, but nothing new is added to one being erased.
        if writes and method != "DELETE" and tenant["status"] == TenantStatus.PENDING_DELETION:
            raise TenantNotActive("the tenant is being deleted")
        return
    role = principal.api_key_role if principal.kind == "api_key" else membership["role"] if membership else None
    if role is None or tenant["status"] == TenantStatus.PENDING_DELETION:
        raise TenantNotFound()
    if not role_allows(role, permission):
        raise ForbiddenForRole(f"role {role} does not allow {permission}")
    if writes and tenant["status"] != TenantStatus.ACTIVE:
        raise TenantNotActive()


# -- users --------------------------------------------------------------------------------------


def _normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or len(email) < 3:
        raise InvalidInput("email is not an email address")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"passwords have at least {MIN_PASSWORD_LENGTH} characters")


async def create_or_update_user(
    email: str, password: str, *, staff: bool, tenant_id: uuid.UUID | None = None, role: str | None = None
) -> dict[str, Any]:
    """For operators (the CLI): create the user, or set the password of an existing one; join a tenant."""
    email = _normalise_email(email)
    _check_password(password)
    password_hash = hash_password(password)
    async with anonymous_tx():
        user = await repository.get_user_by_email(email)
        if user is None:
            user = await repository.insert_user(uuid.uuid4(), email, password_hash, staff)
            if user is None:
                raise UserExists()
        else:
            await repository.set_user_password(user["id"], password_hash, staff or None)
    if tenant_id is not None:
        if role not in TENANT_ROLES:
            raise InvalidInput(f"role must be one of {', '.join(TENANT_ROLES)}")
        async with tenant_tx(tenant_id):
            if await repository.get_tenant(tenant_id) is None:
                raise TenantNotFound()
            if await repository.get_membership(tenant_id, user["id"]) is None:
                await repository.insert_membership(tenant_id, user["id"], role)
                await audit.record(None, tenant_id, "member.added", "user", user["id"], after={"role": role})
    return user


async def find_user(email: str) -> dict[str, Any] | None:
    async with anonymous_tx():
        return await repository.get_user_by_email(_normalise_email(email))


# -- tenants ------------------------------------------------------------------------------------


async def create_tenant(actor: Principal, values: dict[str, Any]) -> dict[str, Any]:
    tenant_id = uuid.uuid4()
    async with system_tx(SystemReason.STAFF_CHANGE):
        row = await repository.insert_tenant({**values, "id": tenant_id})
        if row is None:
            raise TenantSlugTaken()
        await audit.record(actor, tenant_id, "tenant.created", "tenant", tenant_id, after=audit.tenant_summary(row))
    return row


async def list_tenants(actor: Principal, page: PageRequest) -> Page:
    if actor.is_staff:
        async with system_tx(SystemReason.STAFF_VIEW):
            rows = await repository.list_tenants(page)
    elif actor.kind == "api_key" and actor.tenant_id is not None:
        async with tenant_tx(actor.tenant_id):
            rows = await repository.list_tenants(page)
    else:
        # The database shows a user only the tenants they are a member of.
        async with user_tx(actor.id):
            rows = await repository.list_tenants(page)
    return page_of(rows, page)


async def get_tenant(tenant_id: uuid.UUID) -> dict[str, Any]:
    async with tenant_tx(tenant_id):
        row = await repository.get_tenant(tenant_id)
    if row is None:
        raise TenantNotFound()
    return row


async def update_tenant(actor: Principal, tenant_id: uuid.UUID, changes: dict[str, Any]) -> dict[str, Any]:
    async with tenant_tx(tenant_id):
        before = await repository.get_tenant(tenant_id, for_update=True)
        if before is None:
            raise TenantNotFound()
        if not changes:
            return before
        after = await repository.update_tenant(tenant_id, changes)
        await audit.record(
            actor,
            tenant_id,
            "tenant.updated",
            "tenant",
            tenant_id,
            before=audit.tenant_summary(before) | {"fields": sorted(changes)},
            after=audit.tenant_summary(after),
        )
    return after


async def change_status(actor: Principal, tenant_id: uuid.UUID, action: str) -> dict[str, Any]:
    """suspend / reactivate. Repeating the same request answers with the current state."""
    async with tenant_tx(tenant_id):
        before = await repository.get_tenant(tenant_id, for_update=True)
        if before is None:
            raise TenantNotFound()
        target = next_status(TenantStatus(before["status"]), action)
        if target is None:
            raise InvalidStatusTransition(f"a {before['status']} tenant cannot be {action}d")
        if target == before["status"]:
            return before
        after = await repository.update_tenant(tenant_id, {"status": target.value})
        await audit.record(
            actor,
            tenant_id,
            f"tenant.{action}ed" if action != "reactivate" else "tenant.reactivated",
            "tenant",
            tenant_id,
            before={"status": before["status"]},
            after={"status": after["status"]},
        )
    return after


async def request_erasure(actor: Principal, tenant_id: uuid.UUID) -> dict[str, Any]:
    """Remove the tenant's personal data (billing contact, members, keys); keep financial records."""
    async with tenant_tx(tenant_id):
        before = await repository.get_tenant(tenant_id, for_update=True)
        if before is None:
            raise TenantNotFound()
        if before["status"] == TenantStatus.PENDING_DELETION:
            return before
        after = await repository.update_tenant(
            tenant_id,
            {
                "status": TenantStatus.PENDING_DELETION.value,
                "billing_email": None,
                "erasure_requested_at": datetime.now(UTC),
            },
        )
        former_members = await repository.delete_all_memberships(tenant_id)
        await repository.revoke_all_api_keys(tenant_id)
        await idempotency.forget_tenant(tenant_id)
        await audit.record(
            actor,
            tenant_id,
            "tenant.erasure_requested",
            "tenant",
            tenant_id,
            before={"status": before["status"]},
            after={"status": after["status"], "members_removed": len(former_members), "api_keys_revoked": True},
        )
    # Whether a former member still belongs to another tenant is a question across tenants: with no
    # context every membership reads as absent, and users of other tenants would be erased too.
    async with system_tx(SystemReason.ERASURE):
        await repository.erase_orphaned_users(former_members)
    return after


# -- members ------------------------------------------------------------------------------------


def _check_grant(actor: Principal, actor_role: str | None, role: str) -> None:
    if role not in TENANT_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(TENANT_ROLES)}")
    if not actor.is_staff and not may_grant(actor_role, role):
        raise RoleNotGrantable()


async def _require_tenant(tenant_id: uuid.UUID) -> None:
    """Inside `tenant_tx`, before inserting a tenant's rows: staff pass `authorize` without this check."""
    if await repository.get_tenant(tenant_id) is None:
        raise TenantNotFound()


async def _actor_role(actor: Principal, tenant_id: uuid.UUID) -> str | None:
    if actor.kind == "api_key":
        return actor.api_key_role
    membership = await repository.get_membership(tenant_id, actor.id)
    return membership["role"] if membership else None


async def add_member(actor: Principal, tenant_id: uuid.UUID, email: str, role: str) -> dict[str, Any]:
    email = _normalise_email(email)
    async with anonymous_tx():
        user = await repository.get_user_by_email(email)
        if user is None:
            # An invited user: no password until an operator or a later invitation flow sets one.
            user = await repository.insert_user(uuid.uuid4(), email, None, False)
            if user is None:
                user = await repository.get_user_by_email(email)
    assert user is not None
    async with tenant_tx(tenant_id):
        await _require_tenant(tenant_id)
        _check_grant(actor, await _actor_role(actor, tenant_id), role)
        member = await repository.insert_membership(tenant_id, user["id"], role)
        if member is None:
            raise MemberExists()
        await audit.record(actor, tenant_id, "member.added", "user", user["id"], after={"role": role})
    return member


async def _lock_memberships(tenant_id: uuid.UUID) -> None:
    """Inside `tenant_tx`: serialise changes of the tenant's members on its row, so two concurrent demotions or
    removals cannot each count the other admin and leave the tenant with none."""
    await repository.get_tenant(tenant_id, for_update=True)


async def list_members(tenant_id: uuid.UUID, page: PageRequest) -> Page:
    async with tenant_tx(tenant_id):
        rows = await repository.list_memberships(tenant_id, page)
    return page_of(rows, page)


async def get_member(tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any]:
    async with tenant_tx(tenant_id):
        member = await repository.get_membership(tenant_id, user_id)
    if member is None:
        raise MemberNotFound()
    return member


async def change_member_role(actor: Principal, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str) -> dict[str, Any]:
    async with tenant_tx(tenant_id):
        await _lock_memberships(tenant_id)
        _check_grant(actor, await _actor_role(actor, tenant_id), role)
        member = await repository.get_membership(tenant_id, user_id)
        if member is None:
            raise MemberNotFound()
        if member["role"] == role:
            return member
        if member["role"] == Role.TENANT_ADMIN and await repository.count_admins(tenant_id) <= 1:
            raise LastAdmin()
        await repository.update_membership_role(tenant_id, user_id, role)
        await audit.record(
            actor,
            tenant_id,
            "member.role_changed",
            "user",
            user_id,
            before={"role": member["role"]},
            after={"role": role},
        )
        updated = await repository.get_membership(tenant_id, user_id)
    assert updated is not None
    return updated


async def remove_member(actor: Principal, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Idempotent: removing someone who is not a member is not an error."""
    async with tenant_tx(tenant_id):
        await _lock_memberships(tenant_id)
        member = await repository.get_membership(tenant_id, user_id)
        if member is None:
            return
        if member["role"] == Role.TENANT_ADMIN and await repository.count_admins(tenant_id) <= 1:
            raise LastAdmin()
        await repository.delete_membership(tenant_id, user_id)
        await audit.record(actor, tenant_id, "member.removed", "user", user_id, before={"role": member["role"]})


# -- API keys -----------------------------------------------------------------------------------


async def create_api_key(actor: Principal, tenant_id: uuid.UUID, name: str, role: str) -> tuple[dict[str, Any], str]:
    """The key row and its full text, which is shown this once and stored only as a hash."""
    key_id = uuid.uuid4()
    text, secret_hash = api_key_format.generate(tenant_id, key_id)
    async with tenant_tx(tenant_id):
        await _require_tenant(tenant_id)
        _check_grant(actor, await _actor_role(actor, tenant_id), role)
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
    async with tenant_tx(tenant_id):
        before = await repository.get_api_key(key_id)
        if before is None:
            raise ApiKeyNotFound()
        if before["revoked_at"] is not None:
            return
        await repository.revoke_api_key(key_id)
        await audit.record(actor, tenant_id, "api_key.revoked", "api_key", key_id)


# -- audit --------------------------------------------------------------------------------------


async def list_audit_events(tenant_id: uuid.UUID, page: PageRequest) -> Page:
    async with tenant_tx(tenant_id):
        rows = await repository.list_audit_events(tenant_id, page)
    return page_of(rows, page)
