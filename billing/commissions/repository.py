"""Queries of reseller commissions, in the caller's transaction."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime
from typing import Any

from controlplane.core.db import fetch

AGREEMENT_COLUMNS = (
    "reseller_id, currency, rate_bps, tiers, duration_months, pending_days, minimum_payout_minor, updated_at"
)
STATEMENT_COLUMNS = (
    "id, reseller_id, month, currency, carried_in_minor, total_minor, payable_minor, carried_out_minor, closed_at"
)
LINE_COLUMNS = (
    "id, reseller_id, event_id, closed_in, statement_id, kind, owned_tenant_id, invoice_id, invoice_number, "
    "currency, net_minor, rate_bps, commission_minor, accrued_at, payable_at"
)


def _agreement(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "tiers": json.loads(row["tiers"]) if isinstance(row["tiers"], str) else row["tiers"]}


async def put_agreement(values: dict[str, Any]) -> dict[str, Any]:
    rows = await fetch(
        "insert into reseller_agreements (reseller_id, currency, rate_bps, tiers, duration_months, pending_days, "
        "minimum_payout_minor) values ({}, {}, {}, {}::jsonb, {}, {}, {}) on conflict (reseller_id) do update set "
        "currency = excluded.currency, rate_bps = excluded.rate_bps, tiers = excluded.tiers, "
        "duration_months = excluded.duration_months, pending_days = excluded.pending_days, "
        "minimum_payout_minor = excluded.minimum_payout_minor, updated_at = clock_timestamp() "
        f"returning {AGREEMENT_COLUMNS}",
        values["reseller_id"],
        values["currency"],
        values["rate_bps"],
        json.dumps(values["tiers"]),
        values["duration_months"],
        values["pending_days"],
        values["minimum_payout_minor"],
    )
    return _agreement(rows[0])


async def get_agreement(reseller_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(f"select {AGREEMENT_COLUMNS} from reseller_agreements where reseller_id = {{}}", reseller_id)
    return _agreement(rows[0]) if rows else None


async def resellers_with_agreements() -> list[uuid.UUID]:
    return [row["reseller_id"] for row in await fetch("select reseller_id from reseller_agreements order by 1")]


async def reseller_may_earn(reseller_id: uuid.UUID) -> bool:
    """Qualified now, by the flags the qualification service keeps on the partner row."""
    rows = await fetch(
        "select qualified and (qualified_until is null or qualified_until > now()) as ok from partners where id = {}",
        reseller_id,
    )
    return bool(rows and rows[0]["ok"])


async def insert_event(values: dict[str, Any]) -> None:
    await fetch(
        "insert into commission_events (id, tenant_id, reseller_id, kind, source_id, invoice_id, invoice_number, "
        "currency, net_minor, owned_since, occurred_at) values ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
        "on conflict (kind, source_id) do nothing",
        uuid.uuid4(),
        values["tenant_id"],
        values["reseller_id"],
        values["kind"],
        values["source_id"],
        values["invoice_id"],
        values["invoice_number"],
        values["currency"],
        values["net_minor"],
        values["owned_since"],
        values["occurred_at"],
    )


async def paid_event(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        "select reseller_id, owned_since from commission_events where tenant_id = {} and kind = 'paid' "
        "and source_id = {}",
        tenant_id,
        invoice_id,
    )
    return rows[0] if rows else None


async def month_events(reseller_id: uuid.UUID, start: datetime, end: datetime) -> list[dict[str, Any]]:
    return await fetch(
        "select id, tenant_id, kind, source_id, invoice_id, invoice_number, currency, net_minor, owned_since, "
        "occurred_at from commission_events where reseller_id = {} and occurred_at >= {} and occurred_at < {} "
        "order by occurred_at, id",
        reseller_id,
        start,
        end,
    )


async def commissioned_invoices(reseller_id: uuid.UUID) -> list[dict[str, Any]]:
    """Per invoice that earned a line: its commission line and what clawbacks have taken back so far."""
    return await fetch(
        "select c.owned_tenant_id as tenant_id, c.invoice_id, c.invoice_number, c.net_minor, c.rate_bps, "
        "c.commission_minor, c.accrued_at, c.payable_at, "
        "coalesce(sum(-b.net_minor), 0) as refunded_minor, coalesce(sum(-b.commission_minor), 0) as clawed_back_minor "
        "from commission_lines c left join commission_lines b on b.invoice_id = c.invoice_id "
        "and b.reseller_id = c.reseller_id and b.kind = 'clawback' "
        "where c.reseller_id = {} and c.kind = 'commission' group by c.id",
        reseller_id,
    )


async def latest_statement(reseller_id: uuid.UUID, before: date) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {STATEMENT_COLUMNS} from reseller_statements where reseller_id = {{}} and month < {{}} "
        "order by month desc limit 1",
        reseller_id,
        before,
    )
    return rows[0] if rows else None


async def unclosed_months_before(reseller_id: uuid.UUID, month: date) -> list[date]:
    """Months before `month` that must close before it, in order: those after the reseller's latest statement
    before `month` (or, with none, from its earliest open failed close) that have events or an open failed
    close, and no statement. Months before the first close are not counted (nothing was closed then)."""
    rows = await fetch(
        "select m.month from ("
        "select distinct date_trunc('month', occurred_at at time zone 'UTC')::date as month "
        "from commission_events where reseller_id = {} and occurred_at < {} "
        "union select month from commission_close_issues where reseller_id = {} and kind = 'close_failed' "
        "and resolved_at is null) m "
        "where m.month < {} "
        "and not exists (select 1 from reseller_statements s where s.reseller_id = {} and s.month = m.month) "
        "and m.month >= coalesce("
        "(select max(s.month) + 1 from reseller_statements s where s.reseller_id = {} and s.month < {}), "
        "(select min(i.month) from commission_close_issues i where i.reseller_id = {} and i.kind = 'close_failed' "
        "and i.resolved_at is null and i.month < {}), {}) "
        "order by m.month",
        reseller_id,
        datetime(month.year, month.month, 1, tzinfo=UTC),
        reseller_id,
        month,
        reseller_id,
        reseller_id,
        month,
        reseller_id,
        month,
        month,
    )
    return [row["month"] for row in rows]


async def closed_after(reseller_id: uuid.UUID, month: date) -> date | None:
    """The reseller's first statement after `month`, if any."""
    rows = await fetch(
        "select min(month) as month from reseller_statements where reseller_id = {} and month > {}",
        reseller_id,
        month,
    )
    return rows[0]["month"] if rows else None


