"""Tenants: creation by staff, reads, changes, suspension and erasure."""

from __future__ import annotations

import asyncio
import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypedDict

from controlplane.core import idempotency, invalidation
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, partner_tx, system_tx, tenant_tx, user_tx
from controlplane.core.errors import InvalidInput, StaffOnly
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.tenant_vault import TenantVault
from controlplane.core.views import Page, view_of
from tenants import audit, billing_contact, data_keys, hooks, repository
from tenants import pii_repository as billing_profiles
from tenants.errors import (
    CommercialTermsStaffOnly,
    CurrencyRequired,
    InvalidStatusTransition,
    NonPaymentSuspensionOpen,
    ResellerAgreementMissing,
    TenantCurrencyLocked,
    TenantNotFound,
    TenantSlugTaken,
)
from tenants.notifications import notify
from tenants.roles import Permission
from tenants.service import _partners
from tenants.service._auth import ALL_KEYS, API_KEY_TOPIC, check_access
from tenants.status import TenantState, TenantStatus, next_state, service_denial

# Published (with the tenant id) in every transaction that changes a tenant's status: caches of answers that
# depend on it (entitlement checks) evict the tenant.
STATUS_TOPIC = "tenant_status"

# Commercial terms: only platform staff set them (a reseller's tenants get the reseller agreement's currency).
COMMERCIAL_TERMS = frozenset({"tax_rate_bps", "invoice_grace_hours", "currency"})


@dataclass(frozen=True, slots=True)
class TenantView:
    """A tenant as callers see it: its billing email decrypted."""

    id: uuid.UUID
    name: str
    slug: str
    status: str
    billing_email: str | None
    currency: str
    reseller_id: uuid.UUID | None
    reseller_since: datetime | None
    tax_rate_bps: int
    invoice_grace_hours: int
    created_at: datetime
    updated_at: datetime
    erasure_requested_at: datetime | None
    billing_suspended_at: datetime | None
    staff_suspended_at: datetime | None


@dataclass(frozen=True, slots=True)
class NewTenant:
    """A tenant to create. None: not given (the commercial terms, which only staff set, then take their
    defaults: the reseller agreement's currency, no tax, no grace)."""

    name: str
    slug: str
    currency: str | None = None
    billing_email: str | None = None
    reseller_id: uuid.UUID | None = None
    tax_rate_bps: int | None = None
    invoice_grace_hours: int | None = None


class TenantChanges(TypedDict, total=False):
    """A partial update of a tenant: exactly the fields sent."""

    name: str
    billing_email: str | None
    currency: str
    tax_rate_bps: int
    invoice_grace_hours: int


def _check_terms(actor: Principal, sent_fields: set[str]) -> None:
    sent = COMMERCIAL_TERMS & sent_fields
    if sent and not actor.is_staff:
        raise CommercialTermsStaffOnly(f"only platform staff set {', '.join(sorted(sent))}")


async def create_tenant(actor: Principal, new: NewTenant) -> TenantView:
    """Staff create any tenant; a reseller's admin creates tenants that reseller owns. A tenant is owned only
    by a qualified reseller, whoever asks.

    Tax rate, invoice grace and currency are commercial terms that only staff set. A tenant created without
    a currency gets its reseller's agreement currency (set by staff); tax and grace default to 0."""
    reseller_id = new.reseller_id
    if not actor.is_staff and (reseller_id is None or not await _partners.is_reseller_admin(actor, reseller_id)):
        raise StaffOnly("only staff, or a reseller's admin for that reseller, create tenants")
    _check_terms(actor, {term for term in COMMERCIAL_TERMS if getattr(new, term) is not None})
    if reseller_id is not None:
        await _partners.ensure_qualified(reseller_id, "reseller")
    currency = new.currency if new.currency is not None else await _reseller_currency(reseller_id)
    values = {
        "name": new.name,
        "slug": new.slug,
        "currency": currency,
        "reseller_id": reseller_id,
        "tax_rate_bps": new.tax_rate_bps or 0,
        "invoice_grace_hours": new.invoice_grace_hours or 0,
    }
    tenant_id = uuid.uuid4()
    async with system_tx(SystemReason.STAFF_CHANGE):
        sealed = await billing_contact.seal(tenant_id, new.billing_email)
        row = await repository.insert_tenant({**values, **sealed, "id": tenant_id})
        if row is None:
            raise TenantSlugTaken()
        await audit.record(actor, tenant_id, "tenant.created", "tenant", tenant_id, after=audit.tenant_summary(row))
    return await _shown(row)


