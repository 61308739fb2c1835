"""Billing's notification events, queued inside the transaction of the change they tell about, and the scans of
what is about to happen (trials ending, cards expiring).

Every event names its occurrence by a key (an invoice id, a payment attempt id, a subscription and a moment, a
card and its expiry month), so a repeated call, a retried task or a second scan queues nothing more
(`tenants.notifications.notify`). A tenant being erased is told nothing: its people are gone, and so is its
webhook endpoint. A suspended tenant is still told (its invoices and failed payments are how it comes back).
Amounts go out in minor units and as display strings (`billing.money.display`), dates as ISO 8601 UTC.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing.disputes import repository as disputes_repository
from billing.documents.layout import format_period
from billing.invoices import repository as invoices_repository
from billing.money import display
from billing.notices import repository
from billing.notices.rules import ended, expiring_month, subscription_changes, trial_notice_window
from billing.payments.dunning import next_retry_at
from billing.subscriptions import repository as subscriptions_repository
from billing.wallets.application import CREDIT_PURCHASE
from controlplane.core import metrics
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from tenants.notifications import notify
from tenants.service import tenant_terms
from tenants.status import TenantStatus

log = logging.getLogger("controlplane.billing")
TRIALS_JOB = "notify_trials_ending"
CARDS_JOB = "notify_expiring_cards"


def iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


async def _told(tenant_id: uuid.UUID) -> bool:
    """Inside the caller's transaction: whether the tenant is told anything (not while it is being erased)."""
    terms = await tenant_terms(tenant_id)
    return terms is not None and terms.status != TenantStatus.PENDING_DELETION


async def _tell(event: str, key: str, data: Mapping[str, Any], tenant_id: uuid.UUID, **extra: Any) -> None:
    if await _told(tenant_id):
        await notify(event, key, data, tenant_id=tenant_id, **extra)


def _amount(name: str, minor: int, currency: str) -> dict[str, Any]:
    return {f"{name}_minor": minor, name: display(minor, currency)}


# -- invoices and payments -------------------------------------------------------------------------------


async def invoice_finalized(invoice: Mapping[str, Any]) -> None:
    """Inside the finalizing transaction: `invoice` (its row, as finalized: numbered, credits applied)."""
    currency = invoice["currency"]
    data = {
        "invoice_id": str(invoice["id"]),
        "number": invoice["number"],
        "kind": invoice["kind"],
        "currency": currency,
        **_amount("total", invoice["total_minor"], currency),
        **_amount("amount_due", invoice["amount_due_minor"], currency),
        # Invoices are collected from the default card when finalized; none carries a due date of its own.
        "due_at": None,
        "period_start": iso(invoice["period_start"]),
        "period_end": iso(invoice["period_end"]),  # exclusive: the period's first moment after it
        # As the invoice's PDF shows it (its last day inclusive): `2026-11-01 to 2026-11-30`.
        "period": format_period(invoice["period_start"], invoice["period_end"]),
    }
    await _tell("invoice.finalized", str(invoice["id"]), data, invoice["tenant_id"], attachment_id=invoice["id"])


async def invoice_paid(invoice: Mapping[str, Any], paid_at: datetime) -> None:
    """Inside the transaction in which `invoice` turned paid (by card, by Stripe's webhook or by the wallet's
    credits). What was paid is what it asked for: its total less its credit notes (by card and credits)."""
    currency = invoice["currency"]
    paid = max(invoice["total_minor"] - invoice["credited_minor"], 0)
    data = {
        "invoice_id": str(invoice["id"]),
        "number": invoice["number"],
        "currency": currency,
        **_amount("amount_paid", paid, currency),
        "paid_at": iso(paid_at),
    }
    await _tell("invoice.paid", str(invoice["id"]), data, invoice["tenant_id"])


