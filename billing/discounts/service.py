"""Coupons (staff's catalogue) and the discounts a subscription redeems from them; the discounts an invoice gets.

Coupons have no tenant, so the tenants' audit trail cannot hold their changes: a coupon keeps who created and
who archived it (`created_by`, `archived_by`) and the change is logged. Everything a tenant's discount goes
through (redeemed, applied to an invoice, ended, removed) is in the tenant's audit trail.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing.access import tenant_of
from billing.analytics import history as mrr_history
from billing.discounts import repository, rules
from billing.errors import (
    CouponAlreadyRedeemed,
    CouponExhausted,
    CouponExists,
    CouponNotFound,
    DiscountNotFound,
    InvalidSubscriptionTransition,
    SubscriptionNotFound,
)
from billing.invoices import repository as invoices_repository
from billing.periods import Period
from billing.rating import Line
from billing.subscriptions import repository as subscriptions_repository
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import audit
from tenants.roles import Permission

log = logging.getLogger("controlplane.billing")


@dataclass(frozen=True, slots=True)
class CouponDefinition:
    """What staff define a coupon with (see `billing.discounts.rules.check_terms`)."""

    terms: rules.CouponTerms
    max_redemptions: int | None = None
    redeem_by: datetime | None = None


@dataclass(frozen=True, slots=True)
class CouponView:
    id: uuid.UUID
    code: str
    name: str
    percent_off_bps: int | None
    amount_off_minor: int | None
    currency: str | None
    duration: str
    duration_periods: int | None
    plan_codes: list[str] | None
    max_redemptions: int | None
    redeem_by: datetime | None
    times_redeemed: int
    archived: bool
    archived_at: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class DiscountView:
    """A redeemed coupon on a subscription, with its terms as redeemed. `position` is its redemption order."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    coupon_code: str
    name: str
    position: int
    percent_off_bps: int | None
    amount_off_minor: int | None
    currency: str | None
    duration: str
    duration_periods: int | None
    plan_codes: list[str] | None
    periods_used: int
    amount_remaining_minor: int | None
    status: str
    ended_reason: str | None
    ended_at: datetime | None
    created_at: datetime


def coupon_view(row: dict[str, Any]) -> CouponView:
    return view_of(CouponView, row, archived=row["archived_at"] is not None)


def discount_view(row: dict[str, Any]) -> DiscountView:
    return view_of(DiscountView, row)


def terms_of(row: dict[str, Any]) -> rules.CouponTerms:
    """A coupon's or a discount's terms (a discount names its coupon's code `coupon_code`)."""
    return rules.CouponTerms(
        code=row["code"] if "code" in row else row["coupon_code"],
        name=row["name"],
        duration=row["duration"],
        percent_off_bps=row["percent_off_bps"],
        amount_off_minor=row["amount_off_minor"],
        currency=row["currency"].strip() if row["currency"] else None,
        duration_periods=row["duration_periods"],
        plan_codes=tuple(row["plan_codes"]) if row["plan_codes"] is not None else None,
    )


def discount_of(row: dict[str, Any]) -> rules.Discount:
    return rules.Discount(
        position=row["position"],
        terms=terms_of(row),
        periods_used=row["periods_used"],
        amount_remaining_minor=row["amount_remaining_minor"],
    )


def _definition(row: dict[str, Any]) -> tuple[Any, ...]:
    return (terms_of(row), row["max_redemptions"], row["redeem_by"])


# -- the catalogue (staff) ------------------------------------------------------------------------------------