async def _reseller_currency(reseller_id: uuid.UUID | None) -> str:
    if reseller_id is None:
        raise CurrencyRequired()
    async with partner_tx(reseller_id):
        currency = await hooks.reseller_currency(reseller_id)
    if currency is None:
        raise ResellerAgreementMissing()
    return currency


async def _shown(row: dict[str, Any]) -> TenantView:
    """A tenant as callers see it: the billing email decrypted."""
    (shown,) = await billing_contact.reveal([row])
    return view_of(TenantView, shown)


MAX_SEARCH_LENGTH = 100


async def list_tenants(actor: Principal, page: PageRequest, search: str | None = None) -> Page[TenantView]:
    """The tenants the actor may see (staff: every one), those whose name or slug contains `search` if given."""
    search = (search or "").strip()[:MAX_SEARCH_LENGTH] or None
    if search is not None and not search.isprintable():
        raise InvalidInput("a search is printable text")
    if actor.is_staff:
        async with system_tx(SystemReason.STAFF_VIEW):
            rows = await repository.list_tenants(page, search)
    elif actor.kind == "api_key" and actor.tenant_id is not None:
        async with tenant_tx(actor.tenant_id):
            rows = await repository.list_tenants(page, search)
    else:
        # The database shows a user only the tenants they are a member of.
        async with user_tx(actor.id):
            rows = await repository.list_tenants(page, search)
    return page_of_views(await billing_contact.reveal(rows), page, functools.partial(view_of, TenantView))


async def get_tenant(tenant_id: uuid.UUID) -> TenantView:
    async with tenant_tx(tenant_id):
        row = await repository.get_tenant(tenant_id)
    if row is None:
        raise TenantNotFound()
    return await _shown(row)


async def update_tenant(actor: Principal, tenant_id: uuid.UUID, changes: TenantChanges) -> TenantView:
    async with tenant_tx(tenant_id):
        before = await repository.get_tenant(tenant_id, lock="update")
        if before is None:
            raise TenantNotFound()
        await check_access(actor, tenant_id, Permission.MANAGE_TENANT, method="PATCH")
        _check_terms(actor, set(changes))
        if not changes:
            return await _shown(before)
        if changes.get("currency", before["currency"]) != before["currency"]:
            # Asked of billing under this transaction's lock on the tenant row, which the write below keeps.
            reason = await hooks.currency_lock(tenant_id)
            if reason is not None:
                raise TenantCurrencyLocked(f"the currency cannot change: {reason}")
        sealed = await billing_contact.seal(tenant_id, changes["billing_email"]) if "billing_email" in changes else {}
        after = await repository.update_tenant(tenant_id, {**changes, **sealed})
        await audit.record(
            actor,
            tenant_id,
            "tenant.updated",
            "tenant",
            tenant_id,
            before=audit.tenant_summary(before) | {"fields": sorted(changes)},
            after=audit.tenant_summary(after),
        )
    return await _shown(after)


STATUS_ACTIONS = {
    "suspend": "tenant.suspended",
    "reactivate": "tenant.reactivated",
    "reactivate_lifting_non_payment": "tenant.reactivated",
}


def _state_of(tenant: dict[str, Any]) -> TenantState:
    return TenantState(
        TenantStatus(tenant["status"]),
        suspended_by_staff=tenant["staff_suspended_at"] is not None,
        suspended_for_non_payment=tenant["billing_suspended_at"] is not None,
    )