async def dispute_changed(tenant_id: uuid.UUID, dispute_id: uuid.UUID, status: str) -> None:
    """A `billing.hooks.dispute_changed` callback, inside the webhook's transaction: the tenant is told that a
    payment was disputed (`invoice.disputed`) and how it ended (`invoice.dispute_closed`). A dispute whose
    `closed` event came first is told both at once: it was disputed, and it is decided."""
    dispute = await disputes_repository.dispute(dispute_id)
    invoice = await invoices_repository.get_invoice(dispute["invoice_id"]) if dispute else None
    if dispute is None or invoice is None:
        return
    currency = dispute["currency"].strip()
    data = {
        "invoice_id": str(invoice["id"]),
        "number": invoice["number"],
        "dispute_id": str(dispute_id),
        "currency": currency,
        **_amount("amount", dispute["amount_minor"], currency),
        "reason": dispute["reason"],
    }
    await _tell("invoice.disputed", str(dispute_id), data, tenant_id)
    if status != "open":
        await _tell("invoice.dispute_closed", str(dispute_id), {**data, "status": status}, tenant_id)


async def payment_failed(
    invoice: Mapping[str, Any], payment: Mapping[str, Any], now: datetime, schedule: Sequence[int]
) -> None:
    """Inside the transaction that recorded `payment` (an attempt) as failed. The next retry is the dunning
    schedule's; none for an invoice given up already, or a credit purchase (never dunned: its top-up is
    declined)."""
    currency = invoice["currency"]
    retry_at = None
    if invoice["kind"] != CREDIT_PURCHASE and invoice["status"] == "finalized":
        first_failure, last_step = await repository.dunning_position(invoice["id"])
        retry_at = next_retry_at(first_failure, last_step, now, schedule)
    data = {
        "invoice_id": str(invoice["id"]),
        "number": invoice["number"],
        "currency": currency,
        **_amount("amount_due", payment["amount_minor"], currency),
        "decline_code": payment["decline_code"],
        "attempt": payment["attempt"],
        "next_retry_at": iso(retry_at),
    }
    await _tell("invoice.payment_failed", str(payment["id"]), data, invoice["tenant_id"])


# -- subscriptions ---------------------------------------------------------------------------------------


async def subscription_written(
    tenant_id: uuid.UUID, before: Mapping[str, Any], after: Mapping[str, Any], at: datetime
) -> None:
    """Inside the transaction that wrote the subscription from `before` to `after` (its rows) at `at`:
    `subscription.updated` naming what changed, or `subscription.canceled` when it ended (a cancel now, or a
    cancel at the period's end when the cycle crosses that end; scheduling it is an update)."""
    subscription_id = str(after["id"])
    if ended(before, after):
        canceled_at = after["canceled_at"] or at
        data = {
            "subscription_id": subscription_id,
            "plan_code": after["plan_code"],
            "canceled_at": iso(canceled_at),
            # Service ends with the cancellation (an at-period-end cancellation is told when the period ends).
            "ends_at": iso(canceled_at),
        }
        await _tell("subscription.canceled", subscription_id, data, tenant_id)
        return
    changes = subscription_changes(before, after)
    if not changes:
        return
    data = {
        "subscription_id": subscription_id,
        "plan_code": after["plan_code"],
        "status": after["status"],
        "seats": after["seats"],
        "change": changes[0],
        "changes": list(changes),
        "cancel_at_period_end": after["cancel_at_period_end"],
        "current_period_end": iso(after["current_period_end"]),
        "pending_plan_code": after["pending_plan_code"],
        "pending_seats": after["pending_seats"],
    }
    await _tell("subscription.updated", f"{subscription_id}:{changes[0]}:{iso(at)}", data, tenant_id)


# -- the scans -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanReport:
    """What a scan found, how many notices it newly queued, and how many items failed (retried next run)."""

    found: int = 0
    told: int = 0
    failed: int = 0


# A scan reads its candidates a page at a time (keyset, never an offset), each page in a system transaction of its
# own, and goes on until a page comes back short: however many there are, one run reaches every one.
SCAN_PAGE = 1000


