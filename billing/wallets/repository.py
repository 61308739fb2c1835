"""Queries of credit lots and credit transactions. Inside the caller's transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

LOT_COLUMNS = (
    "id, tenant_id, currency, source, amount_minor, remaining_minor, expires_at, expired_at, invoice_id, "
    "payment_id, created_at"
)
TRANSACTION_COLUMNS = (
    "id, tenant_id, currency, lot_id, kind, amount_minor, invoice_id, payment_id, refund_id, created_at"
)


# Advisory lock class of a tenant's credit purchases (beside billing's 7_301 and 7_302).
CREDIT_PURCHASE_LOCK = 7_303


async def lock_purchases(tenant_id: uuid.UUID) -> None:
    """Until the caller commits: one credit purchase of the tenant is started at a time. An advisory lock, not
    the tenant's row: finalizations take that row's number under key-share locks, and a FOR UPDATE there
    could deadlock with them."""
    await fetch(f"select pg_advisory_xact_lock({CREDIT_PURCHASE_LOCK}, hashtext({{}}))", str(tenant_id))


async def insert_lot(values: dict[str, Any]) -> dict[str, Any]:
    """A new lot: a grant holds its amount at once; a purchase's lot is empty until its invoice is paid.
    `created_at` is the request's moment, the one its expiry was checked against (the table's check
    `expires_at > created_at` would otherwise compare with the later moment of the insert)."""
    rows = await fetch(
        f"insert into credit_lots (id, tenant_id, currency, source, amount_minor, remaining_minor, expires_at, "
        f"invoice_id, created_at) values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}) "
        f"returning {LOT_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["currency"],
        values["source"],
        values["amount_minor"],
        values["remaining_minor"],
        values.get("expires_at"),
        values.get("invoice_id"),
        values["created_at"],
    )
    return rows[0]


async def fund_lot(lot_id: uuid.UUID, payment_id: uuid.UUID, expires_at: datetime | None) -> dict[str, Any]:
    """A purchase's lot filled by the payment of its invoice, expiring at `expires_at`."""
    rows = await fetch(
        f"update credit_lots set remaining_minor = amount_minor, payment_id = {{}}, expires_at = {{}} "
        f"where id = {{}} and payment_id is null returning {LOT_COLUMNS}",
        payment_id,
        expires_at,
        lot_id,
    )
    return rows[0]


async def insert_transaction(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        f"insert into credit_transactions (id, tenant_id, currency, lot_id, kind, amount_minor, invoice_id, "
        f"payment_id, refund_id, dispute_id) values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}) "
        f"returning {TRANSACTION_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["currency"],
        values["lot_id"],
        values["kind"],
        values["amount_minor"],
        values.get("invoice_id"),
        values.get("payment_id"),
        values.get("refund_id"),
        values.get("dispute_id"),
    )
    return rows[0]


async def usable_lots(tenant_id: uuid.UUID, currency: str, now: datetime, *, lock: bool) -> list[dict[str, Any]]:
    """The tenant's lots in `currency` with credit left and not expired; `available_minor` is what remains less
    a refund of the lot's purchase waiting for Stripe (that money is on its way back, not to be applied).
    `lock` holds them (FOR UPDATE) until the caller commits, in one order (created_at, id), so concurrent
    finalizations never deadlock or overdraw."""
    return await fetch(
        f"select {LOT_COLUMNS}, (remaining_minor - coalesce((select sum(r.amount_minor) from refunds r "
        "where r.invoice_id = credit_lots.invoice_id and r.status = 'pending'), 0))::bigint as available_minor "
        "from credit_lots where tenant_id = {} and currency = {} "
        "and remaining_minor > 0 and (expires_at is null or expires_at > {}) order by created_at, id"
        + (" for update" if lock else ""),
        tenant_id,
        currency,
        now,
    )


async def get_lot(lot_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {LOT_COLUMNS} from credit_lots where id = {{}}" + (" for update" if lock else ""), lot_id
    )
    return rows[0] if rows else None


async def pending_refunds_minor(invoice_id: uuid.UUID | None) -> int:
    """What refunds of a credit purchase waiting for Stripe's answer take back (0 for a granted lot)."""
    if invoice_id is None:
        return 0
    rows = await fetch(
        "select coalesce(sum(amount_minor), 0)::bigint as pending from refunds "
        "where invoice_id = {} and status = 'pending'",
        invoice_id,
    )
    return int(rows[0]["pending"])


async def lot_of_invoice(invoice_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any] | None:
    """The lot a credit purchase invoice funded (None: not paid yet)."""
    rows = await fetch(
        f"select {LOT_COLUMNS} from credit_lots where invoice_id = {{}}" + (" for update" if lock else ""),
        invoice_id,
    )
    return rows[0] if rows else None


