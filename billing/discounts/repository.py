"""Coupons (platform-wide, no tenant), discounts (a tenant's, under RLS) and what invoices used of them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

TERMS = "code, name, percent_off_bps, amount_off_minor, currency, duration, duration_periods, plan_codes"
COUPON_COLUMNS = (
    f"id, {TERMS}, max_redemptions, redeem_by, times_redeemed, created_by, archived_at, archived_by, created_at"
)
DISCOUNT_COLUMNS = (
    "id, tenant_id, subscription_id, coupon_id, position, coupon_code, name, percent_off_bps, amount_off_minor, "
    "currency, duration, duration_periods, plan_codes, periods_used, amount_remaining_minor, status, ended_reason, "
    "ended_at, created_at"
)


async def insert_coupon(values: dict[str, Any]) -> dict[str, Any] | None:
    """The new coupon, or None when the code is taken."""
    rows = await fetch(
        f"insert into coupons (id, {TERMS}, max_redemptions, redeem_by, created_by) "
        "values ({}, {}, {}, {}, {}, {}, {}, {}, {}::text[], {}, {}, {}) "
        f"on conflict (code) do nothing returning {COUPON_COLUMNS}",
        uuid.uuid4(),
        values["code"],
        values["name"],
        values["percent_off_bps"],
        values["amount_off_minor"],
        values["currency"],
        values["duration"],
        values["duration_periods"],
        values["plan_codes"],
        values["max_redemptions"],
        values["redeem_by"],
        values["created_by"],
    )
    return rows[0] if rows else None


async def get_coupon(code: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {COUPON_COLUMNS} from coupons where code = {{}}{' for update' if lock else ''}",
        code,
    )
    return rows[0] if rows else None


async def list_coupons(page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {COUPON_COLUMNS} from coupons where true{clause} order by created_at, id limit {{}}",
        *args,
        page.limit + 1,
    )


async def archive_coupon(code: str, by: uuid.UUID | None, at: datetime) -> dict[str, Any] | None:
    """Archive once: a second archive leaves the first time and author."""
    rows = await fetch(
        "update coupons set archived_at = coalesce(archived_at, {}), archived_by = coalesce(archived_by, {}) "
        f"where code = {{}} returning {COUPON_COLUMNS}",
        at,
        by,
        code,
    )
    return rows[0] if rows else None


async def claim_redemption(coupon_id: uuid.UUID, now: datetime) -> bool:
    """Count one redemption, only while the coupon is redeemable. One conditional UPDATE: concurrent
    redemptions queue on the row, and each re-checks the counter it finds, so none passes max_redemptions."""
    rows = await fetch(
        "update coupons set times_redeemed = times_redeemed + 1 "
        "where id = {} and archived_at is null and (redeem_by is null or redeem_by > {}) "
        "and (max_redemptions is null or times_redeemed < max_redemptions) returning id",
        coupon_id,
        now,
    )
    return bool(rows)


async def tenant_redeemed(coupon_id: uuid.UUID) -> bool:
    """Inside the tenant's transaction (RLS): has the tenant redeemed this coupon, ever?"""
    return bool(await fetch("select 1 from discounts where coupon_id = {}", coupon_id))


async def next_position(subscription_id: uuid.UUID) -> int:
    """The subscription row locked by the caller, so two redemptions never take the same position."""
    rows = await fetch(
        "select coalesce(max(position), 0) + 1 as position from discounts where subscription_id = {}",
        subscription_id,
    )
    return int(rows[0]["position"])


