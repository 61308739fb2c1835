"""People who sign in: created by operators (the CLI) or invited as members."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from controlplane.core.auth.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.errors import InvalidInput
from controlplane.core.views import view_of
from tenants import audit, repository
from tenants.errors import InvalidCredentials, TenantNotFound, UserExists, WeakPassword
from tenants.roles import TENANT_ROLES


@dataclass(frozen=True, slots=True)
class UserView:
    """A person who signs in (never their password hash)."""

    id: uuid.UUID
    email: str
    is_platform_staff: bool
    status: str
    session_generation: int  # console sessions that started at a lower one are over


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 320 or len(email) < 3:
        raise InvalidInput("email is not an email address")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"passwords have at least {MIN_PASSWORD_LENGTH} characters")


async def create_or_update_user(
    email: str, password: str, *, staff: bool, tenant_id: uuid.UUID | None = None, role: str | None = None
) -> UserView:
    """For operators (the CLI): create the user, or set the password of an existing one; join a tenant."""
    email = normalise_email(email)
    _check_password(password)
    password_hash = await hash_password(password)
    async with system_tx(SystemReason.STAFF_CHANGE):
        user = await repository.get_user_by_email(email)
        if user is None:
            user = await repository.insert_user(uuid.uuid4(), email, password_hash, staff)
            if user is None:
                raise UserExists()
        else:
            # A reset by an operator ends the person's console sessions and tokens (the generation moves on); their
            # own password given again (to make them staff, say) keeps its hash, and so ends nothing.
            same = await verify_password(user["password_hash"], password)
            kept = user["password_hash"] if same else password_hash
            generation = await repository.set_user_password(user["id"], kept, staff or None)
            user = {**user, "session_generation": generation}
    if tenant_id is not None:
        if role not in TENANT_ROLES:
            raise InvalidInput(f"role must be one of {', '.join(TENANT_ROLES)}")
        async with tenant_tx(tenant_id):
            if await repository.get_tenant(tenant_id) is None:
                raise TenantNotFound()
            if await repository.get_membership(tenant_id, user["id"]) is None:
                await repository.insert_membership(tenant_id, user["id"], role)
                await audit.record(None, tenant_id, "member.added", "user", user["id"], after={"role": role})
    return view_of(UserView, user)


async def find_user(email: str) -> UserView | None:
    async with system_tx(SystemReason.STAFF_VIEW):
        user = await repository.get_user_by_email(normalise_email(email))
    return view_of(UserView, user) if user else None


async def end_sessions(user_id: uuid.UUID) -> None:
    """ "Sign out everywhere": every console session the person has started so far ends, in every process."""
    async with system_tx(SystemReason.SESSIONS):
        await repository.end_user_sessions(user_id)


async def can_reset_password(email: str) -> bool:
    """Whether a password reset link may be mailed to this address: an active account has it."""
    async with system_tx(SystemReason.SESSIONS):
        user = await repository.get_user_by_email(normalise_email(email))
    return user is not None and user["status"] == "active"


def _reset_stamp(user: dict[str, Any]) -> str:
    return f"{user['id']}.{user['session_generation']}"


async def reset_stamp(email: str) -> str | None:
    """What a password reset link for this address is bound to (the account and its session generation now),
    None when no active account has it. A link whose stamp no longer matches is spent: the password changed
    since (by another link, the CLI or SQL), or the person signed out everywhere."""
    async with system_tx(SystemReason.SESSIONS):
        user = await repository.get_user_by_email(normalise_email(email))
    return _reset_stamp(user) if user is not None and user["status"] == "active" else None


async def reset_password(email: str, password: str, stamp: str | None = None) -> UserView:
    """A new password for the active account of this address (an emailed link proved it); the person's older
    console sessions end. `InvalidCredentials` if the account is gone or disabled since the link was sent, or,
    given the link's `stamp` (`reset_stamp`), if it is another account's or the password changed since."""
    email = normalise_email(email)
    _check_password(password)
    password_hash = await hash_password(password)
    async with system_tx(SystemReason.SESSIONS):
        user = await repository.get_user_by_email(email, lock=True)
        if user is None or user["status"] != "active":
            raise InvalidCredentials("the account no longer exists or is disabled")
        if stamp is not None and stamp != _reset_stamp(user):
            raise InvalidCredentials("the password changed since the link was sent")
        generation = await repository.set_user_password(user["id"], password_hash)
    return view_of(UserView, user, session_generation=generation)
