"""Queries of disputes. Inside the caller's transaction; each names its tenant or runs in the system scope."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

DISPUTE_COLUMNS = (
    "id, tenant_id, invoice_id, payment_id, stripe_dispute_id, charge_id, amount_minor, currency, fee_minor, "
    "fee_currency, fee_returned_minor, reason, status, opened_at, closed_at, created_at, funds_withdrawn, "
    "credits_taken_minor, rebill_invoice_id"
)


async def insert_dispute(values: dict[str, Any]) -> dict[str, Any] | None:
    """The new open dispute; None when this Stripe dispute is recorded already (its first record stands)."""
    rows = await fetch(
        "insert into disputes (id, tenant_id, invoice_id, payment_id, stripe_dispute_id, charge_id, amount_minor, "
        "currency, fee_minor, fee_currency, reason, opened_at, funds_withdrawn) "
        "values ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
        f"on conflict (stripe_dispute_id) do nothing returning {DISPUTE_COLUMNS}",
        uuid.uuid4(),
        values["tenant_id"],
        values["invoice_id"],
        values["payment_id"],
        values["stripe_dispute_id"],
        values["charge_id"],
        values["amount_minor"],
        values["currency"],
        values["fee_minor"],
        values["fee_currency"],
        values["reason"],
        values["opened_at"],
        values["funds_withdrawn"],
    )
    return rows[0] if rows else None


async def dispute_by_stripe_id(stripe_dispute_id: str) -> dict[str, Any] | None:
    """Locked: the events of one dispute apply one after another."""
    rows = await fetch(
        f"select {DISPUTE_COLUMNS} from disputes where stripe_dispute_id = {{}} for update", stripe_dispute_id
    )
    return rows[0] if rows else None


async def dispute(dispute_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(f"select {DISPUTE_COLUMNS} from disputes where id = {{}}", dispute_id)
    return rows[0] if rows else None


async def unpaid_rebill(tenant_id: uuid.UUID) -> bool:
    """Inside the caller's transaction: a lost dispute of the tenant is billed again by an invoice not paid yet
    (what keeps its suspension for that loss)."""
    rows = await fetch(
        "select 1 from disputes d join invoices i on i.id = d.rebill_invoice_id where d.tenant_id = {} "
        "and i.status in ('draft', 'finalized', 'uncollectible') limit 1",
        tenant_id,
    )
    return bool(rows)


async def holds_invoice(invoice_id: uuid.UUID) -> bool:
    """Inside the caller's transaction: a dispute of the invoice is open or lost (its money is not the
    platform's to give back)."""
    rows = await fetch(
        "select 1 from disputes where invoice_id = {} and status in ('open', 'lost') limit 1", invoice_id
    )
    return bool(rows)


async def unanswered_attempt_for(currency: str, amount_minor: int) -> bool:
    """System scope: a collection attempt still waiting for Stripe's answer (no payment intent known yet) that a
    dispute of `amount_minor` in `currency` may be of."""
    rows = await fetch(
        "select 1 from payments where status = 'pending' and stripe_payment_intent_id is null "
        "and currency = {} and amount_minor >= {} limit 1",
        currency,
        amount_minor,
    )
    return bool(rows)


async def record_fee(dispute_id: uuid.UUID, fee_minor: int, fee_currency: str) -> dict[str, Any] | None:
    """Stripe's fee, first told after the dispute was recorded; None when a fee is recorded already (the first
    stands) or the dispute is decided."""
    rows = await fetch(
        "update disputes set fee_minor = {}, fee_currency = {} "
        f"where id = {{}} and fee_minor = 0 and status = 'open' returning {DISPUTE_COLUMNS}",
        fee_minor,
        fee_currency,
        dispute_id,
    )
    return rows[0] if rows else None


async def record_withdrawal(dispute_id: uuid.UUID) -> dict[str, Any] | None:
    """An open inquiry whose funds Stripe has now withdrawn; None when they were withdrawn already."""
    rows = await fetch(
        "update disputes set funds_withdrawn = true "
        f"where id = {{}} and not funds_withdrawn and status = 'open' returning {DISPUTE_COLUMNS}",
        dispute_id,
    )
    return rows[0] if rows else None


async def close_dispute(
    dispute_id: uuid.UUID,
    status: str,
    fee_returned_minor: int,
    credits_taken_minor: int,
    rebill_invoice_id: uuid.UUID | None,
    closed_at: datetime,
) -> dict[str, Any] | None:
    """Decide an open dispute; None when it was decided already (its first decision stands)."""
    rows = await fetch(
        "update disputes set status = {}, fee_returned_minor = {}, credits_taken_minor = {}, rebill_invoice_id = {}, "
        "closed_at = greatest({}, opened_at) "
        f"where id = {{}} and status = 'open' returning {DISPUTE_COLUMNS}",
        status,
        fee_returned_minor,
        credits_taken_minor,
        rebill_invoice_id,
        closed_at,
        dispute_id,
    )
    return rows[0] if rows else None


