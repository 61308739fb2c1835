"""Queries of billing's notices: where a failed invoice stands in dunning, and what the scans look for (trials
about to end, cards about to expire). Knows SQL, nothing of HTTP or email."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch


async def dunning_position(invoice_id: uuid.UUID) -> tuple[datetime | None, int | None]:
    """Inside the caller's transaction: the invoice's first failed attempt (when) and the highest dunning step
    the collection run attempted (None: none yet), as the collection run reads them."""
    rows = await fetch(
        "select min(created_at) filter (where status = 'failed') as first_failure, max(dunning_step) as last_step "
        "from payments where invoice_id = {}",
        invoice_id,
    )
    return rows[0]["first_failure"], rows[0]["last_step"]


async def trials_ending(
    after: datetime, until: datetime, since: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[dict[str, Any]]:
    """Across tenants (system context): one page of the trialing subscriptions whose trial ends in
    `(after, until]`, of tenants not being erased, in (trial end, id) order after `since` (the last of the previous
    page). A trial's period ends with it, so the cycle's index on `current_period_end` (partial on the live
    statuses) finds them."""
    keyset, args = ("", []) if since is None else (" and (s.current_period_end, s.id) > ({}, {})", list(since))
    return await fetch(
        "select s.id, s.tenant_id, s.current_period_end from subscriptions s "
        "where s.status = 'trialing' and s.current_period_end > {} and s.current_period_end <= {}"
        + keyset
        + " and not exists (select 1 from tenants t where t.id = s.tenant_id and t.status = 'pending_deletion') "
        "order by s.current_period_end, s.id limit {}",
        after,
        until,
        *args,
        limit,
    )


async def expiring_default_cards(year: int, month: int, since: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
    """Across tenants (system context): one page of the default cards whose last valid month is `year`-`month`,
    of tenants not being erased (by `payment_methods_expiry_idx`), in id order after `since` (the last of the
    previous page)."""
    keyset, args = ("", []) if since is None else (" and m.id > {}", [since])
    return await fetch(
        "select m.id, m.tenant_id from payment_methods m "
        "where m.is_default and m.exp_year = {} and m.exp_month = {} and m.detached_at is null"
        + keyset
        + " and not exists (select 1 from tenants t where t.id = m.tenant_id and t.status = 'pending_deletion') "
        "order by m.id limit {}",
        year,
        month,
        *args,
        limit,
    )


async def card(payment_method_id: uuid.UUID) -> dict[str, Any] | None:
    """Inside the caller's tenant transaction: one card as the expiry notice tells of it."""
    rows = await fetch(
        "select id, tenant_id, brand, last4, exp_month, exp_year, is_default, detached_at from payment_methods "
        "where id = {}",
        payment_method_id,
    )
    return rows[0] if rows else None
