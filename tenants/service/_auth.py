"""Who is asking, and may they act in this tenant."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from controlplane.core.auth import api_keys as api_key_format
from controlplane.core.auth.passwords import verify_password
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx, user_tx
from controlplane.core.errors import DomainError
from controlplane.core.invalidation import Cache
from controlplane.core.views import view_of
from tenants import repository
from tenants.errors import (
    ForbiddenForRole,
    InvalidCredentials,
    RevokedApiKey,
    SuspendedForNonPayment,
    TenantNotActive,
    TenantNotFound,
)
from tenants.roles import BILLING_PERMISSIONS, Permission, role_allows
from tenants.service._users import UserView
from tenants.status import TenantStatus


async def authenticate_password(email: str, password: str) -> UserView:
    # Finding a person by email reads across every tenant's users.
    async with system_tx(SystemReason.AUTHENTICATION):
        user = await repository.get_user_by_email(email.strip().lower())
    ok = await verify_password(user["password_hash"] if user else None, password)
    if not ok or user is None or user["status"] != "active":
        raise InvalidCredentials()
    return view_of(UserView, user)


# user id -> the principal of an active user. A person's every request would otherwise open a transaction
# just to read their own row; a change to the row (disabled, erased, staff or not) evicts at once, in every
# process (`repository.USER_TOPIC`; a password change or "sign out everywhere" too, which moves its
# session generation on), and an entry is re-read after a minute at the latest. Only active users
# are kept: a refused token is looked up again each time.
_principals: Cache[uuid.UUID, Principal] = Cache(repository.USER_TOPIC, uuid.UUID, ttl_seconds=60.0)


async def principal_for_user(user_id: uuid.UUID) -> Principal:
    cached = _principals.get(user_id)
    if cached is not None:
        return cached
    generation = _principals.generation()
    async with user_tx(user_id):
        user = await repository.get_user(user_id)
    if user is None or user["status"] != "active":
        raise InvalidCredentials("the token's user no longer exists or is disabled")
    principal = Principal(
        kind="user", id=user["id"], is_staff=user["is_platform_staff"], session_generation=user["session_generation"]
    )
    _principals.put(user_id, principal, generation)
    return principal


API_KEY_TOPIC = "api_key"
ALL_KEYS = "*"  # published when a whole tenant's keys are revoked: not a key id, so every entry goes
# key id -> (tenant id, secret hash, role). Machine traffic (the entitlement check) would otherwise open a
# transaction per request; a revocation evicts at once, and an entry is re-read (and the key's last use
# recorded) after a minute at the latest.
_api_keys: Cache[uuid.UUID, tuple[uuid.UUID, bytes, str]] = Cache(API_KEY_TOPIC, uuid.UUID, ttl_seconds=60.0)


# Credentials already verified -> (key id, principal): the hot path skips parsing and hashing. An entry
# counts only while its key is in `_api_keys`, so a revocation or the minute's limit ends it too.
_verified: dict[str, tuple[uuid.UUID, Principal]] = {}
MAX_VERIFIED = 100_000


def verified_api_key(text: str) -> Principal | None:
    """The principal of an API key verified a moment ago and not revoked since; None when it must be looked up."""
    known = _verified.get(text)
    if known is not None and _api_keys.get(known[0]) is not None:
        return known[1]
    return None


async def principal_for_api_key(text: str) -> Principal:
    known = verified_api_key(text)
    if known is not None:
        return known
    parsed = api_key_format.parse(text)
    if parsed is None:
        raise RevokedApiKey("the API key is malformed")
    cached = _api_keys.get(parsed.key_id)
    if cached is None:
        generation = _api_keys.generation()
        async with tenant_tx(parsed.tenant_id):
            key = await repository.get_api_key(parsed.key_id)
            if (
                key is None
                or key["revoked_at"] is not None
                or not api_key_format.secret_matches(parsed.secret, key["secret_hash"])
            ):
                raise RevokedApiKey()
            await repository.touch_api_key(parsed.key_id)
        cached = (key["tenant_id"], bytes(key["secret_hash"]), key["role"])
        _api_keys.put(parsed.key_id, cached, generation)
    tenant_id, secret_hash, role = cached
    if tenant_id != parsed.tenant_id or not api_key_format.secret_matches(parsed.secret, secret_hash):
        raise RevokedApiKey()
    principal = Principal(kind="api_key", id=parsed.key_id, tenant_id=parsed.tenant_id, api_key_role=role)
    if len(_verified) >= MAX_VERIFIED:
        _verified.clear()
    _verified[text] = (parsed.key_id, principal)
    return principal


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def tenant_for_resource(
    principal: Principal,
    lookup: Callable[[], Awaitable[uuid.UUID | None]],
    not_found: type[DomainError],
    permission: Permission,
    method: str,
) -> uuid.UUID:
    """The tenant owning an id-addressed resource (`lookup` reads its tenant id), once `principal` is
    authorized there; a resource the principal cannot reach looks like one that does not exist.

    An API key can only reach its own tenant, so it looks there directly; others need a routing lookup.
    """
    if principal.kind == "api_key" and principal.tenant_id is not None:
        async with tenant_tx(principal.tenant_id):
            tenant_id = await lookup()
    else:
        async with system_tx(SystemReason.ROUTING):
            tenant_id = await lookup()
    if tenant_id is None:
        raise not_found()
    try:
        await authorize(principal, tenant_id, permission, method=method)
    except TenantNotFound:
        raise not_found() from None
    return tenant_id


# What a read's access check needs, remembered a minute per process: a tenant's status and suspensions, and a
# person's role in it. Both are evicted at once by triggers on `tenants` and `memberships` (tenants migration
# 2026-12-04T14:00), whoever writes them, so a demotion, a removal or a suspension holds on the next request.
# Writes always check in their own transaction, under the tenant's share lock (see `check_access`); refusals
# (an unknown tenant, a non-member) are never remembered.
ACCESS_TOPIC = "tenant_access"
MEMBERSHIP_TOPIC = "membership"


def _membership_key(text: str) -> tuple[uuid.UUID, uuid.UUID]:
    tenant_id, _, user_id = text.partition("/")
    return uuid.UUID(tenant_id), uuid.UUID(user_id)


_tenant_access: Cache[uuid.UUID, dict[str, Any]] = Cache(ACCESS_TOPIC, uuid.UUID, ttl_seconds=60.0)
_member_roles: Cache[tuple[uuid.UUID, uuid.UUID], str] = Cache(MEMBERSHIP_TOPIC, _membership_key, ttl_seconds=60.0)
ACCESS_COLUMNS = ("status", "billing_suspended_at", "staff_suspended_at")


def _needs_role(principal: Principal) -> bool:
    return principal.kind == "user" and not principal.is_staff


async def authorize(principal: Principal, tenant_id: uuid.UUID, permission: Permission, *, method: str) -> None:
    """The guards' check: for a read, from what this process remembers if it can; else in a transaction of its
    own (see `check_access`)."""
    if method in READ_METHODS:
        tenant = _tenant_access.get(tenant_id)
        role = _member_roles.get((tenant_id, principal.id)) if _needs_role(principal) else principal.api_key_role
        if tenant is not None and (role is not None or not _needs_role(principal)):
            _decide(principal, tenant_id, tenant, role, permission, method=method)
            return
        generations = _tenant_access.generation(), _member_roles.generation()
        async with tenant_tx(tenant_id):
            tenant, role = await _access_facts(principal, tenant_id, lock=None)
        if tenant is not None:
            _tenant_access.put(tenant_id, {name: tenant[name] for name in ACCESS_COLUMNS}, generations[0])
        if role is not None and _needs_role(principal):
            _member_roles.put((tenant_id, principal.id), role, generations[1])
        _decide(principal, tenant_id, tenant, role, permission, method=method)
        return
    async with tenant_tx(tenant_id):
        await check_access(principal, tenant_id, permission, method=method)


async def _access_facts(
    principal: Principal, tenant_id: uuid.UUID, *, lock: str | None
) -> tuple[dict[str, Any] | None, str | None]:
    """The tenant's row and the principal's role in it (None: not a member), inside the caller's transaction."""
    if principal.kind == "api_key" and principal.tenant_id != tenant_id:
        return None, None
    tenant = await repository.get_tenant(tenant_id, lock=lock)
    if tenant is None or not _needs_role(principal):
        return tenant, principal.api_key_role if principal.kind == "api_key" else None
    membership = await repository.get_membership(tenant_id, principal.id)
    return tenant, membership["role"] if membership else None