async def create_coupon(actor: Principal, definition: CouponDefinition) -> tuple[CouponView, bool]:
    """(coupon, created). The same definition again answers with the stored one; other terms under the same
    code are refused (`coupon_exists`): a coupon never changes, since discounts were redeemed from it."""
    terms = definition.terms
    rules.check_terms(terms)
    values = {
        "code": terms.code,
        "name": terms.name,
        "percent_off_bps": terms.percent_off_bps,
        "amount_off_minor": terms.amount_off_minor,
        "currency": terms.currency,
        "duration": terms.duration,
        "duration_periods": terms.duration_periods,
        "plan_codes": list(terms.plan_codes) if terms.plan_codes is not None else None,
        "max_redemptions": definition.max_redemptions,
        "redeem_by": definition.redeem_by,
        "created_by": actor.id,
    }
    async with system_tx(SystemReason.STAFF_CHANGE):
        row = await repository.insert_coupon(values)
        if row is not None:
            log.info("coupon %s created by %s", terms.code, actor.key)
            return coupon_view(row), True
        existing = await repository.get_coupon(terms.code)
    assert existing is not None
    if _definition(existing) != (terms, definition.max_redemptions, definition.redeem_by):
        raise CouponExists(f"the coupon {terms.code!r} exists with other terms")
    return coupon_view(existing), False


async def list_coupons(page: PageRequest) -> Page[CouponView]:
    async with system_tx(SystemReason.STAFF_VIEW):
        return page_of_views(await repository.list_coupons(page), page, coupon_view)


async def get_coupon(code: str) -> CouponView:
    async with system_tx(SystemReason.STAFF_VIEW):
        row = await repository.get_coupon(code)
    if row is None:
        raise CouponNotFound(f"no coupon has the code {code!r}")
    return coupon_view(row)


async def archive_coupon(actor: Principal, code: str) -> CouponView:
    """No new redemption; discounts redeemed before keep running. Archiving again answers as it is."""
    async with system_tx(SystemReason.STAFF_CHANGE):
        row = await repository.archive_coupon(code, actor.id, datetime.now(UTC))
    if row is None:
        raise CouponNotFound(f"no coupon has the code {code!r}")
    log.info("coupon %s archived by %s", code, actor.key)
    return coupon_view(row)


# -- a subscription's discounts -------------------------------------------------------------------------------


async def _locked_subscription(subscription_id: uuid.UUID) -> dict[str, Any]:
    row = await subscriptions_repository.get_subscription(subscription_id, lock="update")
    if row is None:
        raise SubscriptionNotFound()
    return row


async def redeem(actor: Principal, subscription_id: uuid.UUID, coupon_code: str) -> DiscountView:
    """The tenant's admin or staff redeem a coupon on the subscription. Refused, each with its own code, when
    the coupon is archived, expired, exhausted, for other plans or another currency, or was redeemed by the
    tenant before (even if that discount has ended)."""
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.MANAGE_BILLING, "POST")
    now = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        # The subscription locked: redemptions, invoices and removals of its discounts take turns.
        sub = await _locked_subscription(subscription_id)
        if sub["status"] == "canceled":
            raise InvalidSubscriptionTransition("a canceled subscription redeems no coupon", current_status="canceled")
        coupon = await repository.get_coupon(coupon_code)
        if coupon is None:
            raise CouponNotFound(f"no coupon has the code {coupon_code!r}")
        if await repository.tenant_redeemed(coupon["id"]):
            raise CouponAlreadyRedeemed(f"the tenant has redeemed the coupon {coupon_code!r} already")
        terms = terms_of(coupon)
        currency = await repository.plan_currency(sub["plan_id"])
        state = rules.CouponState(
            terms, coupon["archived_at"] is not None, coupon["redeem_by"], coupon["max_redemptions"],
            coupon["times_redeemed"],
        )  # fmt: skip
        rules.check_redeemable(state, sub["plan_code"], currency, now)
        if not await repository.claim_redemption(coupon["id"], now):
            # Another redemption (or staff) got there first: say why from what the coupon is now.
            fresh = await repository.get_coupon(coupon_code)
            assert fresh is not None
            rules.check_redeemable(
                rules.CouponState(
                    terms, fresh["archived_at"] is not None, fresh["redeem_by"], fresh["max_redemptions"],
                    fresh["times_redeemed"],
                ),
                sub["plan_code"], currency, now,
            )  # fmt: skip
            raise CouponExhausted(f"the coupon {coupon_code!r} has no redemption left")
        discount = rules.Discount.redeemed(await repository.next_position(subscription_id), terms)
        row = await repository.insert_discount(
            {
                "tenant_id": tenant_id,
                "subscription_id": subscription_id,
                "coupon_id": coupon["id"],
                "position": discount.position,
                "coupon_code": terms.code,
                "name": terms.name,
                "percent_off_bps": terms.percent_off_bps,
                "amount_off_minor": terms.amount_off_minor,
                "currency": terms.currency,
                "duration": terms.duration,
                "duration_periods": terms.duration_periods,
                "plan_codes": list(terms.plan_codes) if terms.plan_codes is not None else None,
                "amount_remaining_minor": discount.amount_remaining_minor,
            }
        )
        if row is None:  # a concurrent redemption by the same tenant; this transaction's claim rolls back
            raise CouponAlreadyRedeemed(f"the tenant has redeemed the coupon {coupon_code!r} already")
        await mrr_history.record(tenant_id, "discount_applied", row["created_at"])
        await audit.record(
            actor,
            tenant_id,
            "discount.redeemed",
            "subscription",
            subscription_id,
            after={"discount_id": str(row["id"]), "coupon_code": terms.code, "position": discount.position},
        )
        return discount_view(row)