async def list_disputes(tenant_id: uuid.UUID | None, status: str | None, page: PageRequest) -> list[dict[str, Any]]:
    """A page of disputes, oldest first: one tenant's, or (system scope, `tenant_id` None) everyone's."""
    clause, args = keyset_clause(page)
    conditions: list[str] = ["true"]
    values: list[Any] = []
    if tenant_id is not None:
        conditions.append("tenant_id = {}")
        values.append(tenant_id)
    if status is not None:
        conditions.append("status = {}")
        values.append(status)
    return await fetch(
        f"select {DISPUTE_COLUMNS} from disputes where {' and '.join(conditions)}{clause} "
        "order by created_at, id limit {}",
        *values,
        *args,
        page.limit + 1,
    )


async def disputes_of_invoices(invoice_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[dict[str, Any]]]:
    rows = await fetch(
        f"select {DISPUTE_COLUMNS} from disputes where invoice_id = any({{}}::uuid[]) order by created_at, id",
        list(invoice_ids),
    )
    found: dict[uuid.UUID, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        found[row["invoice_id"]].append(row)
    return found


# Each dispute's journals as its row says they must be, by (journal, account, currency): the opening one (the
# amount once the funds are withdrawn, and Stripe's fee: booked with the opening, or on its own in a later
# `dispute_fee` journal, both counted as `dispute_opened`), the closing one once decided, for a dispute whose
# funds were withdrawn (an inquiry closes with nothing to return); a lost one's credits taken back from the
# wallet come off the credit liability instead of being lost. Zero lines are left out, as
# `billing.ledger.rules.balanced` leaves them out.
_EXPECTED = """
select d.id as dispute_id, d.tenant_id, 'dispute_opened' as journal, x.account, x.currency, sum(x.amount) as amount
from disputes d cross join lateral (values
    ('disputes_held:tenant:' || d.tenant_id::text, d.currency, d.amount_minor * d.funds_withdrawn::int),
    ('cash:stripe', d.currency, -d.amount_minor * d.funds_withdrawn::int),
    ('dispute_fees', d.fee_currency, d.fee_minor),
    ('cash:stripe', d.fee_currency, -d.fee_minor)
) as x (account, currency, amount)
group by 1, 2, 3, 4, 5
union all
select d.id, d.tenant_id, 'dispute_closed', x.account, x.currency, sum(x.amount)
from disputes d cross join lateral (values
    ('disputes_held:tenant:' || d.tenant_id::text, d.currency, -d.amount_minor),
    (case when d.status = 'won' then 'cash:stripe' else 'dispute_losses' end, d.currency,
        d.amount_minor - d.credits_taken_minor),
    ('credit_liability:tenant:' || d.tenant_id::text, d.currency, d.credits_taken_minor),
    ('dispute_fees', d.fee_currency, -d.fee_returned_minor),
    ('cash:stripe', d.fee_currency, d.fee_returned_minor)
) as x (account, currency, amount)
where d.status <> 'open' and d.funds_withdrawn
group by 1, 2, 3, 4, 5
"""

# What the ledger holds for disputes: the postings of every dispute journal (a `dispute_fee` journal counted
# with the opening), and any posting to a dispute account from another journal (which nothing should make),
# keyed by that journal's source.
_ACTUAL = """
select j.source_id as dispute_id, j.tenant_id,
    case when j.source_type in ('dispute_opened', 'dispute_fee') then 'dispute_opened'
        when j.source_type = 'dispute_closed' then j.source_type else 'other:' || j.source_type
    end as journal, p.account, p.currency, sum(p.amount_minor) as amount
from ledger_journals j join ledger_postings p on p.journal_id = j.id
where j.source_type in ('dispute_opened', 'dispute_fee', 'dispute_closed')
    or p.account like 'disputes\\_held:%' or p.account in ('dispute_fees', 'dispute_losses')
group by 1, 2, 3, 4, 5
"""


async def ledger_differences() -> list[dict[str, Any]]:
    """System scope: every (dispute, journal, account, currency) where the ledger and the dispute's row disagree
    (a missing or extra journal, a wrong amount, a journal of another tenant, a stray dispute posting)."""
    return await fetch(
        f"with expected as ({_EXPECTED}), actual as ({_ACTUAL}) "
        "select coalesce(e.dispute_id, a.dispute_id) as dispute_id, coalesce(e.journal, a.journal) as journal, "
        "coalesce(e.account, a.account) as account, trim(coalesce(e.currency, a.currency)) as currency, "
        "coalesce(e.amount, 0) as expected, coalesce(a.amount, 0) as ledger "
        "from (select * from expected where amount <> 0) e full join actual a "
        "on a.dispute_id = e.dispute_id and a.tenant_id = e.tenant_id and a.journal = e.journal "
        "and a.account = e.account and a.currency = e.currency "
        "where coalesce(e.amount, 0) <> coalesce(a.amount, 0) "
        "order by 1, 2, 3, 4"
    )