async def _scan(
    job: str,
    page: Callable[[dict[str, Any] | None], Awaitable[list[dict[str, Any]]]],
    page_size: int,
    tell: Callable[[dict[str, Any]], Awaitable[bool]],
) -> ScanReport:
    """Every candidate `page` finds (given the last item of the previous page), each in its own tenant's
    transaction; one that fails is counted and logged, and the scan goes on (an outage stops it: the next run
    finds the items again, and their keys make them told once)."""
    found = told = failed = 0
    last: dict[str, Any] | None = None
    while True:
        async with system_tx(SystemReason.PLATFORM_JOB):
            items = await page(last)
        for item in items:
            try:
                async with tenant_tx(item["tenant_id"]):
                    told += await tell(item)
            except Exception as error:
                metrics.stop_batch_on_outage(job, error)
                metrics.batch_item_failed(job, error)
                failed += 1
        found += len(items)
        if len(items) < page_size:
            return ScanReport(found, told, failed)
        last = items[-1]


async def notify_trials_ending(now: datetime | None = None, *, page_size: int = SCAN_PAGE) -> ScanReport:
    """`subscription.trial_will_end` for every trial ending within the next 3 days, once per trial end: a trial
    that ends later after all (staff extended it) is told again for its new end."""
    now = now or datetime.now(UTC)
    after, until = trial_notice_window(now)

    async def page(last: dict[str, Any] | None) -> list[dict[str, Any]]:
        since = None if last is None else (last["current_period_end"], last["id"])
        return await repository.trials_ending(after, until, since, page_size)

    async def tell(item: dict[str, Any]) -> bool:
        row = await subscriptions_repository.get_subscription(item["id"])
        # Re-read in the tenant's context: it may have converted or been canceled since the scan found it.
        if row is None or row["status"] != "trialing" or not after < row["current_period_end"] <= until:
            return False
        trial_end = row["trial_end"] or row["current_period_end"]
        data = {
            "subscription_id": str(row["id"]),
            "plan_code": row["plan_code"],
            "trial_end": iso(trial_end),
            "cancel_at_period_end": row["cancel_at_period_end"],
        }
        if not await _told(item["tenant_id"]):
            return False
        key = f"{row['id']}:{trial_end.isoformat()}"
        return bool(await notify("subscription.trial_will_end", key, data, tenant_id=item["tenant_id"]))

    return await _scan(TRIALS_JOB, page, page_size, tell)


async def notify_expiring_cards(now: datetime | None = None, *, page_size: int = SCAN_PAGE) -> ScanReport:
    """`payment_method.expiring` for every default card (the one collections charge; the others charge
    nothing) whose last valid month is the calendar month after `now`'s, once per card and expiry month."""
    now = now or datetime.now(UTC)
    year, month = expiring_month(now.astimezone(UTC))

    async def page(last: dict[str, Any] | None) -> list[dict[str, Any]]:
        return await repository.expiring_default_cards(year, month, None if last is None else last["id"], page_size)

    async def tell(item: dict[str, Any]) -> bool:
        card = await repository.card(item["id"])
        if card is None or not card["is_default"] or (card["exp_year"], card["exp_month"]) != (year, month):
            return False
        if not await _told(item["tenant_id"]):
            return False
        data = {
            "payment_method_id": str(card["id"]),
            "brand": card["brand"],
            "last4": card["last4"],
            "exp_month": card["exp_month"],
            "exp_year": card["exp_year"],
        }
        key = f"{card['id']}:{card['exp_year']}-{card['exp_month']:02d}"
        return bool(await notify("payment_method.expiring", key, data, tenant_id=item["tenant_id"]))

    return await _scan(CARDS_JOB, page, page_size, tell)


# -- resellers -------------------------------------------------------------------------------------------


async def statement_ready(statement: Mapping[str, Any]) -> None:
    """Inside the month close's transaction: the reseller's new statement (its row)."""
    currency = statement["currency"]
    data = {
        "statement_id": str(statement["id"]),
        "month": f"{statement['month']:%Y-%m}",
        "currency": currency,
        **_amount("total", statement["total_minor"], currency),
        **_amount("payable", statement["payable_minor"], currency),
    }
    await notify("reseller.statement_ready", str(statement["id"]), data, partner_id=statement["reseller_id"])