async def check_access(principal: Principal, tenant_id: uuid.UUID, permission: Permission, *, method: str) -> None:
    """Inside the caller's transaction: raise unless `principal` may use `permission` on the tenant with this
    HTTP method.

    Unknown and foreign tenants look alike (404). A suspended tenant's own principals may only read.
    Staff act on suspended tenants too, and on a tenant being erased they may only read or remove
    (so a retried erasure succeeds but nothing new is added). For a member's writes the tenant row is
    share-locked: role changes lock it for update, so a change checked here cannot race with a demotion of
    the one making it.
    """
    # Only a member's role can change under them; an API key's role is fixed, and a share lock is a write
    # to the row that concurrent machine traffic (usage batches) would queue on.
    member_writes = method not in READ_METHODS and _needs_role(principal)
    tenant, role = await _access_facts(principal, tenant_id, lock="share" if member_writes else None)
    _decide(principal, tenant_id, tenant, role, permission, method=method)


def _decide(
    principal: Principal,
    tenant_id: uuid.UUID,
    tenant: Mapping[str, Any] | None,
    role: str | None,
    permission: Permission,
    *,
    method: str,
) -> None:
    writes = method not in READ_METHODS
    if tenant is None or (principal.kind == "api_key" and principal.tenant_id != tenant_id):
        raise TenantNotFound()
    if principal.is_staff:
        # Staff act on suspended tenants, but nothing new is added to one being erased.
        if writes and method != "DELETE" and tenant["status"] == TenantStatus.PENDING_DELETION:
            raise TenantNotActive("the tenant is being deleted")
        return
    if role is None or tenant["status"] == TenantStatus.PENDING_DELETION:
        raise TenantNotFound()
    if not role_allows(role, permission):
        raise ForbiddenForRole(f"role {role} does not allow {permission}")
    settling = permission in BILLING_PERMISSIONS
    if tenant["billing_suspended_at"] is not None and not settling:
        raise SuspendedForNonPayment(required_actions=["pay_overdue_invoice", "add_payment_method"])
    # A tenant suspended for non-payment alone may still settle its bills; staff's suspension stops every write.
    settles_its_debt = settling and tenant["billing_suspended_at"] and tenant["staff_suspended_at"] is None
    if writes and tenant["status"] != TenantStatus.ACTIVE and not settles_its_debt:
        raise TenantNotActive()
