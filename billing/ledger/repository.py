"""Queries of the ledger: journals in, balances and checks out. Inside the caller's transaction."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from billing.ledger.rules import Posting
from controlplane.core.db import fetch


async def post(
    tenant_id: uuid.UUID | None, source_type: str, source_id: uuid.UUID, description: str, postings: Sequence[Posting]
) -> bool:
    """Write one journal; False (and nothing written) when this source already has its journal. A journal of
    no tenant (a payout to a reseller) is the platform's."""
    journal_id = uuid.uuid4()
    rows = await fetch(
        "insert into ledger_journals (id, tenant_id, source_type, source_id, description) "
        "values ({}, {}, {}, {}, {}) on conflict (source_type, source_id) do nothing returning id",
        journal_id,
        tenant_id,
        source_type,
        source_id,
        description,
    )
    if not rows or not postings:
        return bool(rows)
    await fetch(
        "insert into ledger_postings (tenant_id, journal_id, account, amount_minor, currency) "
        "select {}, {}, a, m, c from unnest({}::text[], {}::bigint[], {}::text[]) as p(a, m, c)",
        tenant_id,
        journal_id,
        [p.account for p in postings],
        [p.amount_minor for p in postings],
        [p.currency for p in postings],
    )
    return True


async def invoice_postings(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> list[Posting]:
    """Every posting so far caused by this invoice: its issue, the credits applied to it, the credits given
    back from it (a cancellation's) and its credit notes, summed by account."""
    rows = await fetch(
        "select p.account, p.currency, sum(p.amount_minor) as amount from ledger_postings p "
        "join ledger_journals j on j.id = p.journal_id "
        "where p.tenant_id = {} and ((j.source_type in ('invoice', 'credits_applied') and j.source_id = {}) "
        "or (j.source_type = 'credit_note' and j.source_id in (select id from credit_notes where invoice_id = {})) "
        "or (j.source_type = 'credits_restored' and j.source_id in (select id from credit_transactions "
        "where invoice_id = {} and kind = 'restored'))) "
        "group by p.account, p.currency",
        tenant_id,
        invoice_id,
        invoice_id,
        invoice_id,
    )
    return [Posting(row["account"], int(row["amount"]), row["currency"]) for row in rows]


async def unbalanced_journals() -> list[dict[str, Any]]:
    return await fetch(
        "select journal_id, currency, sum(amount_minor) as total from ledger_postings "
        "group by journal_id, currency having sum(amount_minor) <> 0"
    )


async def receivable_differences() -> list[dict[str, Any]]:
    """Tenants whose receivable account disagrees with their documents: what is owed on each issued,
    unvoided invoice (its total less credit notes and credits applied from the wallet), less payments, plus
    refunds (a refund's credit note took it off the total, and the money went back)."""
    return await fetch(
        "with ledger as ("
        " select tenant_id, currency, sum(amount_minor) as balance from ledger_postings"
        " where account = 'receivable:tenant:' || tenant_id::text group by tenant_id, currency"
        "), documents as ("
        " select tenant_id, currency, sum(total_minor - credited_minor - credits_applied_minor) as owed from invoices"
        " where status in ('finalized', 'paid', 'uncollectible') group by tenant_id, currency"
        "), payments as ("
        " select tenant_id, currency, sum(amount_minor) as paid from payments where status = 'succeeded'"
        " group by tenant_id, currency"
        "), refunds as ("
        " select tenant_id, currency, sum(amount_minor) as refunded from refunds where status = 'succeeded'"
        " group by tenant_id, currency"
        ") select coalesce(l.tenant_id, d.tenant_id) as tenant_id, coalesce(l.currency, d.currency) as currency,"
        " coalesce(l.balance, 0) as ledger, coalesce(d.owed, 0) - coalesce(p.paid, 0) + coalesce(r.refunded, 0)"
        " as documents"
        " from ledger l full join documents d on d.tenant_id = l.tenant_id and d.currency = l.currency"
        " left join payments p on p.tenant_id = coalesce(l.tenant_id, d.tenant_id)"
        " and p.currency = coalesce(l.currency, d.currency)"
        " left join refunds r on r.tenant_id = coalesce(l.tenant_id, d.tenant_id)"
        " and r.currency = coalesce(l.currency, d.currency)"
        " where coalesce(l.balance, 0) <> coalesce(d.owed, 0) - coalesce(p.paid, 0) + coalesce(r.refunded, 0)"
    )


async def issued_without_journal() -> list[dict[str, Any]]:
    return await fetch(
        "select i.id, i.tenant_id from invoices i where i.status <> 'draft' and not exists ("
        " select 1 from ledger_journals j where j.source_type = 'invoice' and j.source_id = i.id)"
    )


async def counts() -> dict[str, int]:
    rows = await fetch(
        "select (select count(*) from ledger_journals) as journals, (select count(*) from ledger_postings) as postings"
    )
    return {key: int(value) for key, value in rows[0].items()}
