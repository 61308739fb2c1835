"""Queries of payments: Stripe customers, payment methods and collection attempts. Inside the caller's
transaction; each names its tenant (see `billing.repository`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

METHOD_COLUMNS = "id, tenant_id, stripe_payment_method_id, brand, last4, exp_month, exp_year, is_default, created_at"
PAYMENT_COLUMNS = (
    "id, tenant_id, invoice_id, attempt, idempotency_key, status, amount_minor, currency, stripe_customer_id, "
    "stripe_payment_method_id, stripe_payment_intent_id, decline_code, created_at, updated_at, dunning_step"
)


async def customer_of(tenant_id: uuid.UUID) -> str | None:
    rows = await fetch("select stripe_customer_id from billing_customers where tenant_id = {}", tenant_id)
    return rows[0]["stripe_customer_id"] if rows else None


async def save_customer(tenant_id: uuid.UUID, customer_id: str) -> str:
    """The tenant's customer: this one, or the one a concurrent request saved first."""
    await fetch(
        "insert into billing_customers (tenant_id, stripe_customer_id) values ({}, {}) on conflict do nothing",
        tenant_id,
        customer_id,
    )
    saved = await customer_of(tenant_id)
    assert saved is not None
    return saved


async def save_payment_method(tenant_id: uuid.UUID, values: dict[str, Any], make_default: bool) -> dict[str, Any]:
    if make_default:
        await fetch("update payment_methods set is_default = false where tenant_id = {} and is_default", tenant_id)
    rows = await fetch(
        "insert into payment_methods (id, tenant_id, stripe_payment_method_id, brand, last4, exp_month, exp_year, "
        "is_default) values ({}, {}, {}, {}, {}, {}, {}, {}) on conflict (tenant_id, stripe_payment_method_id) "
        f"do update set is_default = payment_methods.is_default or excluded.is_default returning {METHOD_COLUMNS}",
        uuid.uuid4(),
        tenant_id,
        values["stripe_payment_method_id"],
        values["brand"],
        values["last4"],
        values["exp_month"],
        values["exp_year"],
        make_default,
    )
    return rows[0]


async def has_payment_methods(tenant_id: uuid.UUID) -> bool:
    rows = await fetch("select 1 from payment_methods where tenant_id = {} limit 1", tenant_id)
    return bool(rows)


