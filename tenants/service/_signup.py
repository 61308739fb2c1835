"""Self-service sign-up: a person who proved their email address sets a password, then creates one tenant.

The email proof itself (a link by email) belongs to the console; here are the two writes it leads to. A person
who signed up creates exactly one tenant of their own, with the currency they choose (self-service has no
reseller agreement to take it from; tax and invoice grace stay 0 until staff set them), and is its admin.
"""

from __future__ import annotations

import re
import uuid

from controlplane.core.auth.passwords import hash_password
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx
from controlplane.core.errors import InvalidInput
from controlplane.core.views import view_of
from tenants import audit, billing_contact, repository
from tenants.errors import TenantSlugTaken, UserExists
from tenants.service._tenants import TenantView, _shown
from tenants.service._users import UserView, _check_password, normalise_email

SLUG = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
CURRENCY = re.compile(r"[A-Z]{3}")
MAX_NAME_LENGTH = 200


class AlreadyHasTenant(InvalidInput):
    code = "already_has_tenant"
    title = "You already belong to a tenant"


async def can_sign_up(email: str) -> bool:
    """Whether signing up with this address makes (or completes) an account: none has it, or only an invited
    person's account does, which has no password yet."""
    async with system_tx(SystemReason.SIGNUP):
        user = await repository.get_user_by_email(normalise_email(email))
    return user is None or (user["password_hash"] is None and user["status"] == "active")


async def register_user(email: str, password: str) -> UserView:
    """A new (not staff) user, or an invited person's account given its first password (the emailed link proved
    the address); `UserExists` when the address already has an account with a password."""
    email = normalise_email(email)
    _check_password(password)
    password_hash = await hash_password(password)
    async with system_tx(SystemReason.SIGNUP):
        user = await repository.insert_user(uuid.uuid4(), email, password_hash, False)
        if user is None:
            user = await repository.get_user_by_email(email, lock=True)
            if user is None or user["password_hash"] is not None or user["status"] != "active":
                raise UserExists()
            generation = await repository.set_user_password(user["id"], password_hash)
            user = {**user, "session_generation": generation}
    return view_of(UserView, user)


async def create_own_tenant(actor: Principal, name: str, slug: str, currency: str) -> TenantView:
    """The signed-up person's tenant, with them as its admin: refused once they belong to any tenant."""
    name = name.strip()
    if not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(f"the name has 1 to {MAX_NAME_LENGTH} printable characters")
    if not SLUG.fullmatch(slug):
        raise InvalidInput("the slug has lowercase letters, digits and inner hyphens, 63 at most")
    if not CURRENCY.fullmatch(currency):
        raise InvalidInput("the currency is a three-letter ISO 4217 code")
    if actor.kind != "user" or actor.is_staff:
        raise InvalidInput("only a signed-up person creates a tenant of their own")
    tenant_id = uuid.uuid4()
    values = {"name": name, "slug": slug, "currency": currency, "tax_rate_bps": 0, "invoice_grace_hours": 0}
    async with system_tx(SystemReason.SIGNUP):
        # Under the user's row lock: two tabs submitting at once make one tenant, not two.
        await repository.lock_user(actor.id)
        if await repository.memberships_of_user(actor.id):
            raise AlreadyHasTenant()
        sealed = await billing_contact.seal(tenant_id, None)
        row = await repository.insert_tenant({**values, **sealed, "id": tenant_id, "reseller_id": None})
        if row is None:
            raise TenantSlugTaken()
        await repository.insert_membership(tenant_id, actor.id, "tenant_admin")
        await audit.record(actor, tenant_id, "tenant.created", "tenant", tenant_id, after=audit.tenant_summary(row))
        await audit.record(actor, tenant_id, "member.added", "user", actor.id, after={"role": "tenant_admin"})
    return await _shown(row)