async def _tell_suspended(tenant_id: uuid.UUID, reason: str, suspended_at: datetime) -> None:
    """Inside the transaction that recorded a suspension reason: each suspension is its own occurrence."""
    data = {"reason": reason, "suspended_at": suspended_at.astimezone(UTC).isoformat()}
    await notify("tenant.suspended", f"{tenant_id}:{suspended_at.isoformat()}", data, tenant_id=tenant_id)


async def _tell_reactivated(tenant_id: uuid.UUID, before: dict[str, Any], after_status: str, at: datetime) -> None:
    """Inside the transaction that moved the tenant: told when it is active again (a suspension lifted while
    another reason still holds it is not a reactivation)."""
    if after_status == TenantStatus.ACTIVE and before["status"] != TenantStatus.ACTIVE:
        data = {"reactivated_at": at.astimezone(UTC).isoformat()}
        await notify("tenant.reactivated", f"{tenant_id}:{at.isoformat()}", data, tenant_id=tenant_id)


def _changes(tenant: dict[str, Any], after: TenantState, now: datetime) -> dict[str, Any]:
    """The columns that move `tenant` to `after` (a reason already recorded keeps its time)."""
    changes: dict[str, Any] = {}
    if after.status != tenant["status"]:
        changes["status"] = after.status.value
    for column, held in (
        ("staff_suspended_at", after.suspended_by_staff),
        ("billing_suspended_at", after.suspended_for_non_payment),
    ):
        if held and tenant[column] is None:
            changes[column] = now
        elif not held and tenant[column] is not None:
            changes[column] = None
    return changes


async def change_status(
    actor: Principal, tenant_id: uuid.UUID, action: str, *, lift_non_payment: bool = False
) -> TenantView:
    """suspend / reactivate. Repeating the same request answers with the current state.

    Staff's reactivation of a tenant suspended for non-payment is refused (`suspended_for_non_payment_open`:
    the tenant pays, or staff void the invoice) unless staff lift that suspension explicitly
    (`lift_non_payment`); the invoice itself stays as it is."""
    if action == "reactivate" and lift_non_payment:
        action = "reactivate_lifting_non_payment"
    async with tenant_tx(tenant_id):
        before = await repository.get_tenant(tenant_id, lock="update")
        if before is None:
            raise TenantNotFound()
        state = _state_of(before)
        target = next_state(state, action)
        erased = state.status == TenantStatus.PENDING_DELETION
        if target is None and action == "reactivate" and state.suspended_for_non_payment and not erased:
            raise NonPaymentSuspensionOpen()
        if target is None:
            raise InvalidStatusTransition(f"a {before['status']} tenant cannot be {action.split('_')[0]}d")
        now = datetime.now(UTC)
        changes = _changes(before, target, now)
        if not changes:
            return await _shown(before)
        after = await repository.update_tenant(tenant_id, changes)
        await invalidation.publish(STATUS_TOPIC, tenant_id)
        if changes.get("staff_suspended_at") is not None:
            await _tell_suspended(tenant_id, "staff", changes["staff_suspended_at"])
        await _tell_reactivated(tenant_id, before, after["status"], now)
        await audit.record(
            actor,
            tenant_id,
            STATUS_ACTIONS[action],
            "tenant",
            tenant_id,
            before={"status": before["status"]},
            after={"status": after["status"]}
            | ({"non_payment_suspension_lifted": True} if "billing_suspended_at" in changes else {}),
        )
    return await _shown(after)


# -- the calls billing makes (inside its own transaction) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class TenantTerms:
    """What other domains read of a tenant inside their own transaction: its status, its commercial terms and
    the reseller that owns it (no personal data)."""

    id: uuid.UUID
    status: str
    currency: str
    reseller_id: uuid.UUID | None
    reseller_since: datetime | None
    tax_rate_bps: int
    invoice_grace_hours: int
    created_at: datetime
    billing_suspended_at: datetime | None
    staff_suspended_at: datetime | None


async def tenant_terms(tenant_id: uuid.UUID, *, lock: Literal["share", "update"] | None = None) -> TenantTerms | None:
    """Inside the caller's transaction: the tenant's terms (None: the transaction sees no such tenant); `lock`
    holds its row until the caller commits."""
    row = await repository.get_tenant(tenant_id, lock=lock)
    return view_of(TenantTerms, row) if row is not None else None