async def move_lot(lot_id: uuid.UUID, delta_minor: int, *, expired_at: datetime | None = None) -> dict[str, Any]:
    """Add `delta_minor` (negative: take) to the lot's remaining; the database keeps it within 0..amount."""
    rows = await fetch(
        "update credit_lots set remaining_minor = remaining_minor + {}, expired_at = coalesce({}, expired_at) "
        f"where id = {{}} returning {LOT_COLUMNS}",
        delta_minor,
        expired_at,
        lot_id,
    )
    return rows[0]


async def applied_to(invoice_id: uuid.UUID) -> list[dict[str, Any]]:
    """What each lot still has applied to an invoice, net of what was restored to it (a cancellation gives
    back part, a void the rest): `amount_minor` is that net as an `applied` movement (negative), with the
    lot's source and when it was last applied (`applied_at`); lots with nothing left applied are left out.
    In the lots' lock order (created_at, id, as `usable_lots`), not the order they were applied in (granted
    first), so a restore locking them one by one never deadlocks with a finalization locking the same lots."""
    rows = await fetch(
        "select t.lot_id, t.currency, l.source, sum(t.amount_minor) as amount_minor, "
        "max(t.created_at) filter (where t.kind = 'applied') as applied_at from credit_transactions t "
        "join credit_lots l on l.id = t.lot_id where t.invoice_id = {} and t.kind in ('applied', 'restored') "
        "group by t.lot_id, t.currency, l.source, l.created_at having sum(t.amount_minor) < 0 "
        "order by l.created_at, t.lot_id",
        invoice_id,
    )
    # The sums come back as numeric; each is a whole number of minor units.
    return [row | {"amount_minor": int(row["amount_minor"])} for row in rows]


async def purchase_in_flight(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    """The tenant's credit purchase whose payment is waiting for Stripe's answer, if any."""
    rows = await fetch(
        "select i.id, i.total_minor from invoices i where i.tenant_id = {} and i.kind = 'credit_purchase' "
        "and i.status = 'finalized' and exists (select 1 from payments p where p.invoice_id = i.id "
        "and p.status = 'pending') order by i.created_at limit 1",
        tenant_id,
    )
    return rows[0] if rows else None


async def list_transactions(tenant_id: uuid.UUID, currency: str, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {TRANSACTION_COLUMNS} from credit_transactions where tenant_id = {{}} and currency = {{}}{clause} "
        "order by created_at, id limit {}",
        tenant_id,
        currency,
        *args,
        page.limit + 1,
    )


async def expiring_lots(as_of: datetime, limit: int) -> list[dict[str, Any]]:
    """Across tenants (system context): lots past their expiry with credit left, oldest expiry first."""
    return await fetch(
        "select id, tenant_id from credit_lots where remaining_minor > 0 and expires_at <= {} "
        "order by expires_at, id limit {}",
        as_of,
        limit,
    )


async def liability_differences() -> list[dict[str, Any]]:
    """Across tenants: each tenant's credit liability account against its purchased lots' remaining (expired
    lots are brought to 0 by the expiry run) plus what its unpaid credit purchases will fund."""
    return await fetch(
        "with ledger as ("
        " select tenant_id, currency, -sum(amount_minor) as balance from ledger_postings"
        " where account = 'credit_liability:tenant:' || tenant_id::text group by tenant_id, currency"
        "), lots as ("
        " select tenant_id, currency, sum(remaining_minor) as remaining from credit_lots"
        " where source = 'purchased' group by tenant_id, currency"
        "), unpaid as ("
        " select tenant_id, currency, sum(total_minor - credited_minor) as owed from invoices"
        " where kind = 'credit_purchase' and status in ('finalized', 'uncollectible') group by tenant_id, currency"
        "), keys as (select tenant_id, currency from ledger union select tenant_id, currency from lots"
        " union select tenant_id, currency from unpaid)"
        " select k.tenant_id, k.currency, coalesce(l.balance, 0) as ledger,"
        " coalesce(o.remaining, 0) + coalesce(u.owed, 0) as documents from keys k"
        " left join ledger l on l.tenant_id = k.tenant_id and l.currency = k.currency"
        " left join lots o on o.tenant_id = k.tenant_id and o.currency = k.currency"
        " left join unpaid u on u.tenant_id = k.tenant_id and u.currency = k.currency"
        " where coalesce(l.balance, 0) <> coalesce(o.remaining, 0) + coalesce(u.owed, 0)"
    )