async def get_statement(reseller_id: uuid.UUID, month: date) -> dict[str, Any] | None:
    rows = await fetch(
        f"select {STATEMENT_COLUMNS} from reseller_statements where reseller_id = {{}} and month = {{}}",
        reseller_id,
        month,
    )
    return rows[0] if rows else None


async def list_statements(reseller_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {STATEMENT_COLUMNS} from reseller_statements where reseller_id = {{}} order by month desc",
        reseller_id,
    )


async def insert_statement(values: dict[str, Any]) -> dict[str, Any] | None:
    """None when this month is closed already."""
    rows = await fetch(
        "insert into reseller_statements (id, reseller_id, month, currency, carried_in_minor, total_minor, "
        "payable_minor, carried_out_minor) values ({}, {}, {}, {}, {}, {}, {}, {}) "
        f"on conflict (reseller_id, month) do nothing returning {STATEMENT_COLUMNS}",
        values["id"],
        values["reseller_id"],
        values["month"],
        values["currency"],
        values["carried_in_minor"],
        values["total_minor"],
        values["payable_minor"],
        values["carried_out_minor"],
    )
    return rows[0] if rows else None


async def pending_lines(reseller_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {LINE_COLUMNS} from commission_lines where reseller_id = {{}} and statement_id is null "
        "order by accrued_at, id",
        reseller_id,
    )


async def insert_line(values: dict[str, Any]) -> None:
    await fetch(
        f"insert into commission_lines ({LINE_COLUMNS}) values "
        "({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {})",
        *(values[name] for name in LINE_COLUMNS.split(", ")),
    )


async def mark_due(line_ids: list[uuid.UUID], statement_id: uuid.UUID) -> None:
    await fetch("update commission_lines set statement_id = {} where id = any({}::uuid[])", statement_id, line_ids)


async def statement_lines(statement_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {LINE_COLUMNS} from commission_lines where statement_id = {{}} order by accrued_at, id",
        statement_id,
    )


PAYOUT_COLUMNS = (
    "id, partner_id, source, statement_id, payable_account, up_to_posting_id, amount_minor, currency, destination, "
    "status, attempts, stripe_transfer_id, last_error, created_at, updated_at"
)


async def payout_account(partner_id: uuid.UUID) -> str | None:
    rows = await fetch("select stripe_account_id from partners where id = {}", partner_id)
    return rows[0]["stripe_account_id"] if rows else None


async def insert_payout(values: dict[str, Any]) -> None:
    await fetch(
        "insert into partner_payouts (id, partner_id, source, statement_id, payable_account, up_to_posting_id, "
        "amount_minor, currency, destination, status, last_error) values ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}) "
        "on conflict do nothing",
        uuid.uuid4(),
        values["partner_id"],
        values["source"],
        values.get("statement_id"),
        values["payable_account"],
        values.get("up_to_posting_id"),
        values["amount_minor"],
        values["currency"],
        values["destination"],
        values["status"],
        values["last_error"],
    )


async def payee_balances() -> list[dict[str, Any]]:
    """Across partners (system context): each partner payee's payable balance from escrow releases, less
    what payouts not yet booked will take, with the newest posting it includes."""
    return await fetch(
        "select p.account, p.currency, -sum(p.amount_minor) - coalesce(("
        "  select sum(o.amount_minor) from partner_payouts o where o.payable_account = p.account "
        "  and o.currency = p.currency and o.status <> 'paid'), 0) as owed, max(p.id) as up_to "
        "from ledger_postings p where p.account like 'payee_payable:reseller:%' "
        "or p.account like 'payee_payable:publisher:%' group by p.account, p.currency"
    )