async def active_tenants_created_before(end: datetime) -> frozenset[uuid.UUID]:
    """Inside the caller's transaction (a system one, to count across tenants): the tenants that are active now
    and were created before `end`. What no past status can be told from: tenants keep only their current
    status, so one suspended or erased since `end` is left out, and one suspended at `end` but active again
    now counts."""
    return frozenset(await repository.active_tenant_ids(end))


async def billing_email_of(tenant_id: uuid.UUID) -> str | None:
    """The tenant's billing email, decrypted (None: it has none, or there is no such tenant). Its own
    transaction, and the decryption after it (an OpenBao call only when the tenant's data key is not in memory)."""
    async with tenant_tx(tenant_id):
        row = await repository.get_tenant(tenant_id)
    if row is None:
        return None
    (shown,) = await billing_contact.reveal([row])
    return shown["billing_email"]


async def suspend_for_non_payment(
    tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime, *, reason: str = "non_payment"
) -> bool:
    """Inside the caller's transaction: the tenant is suspended until it pays `invoice_id`, whatever its
    status (a tenant staff suspended already owes it too, and staff's reactivation will not lift it). True when
    the non-payment suspension was recorded now. `reason` is what the tenant is told (`tenant.suspended`):
    `non_payment`, or `dispute_lost` for a lost card dispute (the same suspension, lifted the same way)."""
    tenant = await repository.get_tenant(tenant_id, lock="update")
    if tenant is None or tenant["billing_suspended_at"] is not None:
        return False
    target = next_state(_state_of(tenant), "suspend_for_non_payment")
    assert target is not None  # recorded from any state
    await repository.update_tenant(tenant_id, _changes(tenant, target, now))
    await invalidation.publish(STATUS_TOPIC, tenant_id)
    if tenant["status"] != TenantStatus.PENDING_DELETION:  # an erased tenant's people are gone: nobody to tell
        await _tell_suspended(tenant_id, reason, now)
    await audit.record(
        None,
        tenant_id,
        "tenant.suspended_for_non_payment",
        "tenant",
        tenant_id,
        before={"status": tenant["status"]},
        after={"status": target.status.value, "invoice_id": str(invoice_id)},
    )
    return True


async def lift_non_payment_suspension(tenant_id: uuid.UUID, actor: Principal | None = None) -> bool:
    """Inside the caller's transaction: the non-payment suspension is lifted (the caller decided that nothing
    the tenant owes is uncollectible), from any status; the tenant is active again only when nothing else
    (staff's suspension, an erasure) holds it. True when the suspension was lifted."""
    tenant = await repository.get_tenant(tenant_id, lock="update")
    if tenant is None or tenant["billing_suspended_at"] is None:
        return False
    target = next_state(_state_of(tenant), "lift_non_payment_suspension")
    assert target is not None  # lifted from any state
    now = datetime.now(UTC)
    await repository.update_tenant(tenant_id, _changes(tenant, target, now))
    await invalidation.publish(STATUS_TOPIC, tenant_id)
    await _tell_reactivated(tenant_id, tenant, target.status.value, now)
    await audit.record(
        actor,
        tenant_id,
        "tenant.reactivated" if target.status == TenantStatus.ACTIVE else "tenant.non_payment_suspension_lifted",
        "tenant",
        tenant_id,
        before={"status": tenant["status"]},
        after={"status": target.status.value},
    )
    return True


async def service_denial_of(tenant_id: uuid.UUID) -> str | None:
    """Inside the caller's transaction: why the tenant gets no service from other domains (`tenant_erased`,
    `tenant_suspended_for_non_payment`, `tenant_suspended`), or None. An unknown tenant reads as erased."""
    tenant = await repository.get_tenant(tenant_id)
    if tenant is None:
        return "tenant_erased"
    return service_denial(TenantStatus(tenant["status"]), tenant["billing_suspended_at"] is not None)