async def list_discounts(actor: Principal, subscription_id: uuid.UUID) -> list[DiscountView]:
    """Every discount the subscription has had, in redemption order (ended and removed ones too)."""
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.READ_BILLING, "GET")
    async with tenant_tx(tenant_id):
        return [discount_view(row) for row in await repository.discounts_of(subscription_id)]


async def remove_discount(actor: Principal, subscription_id: uuid.UUID, discount_id: uuid.UUID) -> DiscountView:
    """Staff end a discount now; the tenant cannot redeem its coupon again. Removing again answers as it is."""
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.STAFF_ONLY, "DELETE")
    async with tenant_tx(tenant_id):
        await _locked_subscription(subscription_id)
        row = await repository.get_discount(subscription_id, discount_id)
        if row is None:
            raise DiscountNotFound()
        if row["status"] != "active":
            return discount_view(row)
        removed_at = datetime.now(UTC)
        after = await repository.update_discount(
            discount_id,
            periods_used=row["periods_used"],
            amount_remaining_minor=row["amount_remaining_minor"],
            ended_reason="removed",
            at=removed_at,
        )
        await mrr_history.record(tenant_id, "discount_ended", removed_at)
        await audit.record(
            actor,
            tenant_id,
            "discount.removed",
            "subscription",
            subscription_id,
            before={"discount_id": str(discount_id), "status": row["status"]},
            after={"discount_id": str(discount_id), "status": after["status"]},
        )
        return discount_view(after)


# -- invoices (inside the caller's tenant transaction) --------------------------------------------------------


async def _plan_code(subscription_id: uuid.UUID, plan_code: str | None) -> str:
    if plan_code is not None:
        return plan_code
    row = await subscriptions_repository.get_subscription(subscription_id)
    if row is None:
        raise SubscriptionNotFound()
    return str(row["plan_code"])


async def discount_lines(
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    lines: Sequence[Line],
    period: Period,
    *,
    currency: str,
    plan_code: str | None = None,
    kind: str = "cycle",
    lock: bool = False,
) -> list[Line]:
    """Inside the caller's tenant transaction: the discount lines (negative) the subscription's discounts give
    `lines` (the invoice's lines before discounts) on an invoice of `kind` in `currency` for the plan
    `plan_code` (None: the subscription's current plan). Nothing is consumed: `record_applied` does that once
    the invoice is written, and the upcoming invoice shows them without writing anything.

    `lock` (an invoice about to be written): the discounts are locked until the transaction ends, so two
    invoices written at once (two seat changes under a shared lock of the subscription) take turns and the
    second sees what the first used; a `once` amount is never given twice."""
    rows = await repository.active_discounts(subscription_id, lock=lock)
    if not rows:
        return []
    plan = await _plan_code(subscription_id, plan_code)
    return rules.discount_lines([discount_of(row) for row in rows], lines, plan, currency, period, kind)


