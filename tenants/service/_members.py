"""A tenant's members and their roles."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

from controlplane.core import invalidation
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import audit, repository
from tenants.errors import LastAdmin, MemberExists, MemberNotFound
from tenants.roles import Permission, Role
from tenants.service._access import actor_role, check_grant
from tenants.service._auth import API_KEY_TOPIC, check_access
from tenants.service._users import normalise_email


@dataclass(frozen=True, slots=True)
class MemberView:
    """A person's membership of a tenant, with their email."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    user_id: uuid.UUID
    email: str
    role: str
    created_at: datetime
    updated_at: datetime


async def add_member(actor: Principal, tenant_id: uuid.UUID, email: str, role: str) -> MemberView:
    email = normalise_email(email)
    # Checked before anyone's account is created, so a refused request leaves nothing behind.
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_MEMBERS, method="POST")
        check_grant(actor, await actor_role(actor, tenant_id), role)
    # Whether this person already has an account is a platform-wide question.
    async with system_tx(SystemReason.MEMBER_INVITE):
        user = await repository.get_user_by_email(email)
        if user is None:
            # An invited user: no password until an operator or a later invitation flow sets one.
            user = await repository.insert_user(uuid.uuid4(), email, None, False)
            if user is None:
                user = await repository.get_user_by_email(email)
    assert user is not None
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_MEMBERS, method="POST")
        check_grant(actor, await actor_role(actor, tenant_id), role)
        member = await repository.insert_membership(tenant_id, user["id"], role)
        if member is None:
            raise MemberExists()
        await audit.record(actor, tenant_id, "member.added", "user", user["id"], after={"role": role})
    return view_of(MemberView, member)


async def _lock_memberships(tenant_id: uuid.UUID) -> None:
    """Inside `tenant_tx`: serialise changes of the tenant's members on its row, so two concurrent demotions or
    removals cannot each count the other admin and leave the tenant with none."""
    await repository.get_tenant(tenant_id, lock="update")


async def list_members(tenant_id: uuid.UUID, page: PageRequest) -> Page[MemberView]:
    async with tenant_tx(tenant_id):
        rows = await repository.list_memberships(tenant_id, page)
    return page_of_views(rows, page, functools.partial(view_of, MemberView))


async def get_member(tenant_id: uuid.UUID, user_id: uuid.UUID) -> MemberView:
    async with tenant_tx(tenant_id):
        member = await repository.get_membership(tenant_id, user_id)
    if member is None:
        raise MemberNotFound()
    return view_of(MemberView, member)


async def change_member_role(actor: Principal, tenant_id: uuid.UUID, user_id: uuid.UUID, role: str) -> MemberView:
    async with tenant_tx(tenant_id):
        await _lock_memberships(tenant_id)
        await check_access(actor, tenant_id, Permission.MANAGE_MEMBERS, method="PATCH")
        check_grant(actor, await actor_role(actor, tenant_id), role)
        member = await repository.get_membership(tenant_id, user_id)
        if member is None:
            raise MemberNotFound()
        if member["role"] == role:
            return view_of(MemberView, member)
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
    return view_of(MemberView, updated)


async def remove_member(actor: Principal, tenant_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Idempotent: removing someone who is not a member is not an error.

    The API keys the leaving person created are revoked with them, in the same transaction (a key must not
    outlive the admin who answers for it): each is audited as `api_key.revoked` with the reason, and the
    removal lists them. (Erasing the tenant revokes every key.)"""
    async with tenant_tx(tenant_id):
        await _lock_memberships(tenant_id)
        await check_access(actor, tenant_id, Permission.MANAGE_MEMBERS, method="DELETE")
        member = await repository.get_membership(tenant_id, user_id)
        if member is None:
            return
        if member["role"] == Role.TENANT_ADMIN and await repository.count_admins(tenant_id) <= 1:
            raise LastAdmin()
        await repository.delete_membership(tenant_id, user_id)
        revoked = await repository.revoke_api_keys_created_by(tenant_id, user_id)
        for key_id in revoked:
            await invalidation.publish(API_KEY_TOPIC, key_id)
            await audit.record(
                actor,
                tenant_id,
                "api_key.revoked",
                "api_key",
                key_id,
                after={"reason": "creator_left_tenant", "created_by": str(user_id)},
            )
        await audit.record(
            actor,
            tenant_id,
            "member.removed",
            "user",
            user_id,
            before={"role": member["role"]},
            after={"api_keys_revoked": [str(key_id) for key_id in revoked]},
        )