async def request_erasure(actor: Principal, tenant_id: uuid.UUID, vault: TenantVault) -> TenantView:
    """Remove the tenant's personal data (billing contact and profile, members, keys) and destroy its secrets
    (its OpenBao namespace); keep financial records.

    One transaction for the database, so a failure leaves nothing half-erased; the secrets go after it
    commits, on every request, so a retry after OpenBao failed (503) finishes the job.

    It is a system transaction because whether a former member still belongs to another tenant is a
    question across tenants (with no context every membership reads as absent, and users of other tenants
    would be erased too); every statement below names this tenant explicitly.
    """
    async with system_tx(SystemReason.ERASURE):
        before = await repository.get_tenant(tenant_id, lock="update")
        if before is None:
            raise TenantNotFound()
        already_erased = before["status"] == TenantStatus.PENDING_DELETION
        if not already_erased:
            after = await _erase(actor, tenant_id, before)
    # What other domains end (subscription, add-ons, licenses, collection), in the tenant's own context;
    # idempotent, and run on every request so that a retry finishes it. The secrets and the cards go whatever
    # those hooks did: the tenant is erased (its members, who could retry, are gone), so nothing of it waits.
    try:
        async with tenant_tx(tenant_id):
            await hooks.tenant_erased(tenant_id, datetime.now(UTC))
    finally:
        try:
            await asyncio.to_thread(vault.destroy, tenant_id)
        finally:
            await hooks.erased_after_commit(tenant_id)
    return view_of(TenantView, before if already_erased else after)


async def _erase(actor: Principal, tenant_id: uuid.UUID, before: dict[str, Any]) -> dict[str, Any]:
    """Inside `request_erasure`'s system transaction."""
    await check_access(actor, tenant_id, Permission.MANAGE_TENANT, method="DELETE")
    target = next_state(_state_of(before), "erase")
    assert target is not None  # every status may be erased
    after = await repository.update_tenant(
        tenant_id,
        {
            "status": target.status.value,
            "billing_email": None,
            "billing_email_key_version": None,
            "erasure_requested_at": datetime.now(UTC),
        },
    )
    former_members = await repository.delete_all_memberships(tenant_id)
    await repository.revoke_all_api_keys(tenant_id)
    await billing_profiles.delete(tenant_id)
    # Its personal data no longer opens anywhere, backups included: the key it was sealed with is gone.
    await data_keys.destroy(tenant_id)
    await repository.delete_webhook_endpoint(tenant_id)
    await invalidation.publish(API_KEY_TOPIC, ALL_KEYS)
    await invalidation.publish(STATUS_TOPIC, tenant_id)
    await idempotency.forget_tenant(tenant_id)
    erased_users = await repository.erase_orphaned_users(former_members)
    await audit.record(
        actor,
        tenant_id,
        "tenant.erasure_requested",
        "tenant",
        tenant_id,
        before={"status": before["status"]},
        after={
            "status": after["status"],
            "members_removed": len(former_members),
            "users_erased": erased_users,
            "api_keys_revoked": True,
            "billing_profile_deleted": True,
            "data_key_destroyed": True,
            "webhook_endpoint_removed": True,
        },
    )
    return after


async def move_tenant(actor: Principal, tenant_id: uuid.UUID, reseller_id: uuid.UUID | None) -> TenantView:
    """Staff move a tenant to another qualified reseller (or to none); the move is on the tenant's audit trail
    with its time, from which commission follows the new owner."""
    if reseller_id is not None:
        await _partners.ensure_qualified(reseller_id, "reseller")
    async with tenant_tx(tenant_id):
        before = await repository.get_tenant(tenant_id, lock="update")
        if before is None:
            raise TenantNotFound()
        if before["reseller_id"] == reseller_id:
            return await _shown(before)
        after = await repository.update_tenant(
            tenant_id, {"reseller_id": reseller_id, "reseller_since": datetime.now(UTC) if reseller_id else None}
        )
        await audit.record(
            actor,
            tenant_id,
            "tenant.reseller_changed",
            "tenant",
            tenant_id,
            before={"reseller_id": str(before["reseller_id"]) if before["reseller_id"] else None},
            after={"reseller_id": str(reseller_id) if reseller_id else None},
        )
    return await _shown(after)