async def default_payment_method(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(f"select {METHOD_COLUMNS} from payment_methods where tenant_id = {{}} and is_default", tenant_id)
    return rows[0] if rows else None


async def list_payment_methods(tenant_id: uuid.UUID, page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {METHOD_COLUMNS} from payment_methods where tenant_id = {{}}{clause} "
        "order by created_at, id limit {}",
        tenant_id,
        *args,
        page.limit + 1,
    )


async def open_attempt(invoice_id: uuid.UUID) -> dict[str, Any] | None:
    """An attempt whose outcome is unknown (Stripe did not answer): retried with its own key."""
    rows = await fetch(
        f"select {PAYMENT_COLUMNS} from payments where invoice_id = {{}} and status = 'pending' for update",
        invoice_id,
    )
    return rows[0] if rows else None


async def last_attempt(invoice_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {PAYMENT_COLUMNS} from payments where invoice_id = {{}} order by attempt desc limit 1", invoice_id
    )
    return rows[0] if rows else None


async def insert_attempt(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into payments (id, tenant_id, invoice_id, attempt, idempotency_key, status, amount_minor, currency, "
        "stripe_customer_id, stripe_payment_method_id, dunning_step) "
        "values ({}, {}, {}, {}, {}, 'pending', {}, {}, {}, {}, {}) "
        f"returning {PAYMENT_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["invoice_id"],
        values["attempt"],
        values["idempotency_key"],
        values["amount_minor"],
        values["currency"],
        values["stripe_customer_id"],
        values["stripe_payment_method_id"],
        values.get("dunning_step"),
    )
    return rows[0]


async def has_pending_attempt(invoice_id: uuid.UUID) -> bool:
    """Money in flight: an attempt whose outcome Stripe has not told us yet."""
    rows = await fetch("select 1 from payments where invoice_id = {} and status = 'pending' limit 1", invoice_id)
    return bool(rows)


async def last_dunning_step(invoice_id: uuid.UUID) -> int | None:
    rows = await fetch("select max(dunning_step) as step from payments where invoice_id = {}", invoice_id)
    return rows[0]["step"]


async def settle_attempt(
    payment_id: uuid.UUID, status: str, payment_intent_id: str | None, decline_code: str | None
) -> dict[str, Any] | None:
    """Record Stripe's answer; None when the attempt was already settled (its first answer stands)."""
    rows = await fetch(
        "update payments set status = {}, stripe_payment_intent_id = {}, decline_code = {}, "
        f"updated_at = clock_timestamp() where id = {{}} and status = 'pending' returning {PAYMENT_COLUMNS}",
        status,
        payment_intent_id,
        decline_code,
        payment_id,
    )
    return rows[0] if rows else None


async def get_attempt(payment_id: uuid.UUID) -> dict[str, Any]:
    return (await fetch(f"select {PAYMENT_COLUMNS} from payments where id = {{}}", payment_id))[0]


# A run takes at most this many invoices of one tenant: a tenant with thousands of unpaid invoices (a seat bumped
# again and again, each an immediate upgrade invoice) takes its share, never everyone's run.
PER_TENANT_PER_RUN = 20


async def collectable_invoices(
    as_of: datetime, limit: int, per_tenant: int = PER_TENANT_PER_RUN
) -> list[dict[str, Any]]:
    """Across tenants (system context): finalized invoices with an amount due, with their attempts so far, at
    most `per_tenant` of each tenant. Invoices never tried whose tenant has a card come first, so retries of
    failing ones never hold up healthy work; an invoice of a tenant without a card never gets an attempt row,
    so it is not "never tried" for ever: it waits with the retries, in order of its own issue. An invoice the
    run failed on through a fault of ours waits until its `collection_retry_at`, then comes after the others."""
    return await fetch(
        "with candidates as ("
        "select i.id, i.tenant_id, i.kind, i.issued_at, i.collection_attempts, count(p.id) as attempts, "
        "min(p.created_at) filter (where p.status = 'failed') as first_failure, "
        "coalesce(bool_or(p.status = 'pending'), false) as has_pending, "
        "max(p.dunning_step) as last_step, "
        "count(p.id) = 0 and exists (select 1 from payment_methods m where m.tenant_id = i.tenant_id "
        "and m.is_default) as fresh "
        "from invoices i left join payments p on p.invoice_id = i.id "
        "where i.status = 'finalized' and i.amount_due_minor > 0 "
        # A credit purchase is collected once, at the top-up, never dunned (billing.wallets.service); only an
        # attempt of it whose answer was lost is sent again, with its own key.
        "and (i.kind <> 'credit_purchase' or exists (select 1 from payments pending where pending.invoice_id = i.id "
        "and pending.status = 'pending')) "
        # An erased tenant is never charged again.
        "and not exists (select 1 from tenants t where t.id = i.tenant_id and t.status = 'pending_deletion') "
        "and (i.collection_retry_at is null or i.collection_retry_at <= {}) "
        "group by i.id, i.tenant_id, i.kind, i.issued_at), "
        "ranked as (select c.*, row_number() over (partition by c.tenant_id "
        "order by c.collection_attempts > 0, not c.fresh, c.issued_at, c.id) as tenant_rank from candidates c) "
        "select id, tenant_id, kind, issued_at, attempts, first_failure, has_pending, last_step, collection_attempts "
        "from ranked where tenant_rank <= {} order by collection_attempts > 0, not fresh, issued_at, id limit {}",
        as_of,
        per_tenant,
        limit,
    )


async def record_collection_failure(invoice_id: uuid.UUID, reason: str, retry_at: datetime) -> None:
    await fetch(
        "update invoices set collection_error = {}, collection_attempts = collection_attempts + 1, "
        "collection_retry_at = {} where id = {}",
        reason,
        retry_at,
        invoice_id,
    )


async def clear_collection_failure(invoice_id: uuid.UUID) -> None:
    await fetch(
        "update invoices set collection_error = null, collection_attempts = 0, collection_retry_at = null "
        "where id = {}",
        invoice_id,
    )


async def failed_attempts(invoice_id: uuid.UUID) -> int:
    rows = await fetch("select count(*) as n from payments where invoice_id = {} and status = 'failed'", invoice_id)
    return int(rows[0]["n"])


async def other_uncollectible(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> bool:
    rows = await fetch(
        "select 1 from invoices where tenant_id = {} and status = 'uncollectible' and id <> {} limit 1",
        tenant_id,
        invoice_id,
    )
    return bool(rows)


async def record_webhook_event(event_id: str, event_type: str) -> bool:
    """False when this event was received before (a duplicate delivery)."""
    rows = await fetch(
        "insert into stripe_webhook_events (id, type) values ({}, {}) on conflict do nothing returning id",
        event_id,
        event_type,
    )
    return bool(rows)


async def record_webhook_rejection(reason: str, every_seconds: int) -> bool:
    """Logs a refused delivery unless one of the same reason was logged in the last `every_seconds`: the log
    stays bounded however many forged deliveries arrive. True when a row was written."""
    rows = await fetch(
        "insert into stripe_webhook_rejections (id, reason) select {}, {} where not exists ("
        "select 1 from stripe_webhook_rejections where reason = {} "
        "and received_at > now() - make_interval(secs => {})) returning id",
        uuid.uuid4(),
        reason,
        reason,
        every_seconds,
    )
    return bool(rows)


async def attempt_by_intent(payment_intent_id: str) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {PAYMENT_COLUMNS} from payments where stripe_payment_intent_id = {{}} for update", payment_intent_id
    )
    return rows[0] if rows else None


REFUND_COLUMNS = (
    "id, tenant_id, invoice_id, payment_id, amount_minor, currency, reason, status, stripe_refund_id, created_at"
)


async def paid_attempt(invoice_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {PAYMENT_COLUMNS} from payments where invoice_id = {{}} and status = 'succeeded' "
        "order by attempt desc limit 1",
        invoice_id,
    )
    return rows[0] if rows else None


async def refunded_or_refunding(invoice_id: uuid.UUID) -> int:
    rows = await fetch(
        "select coalesce(sum(amount_minor), 0) as n from refunds where invoice_id = {} and status <> 'failed'",
        invoice_id,
    )
    return int(rows[0]["n"])


async def refunded_minor(invoice_id: uuid.UUID) -> int:
    """What Stripe has refunded on the invoice, as far as we have recorded it."""
    rows = await fetch(
        "select coalesce(sum(amount_minor), 0) as n from refunds where invoice_id = {} and status = 'succeeded'",
        invoice_id,
    )
    return int(rows[0]["n"])


async def get_refund(refund_id: uuid.UUID) -> dict[str, Any]:
    return (await fetch(f"select {REFUND_COLUMNS} from refunds where id = {{}}", refund_id))[0]


async def refund_with_stripe_id(invoice_id: uuid.UUID, stripe_refund_id: str) -> bool:
    rows = await fetch(
        "select 1 from refunds where invoice_id = {} and stripe_refund_id = {} limit 1", invoice_id, stripe_refund_id
    )
    return bool(rows)


async def lost_refunds(older_than: datetime, limit: int) -> list[dict[str, Any]]:
    """Across tenants (system context): refunds still pending since before `older_than`, oldest first."""
    return await fetch(
        f"select {REFUND_COLUMNS} from refunds where status = 'pending' and created_at < {{}} "
        "order by created_at, id limit {}",
        older_than,
        limit,
    )


async def pending_refunds(invoice_id: uuid.UUID) -> list[dict[str, Any]]:
    """Refunds sent (or about to be) whose answer we do not have, oldest first; locked."""
    return await fetch(
        f"select {REFUND_COLUMNS} from refunds where invoice_id = {{}} and status = 'pending' "
        "order by created_at, id for update",
        invoice_id,
    )


async def insert_refund(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into refunds (id, tenant_id, invoice_id, payment_id, amount_minor, currency, reason, status) "
        f"values ({{}}, {{}}, {{}}, {{}}, {{}}, {{}}, {{}}, 'pending') returning {REFUND_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["invoice_id"],
        values["payment_id"],
        values["amount_minor"],
        values["currency"],
        values["reason"],
    )
    return rows[0]


async def settle_refund(refund_id: uuid.UUID, status: str, stripe_refund_id: str | None) -> dict[str, Any] | None:
    rows = await fetch(
        "update refunds set status = {}, stripe_refund_id = {}, updated_at = clock_timestamp() "
        f"where id = {{}} and status = 'pending' returning {REFUND_COLUMNS}",
        status,
        stripe_refund_id,
        refund_id,
    )
    return rows[0] if rows else None


async def reopen_failed_attempt(payment_id: uuid.UUID) -> bool:
    """A failed attempt whose charge Stripe later reports as succeeded is settled again (as succeeded)."""
    rows = await fetch(
        "update payments set status = 'pending' where id = {} and status = 'failed' returning id", payment_id
    )
    return bool(rows)


# -- a tenant's erasure ---------------------------------------------------------------------------------


async def retire_payment_methods(tenant_id: uuid.UUID) -> None:
    """No card of the tenant is its default any more: nothing collects on them."""
    await fetch("update payment_methods set is_default = false where tenant_id = {} and is_default", tenant_id)


async def attached_payment_methods(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        "select id, stripe_payment_method_id from payment_methods where tenant_id = {} and detached_at is null",
        tenant_id,
    )


async def mark_detached(tenant_id: uuid.UUID, method_id: uuid.UUID) -> None:
    await fetch(
        "update payment_methods set detached_at = coalesce(detached_at, clock_timestamp()) "
        "where tenant_id = {} and id = {}",
        tenant_id,
        method_id,
    )