async def insert_discount(values: dict[str, Any]) -> dict[str, Any] | None:
    """The new discount, or None when the tenant has redeemed this coupon before."""
    rows = await fetch(
        "insert into discounts (id, tenant_id, subscription_id, coupon_id, position, coupon_code, name, "
        "percent_off_bps, amount_off_minor, currency, duration, duration_periods, plan_codes, "
        "amount_remaining_minor) "
        "values ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}::text[], {}) "
        f"on conflict (tenant_id, coupon_id) do nothing returning {DISCOUNT_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["subscription_id"],
        values["coupon_id"],
        values["position"],
        values["coupon_code"],
        values["name"],
        values["percent_off_bps"],
        values["amount_off_minor"],
        values["currency"],
        values["duration"],
        values["duration_periods"],
        values["plan_codes"],
        values["amount_remaining_minor"],
    )
    return rows[0] if rows else None


async def discounts_of(subscription_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {DISCOUNT_COLUMNS} from discounts where subscription_id = {{}} order by position",
        subscription_id,
    )


async def active_discounts(subscription_id: uuid.UUID, *, lock: bool = False) -> list[dict[str, Any]]:
    return await fetch(
        f"select {DISCOUNT_COLUMNS} from discounts where subscription_id = {{}} and status = 'active' "
        f"order by position{' for update' if lock else ''}",
        subscription_id,
    )


async def get_discount(subscription_id: uuid.UUID, discount_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {DISCOUNT_COLUMNS} from discounts where subscription_id = {{}} and id = {{}} for update",
        subscription_id,
        discount_id,
    )
    return rows[0] if rows else None


async def update_discount(
    discount_id: uuid.UUID,
    *,
    periods_used: int,
    amount_remaining_minor: int | None,
    ended_reason: str | None,
    at: datetime | None,
) -> dict[str, Any]:
    """What an invoice (or staff) left of the discount; an end reason ends it at `at`."""
    rows = await fetch(
        "update discounts set periods_used = {}, amount_remaining_minor = {}, "
        "status = case when {}::text is null then status when {}::text = 'removed' then 'removed' else 'ended' end, "
        "ended_reason = coalesce({}::text, ended_reason), ended_at = case when {}::text is null then ended_at "
        f"else {{}}::timestamptz end where id = {{}} returning {DISCOUNT_COLUMNS}",
        periods_used,
        amount_remaining_minor,
        ended_reason,
        ended_reason,
        ended_reason,
        ended_reason,
        at,
        discount_id,
    )
    return rows[0]


async def insert_application(
    tenant_id: uuid.UUID, discount_id: uuid.UUID, invoice_id: uuid.UUID, amount_minor: int
) -> None:
    await fetch(
        "insert into discount_applications (id, tenant_id, discount_id, invoice_id, amount_minor) "
        "values ({}, {}, {}, {}, {}) on conflict (discount_id, invoice_id) do nothing",
        uuid.uuid4(),
        tenant_id,
        discount_id,
        invoice_id,
        amount_minor,
    )


async def applications_of(invoice_id: uuid.UUID) -> list[dict[str, Any]]:
    """The discounts an invoice used, each with what it took (`applied_minor`), locked."""
    columns = ", ".join(f"d.{name.strip()}" for name in DISCOUNT_COLUMNS.split(","))
    return await fetch(
        f"select {columns}, a.amount_minor as applied_minor from discount_applications a "
        "join discounts d on d.id = a.discount_id where a.invoice_id = {} order by d.position for update of d",
        invoice_id,
    )


async def give_back(
    discount_id: uuid.UUID, periods_used: int, amount_remaining_minor: int | None, *, reactivate: bool
) -> None:
    """A voided invoice's use returned; `reactivate`: the discount it had used up runs again."""
    await fetch(
        "update discounts set periods_used = {}, amount_remaining_minor = {}, "
        "status = case when {} then 'active' else status end, "
        "ended_reason = case when {} then null else ended_reason end, "
        "ended_at = case when {} then null else ended_at end where id = {}",
        periods_used,
        amount_remaining_minor,
        reactivate,
        reactivate,
        reactivate,
        discount_id,
    )


async def plan_currency(plan_id: uuid.UUID) -> str:
    rows = await fetch("select currency from plans where id = {}", plan_id)
    return str(rows[0]["currency"]).strip()