async def record_applied(
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    invoice_id: uuid.UUID,
    lines: Sequence[Line],
    *,
    kind: str,
    currency: str,
    plan_code: str | None = None,
) -> None:
    """Inside the caller's tenant transaction (the subscription locked), once the invoice is written from
    `lines` (before discounts): what each discount took (a row per invoice), what it has left, and the end of
    those used up, over or no longer matching the plan."""
    rows = await repository.active_discounts(subscription_id, lock=True)
    if not rows:
        return
    plan = await _plan_code(subscription_id, plan_code)
    by_position = {row["position"]: row for row in rows}
    outcomes = rules.after_invoices([discount_of(row) for row in rows], lines, kind, plan, currency)
    now = datetime.now(UTC)
    applied: dict[str, int] = {}
    ended: dict[str, str] = {}
    for outcome in outcomes:
        row = by_position[outcome.discount.position]
        if outcome.taken_minor > 0:
            await repository.insert_application(tenant_id, row["id"], invoice_id, outcome.taken_minor)
            applied[str(row["id"])] = outcome.taken_minor
        unchanged = (
            outcome.discount.periods_used == row["periods_used"]
            and outcome.discount.amount_remaining_minor == row["amount_remaining_minor"]
            and outcome.ended is None
        )
        if unchanged:
            continue
        await repository.update_discount(
            row["id"],
            periods_used=outcome.discount.periods_used,
            amount_remaining_minor=outcome.discount.amount_remaining_minor,
            ended_reason=outcome.ended,
            at=now if outcome.ended else None,
        )
        if outcome.ended:
            ended[str(row["id"])] = outcome.ended
    if ended:
        await mrr_history.record(tenant_id, "discount_ended", now)
    if applied or ended:
        await audit.record(
            None,
            tenant_id,
            "discount.applied",
            "invoice",
            invoice_id,
            after={"applied_minor": applied, "ended": ended},
        )


async def billed_share(subscription_id: uuid.UUID, period_end: datetime) -> rules.BilledShare:
    """Inside the caller's tenant transaction: the billed share of the period ending at `period_end` over the
    invoices that billed it (billing.discounts.rules, "Billed share")."""
    invoices = await invoices_repository.invoices_billing_period(subscription_id, period_end)
    if not any(invoice["discount_minor"] for invoice in invoices):
        return rules.FULL_SHARE
    lines = await invoices_repository.invoice_lines([invoice["id"] for invoice in invoices])
    return rules.billed_share(
        [(line["charge_kind"], line["amount_minor"]) for invoice_lines in lines.values() for line in invoice_lines]
    )


async def give_back(tenant_id: uuid.UUID, invoice: dict[str, Any]) -> None:
    """Inside the caller's tenant transaction, the invoice being voided: what it used of each discount goes
    back (a `once` amount's amount, a `once` percent, a `repeating` period), and a discount it used up runs
    again (billing.discounts.rules.given_back). Audited."""
    rows = await repository.applications_of(invoice["id"])
    given: dict[str, int] = {}
    for row in rows:
        discount, reactivate = rules.given_back(
            discount_of(row), row["applied_minor"], invoice["kind"], row["ended_reason"]
        )
        await repository.give_back(
            row["id"], discount.periods_used, discount.amount_remaining_minor, reactivate=reactivate
        )
        given[str(row["id"])] = row["applied_minor"]
    if given:
        await audit.record(
            None, tenant_id, "discount.given_back", "invoice", invoice["id"], after={"given_back_minor": given}
        )