async def due_payouts(max_attempts: int, retry_hours: list[int], now: datetime, limit: int) -> list[dict[str, Any]]:
    """Across partners (system context): payouts to send, then failed ones whose back-off has passed (after
    attempt n, `retry_hours[n - 1]` hours), fresh work first."""
    return await fetch(
        f"select {PAYOUT_COLUMNS} from partner_payouts where status in ('pending', 'failed') and attempts < {{}} "
        "and (status = 'pending' or updated_at + make_interval(hours => coalesce(({}::int[])[attempts], 24)) <= {}) "
        "order by attempts, updated_at limit {}",
        max_attempts,
        retry_hours,
        now,
        limit,
    )


async def partner_kind(partner_id: uuid.UUID) -> str | None:
    rows = await fetch("select kind from partners where id = {}", partner_id)
    return rows[0]["kind"] if rows else None


async def claim_payout(payout_id: uuid.UUID, max_attempts: int) -> dict[str, Any] | None:
    """Count an attempt before Stripe is called; None when it was paid or used up meanwhile."""
    rows = await fetch(
        "update partner_payouts set attempts = attempts + 1, updated_at = clock_timestamp() "
        "where id = {} and status in ('pending', 'failed') and attempts < {} "
        f"returning {PAYOUT_COLUMNS}",
        payout_id,
        max_attempts,
    )
    return rows[0] if rows else None


async def release_payout_claim(payout_id: uuid.UUID) -> None:
    """Give back the attempt `claim_payout` counted, when Stripe could not be reached at all."""
    await fetch(
        "update partner_payouts set attempts = attempts - 1, updated_at = clock_timestamp() "
        "where id = {} and attempts > 0 and status in ('pending', 'failed')",
        payout_id,
    )


async def settle_payout(payout_id: uuid.UUID, status: str, transfer_id: str | None, error: str | None) -> None:
    await fetch(
        "update partner_payouts set status = {}, stripe_transfer_id = coalesce({}, stripe_transfer_id), "
        "last_error = {}, updated_at = clock_timestamp() where id = {}",
        status,
        transfer_id,
        error,
        payout_id,
    )


async def list_payouts(partner_id: uuid.UUID) -> list[dict[str, Any]]:
    return await fetch(
        f"select {PAYOUT_COLUMNS} from partner_payouts where partner_id = {{}} order by created_at desc",
        partner_id,
    )


ISSUE_COLUMNS = (
    "id, reseller_id, month, kind, event_id, invoice_id, invoice_number, currency, net_minor, reason, detail, "
    "attempts, resolved_at, created_at, updated_at"
)


async def insert_skipped_event(values: dict[str, Any]) -> None:
    """An event the month close skipped, with why; once per event."""
    await fetch(
        "insert into commission_close_issues (id, reseller_id, month, kind, event_id, invoice_id, invoice_number, "
        "currency, net_minor, reason, detail) values ({}, {}, {}, 'skipped_event', {}, {}, {}, {}, {}, {}, {}) "
        "on conflict (event_id) do nothing",
        uuid.uuid4(),
        values["reseller_id"],
        values["month"],
        values["event_id"],
        values["invoice_id"],
        values["invoice_number"],
        values["currency"],
        values["net_minor"],
        values["reason"],
        values["detail"][:500],
    )


async def skipped_events(reseller_id: uuid.UUID, month: date) -> list[dict[str, Any]]:
    return await fetch(
        f"select {ISSUE_COLUMNS} from commission_close_issues where reseller_id = {{}} and month = {{}} "
        "and kind = 'skipped_event' order by created_at, id",
        reseller_id,
        month,
    )


async def record_close_failure(reseller_id: uuid.UUID, month: date, reason: str, detail: str) -> None:
    """The reseller's close for `month` failed: one record, its attempts counted, open until a close succeeds."""
    await fetch(
        "insert into commission_close_issues (id, reseller_id, month, kind, reason, detail) "
        "values ({}, {}, {}, 'close_failed', {}, {}) on conflict (reseller_id, month) where kind = 'close_failed' "
        "do update set attempts = commission_close_issues.attempts + 1, reason = excluded.reason, "
        "detail = excluded.detail, resolved_at = null, updated_at = clock_timestamp()",
        uuid.uuid4(),
        reseller_id,
        month,
        reason[:80],
        detail[:500],
    )


async def resolve_close_failure(reseller_id: uuid.UUID, month: date) -> None:
    await fetch(
        "update commission_close_issues set resolved_at = clock_timestamp(), updated_at = clock_timestamp() "
        "where reseller_id = {} and month = {} and kind = 'close_failed' and resolved_at is null",
        reseller_id,
        month,
    )
