"""Subscription add-ons: another domain (the plugin registry) adds a charge to a tenant's subscription.

Every function here runs INSIDE the caller's `tenant_tx` (the registry's own transaction, so an install and
its charge commit together); none opens a transaction. Billing never imports the caller: it knows an add-on
only by the caller's `source_id` (e.g. a plugin install id). The rules of what is billed when are in
`billing.addons`.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from billing.addons import repository
from billing.addons.rules import (
    Addon,
    Boundary,
    addon_from_row,
    boundary_of,
    change_quantity,
    check_charge,
    check_moment,
    check_name,
    check_quantity,
    first_billable,
    fulls_of,
    lines_at,
    metered_window,
)
from billing.analytics import history as mrr_history
from billing.catalogue.rules import Charge, charge_to_json
from billing.errors import AddonNotFound, AddonSourceTaken, CurrencyMismatch, MetricNotFound, SubscriptionNotFound
from billing.invoices.service import write_invoice
from billing.periods import Period, midnight
from billing.rating import Line
from billing.subscriptions import repository as subscriptions_repository
from billing.subscriptions import state as _state
from billing.subscriptions.lifecycle import Subscription
from billing.usage import repository as usage_repository
from billing.usage.service import ensure_within_bounds
from tenants import audit


def validate_addon_charge(charge: dict[str, Any], currency: str) -> Charge:
    """Check an add-on's charge without a database (for input checks before an install): one charge in the
    catalogue's JSON form (`InvalidCharge`), in a supported currency (`UnknownCurrency`). Whether a metered
    charge's metric exists is checked when it is attached."""
    return check_charge(charge, currency)


async def attach_addon(
    *,
    tenant_id: uuid.UUID,
    source_id: uuid.UUID,
    name: str,
    charge: dict[str, Any],
    currency: str,
    quantity: int,
    billable_from: datetime,
) -> uuid.UUID:
    """Add a charge to the tenant's live subscription; its invoices carry it from `billable_from` on.

    Idempotent on `source_id`: attaching the same source again answers with the add-on already attached
    (whatever the other arguments). Raises `SubscriptionNotFound` without a live subscription,
    `CurrencyMismatch` when it bills in another currency, `InvalidCharge` / `InvalidAddon` /
    `MetricNotFound` for bad input, `AddonSourceTaken` when another tenant's add-on has this source id.

    A `billable_from` at or before the start of the subscription's current period (already invoiced in
    advance without the add-on) is billed from that start, in arrears at the period's end.
    """
    parsed = validate_addon_charge(charge, currency)
    check_name(name)
    check_quantity(quantity)
    check_moment(billable_from, "billable_from")
    existing = await repository.addon_by_source(tenant_id, source_id)
    if existing is not None:
        return uuid.UUID(str(existing["id"]))
    # Shared: the billing cycle locks the row to bill a boundary, so an add-on is attached either before
    # a boundary is billed (and billed there) or after (and its `billable_from` is moved past it).
    row = await subscriptions_repository.live_subscription(tenant_id, lock="share")
    if row is None:
        raise SubscriptionNotFound("the tenant has no live subscription to add a charge to")
    plan = (await _state.plans([row["plan_id"]]))[row["plan_id"]]
    if plan.currency != currency:
        raise CurrencyMismatch(f"the subscription bills in {plan.currency}; the add-on is priced in {currency}")
    if parsed.metric_code is not None and not await _state.metrics([parsed.metric_code]):
        raise MetricNotFound(f"no billable metric has the code {parsed.metric_code}")
    addon_id = uuid.uuid4()
    starts = first_billable(billable_from, row["current_period_start"])
    if parsed.metric_code is not None:
        # Usage of its metric was accepted against other charges' bounds (or none): what it would bill here must
        # fit one line. The metric's totals lock holds new events of it back until this commits.
        await usage_repository.lock_usage_totals(tenant_id, [parsed.metric_code])
        await ensure_within_bounds(tenant_id, [parsed], starts, f"add-on {name}")
    inserted = await repository.insert_addon(
        {
            "id": addon_id,
            "tenant_id": tenant_id,
            "subscription_id": row["id"],
            "source_id": source_id,
            "name": name,
            "charge": charge_to_json(parsed),
            "currency": currency,
            "quantity": quantity,
            "billable_from": starts,
        }
    )
    if inserted is None:  # attached meanwhile by a concurrent call, or the id is another tenant's
        existing = await repository.addon_by_source(tenant_id, source_id)
        if existing is None:
            raise AddonSourceTaken()
        return uuid.UUID(str(existing["id"]))
    # Billable later (a plugin's trial): its MRR is recorded at `starts` by the next record or catch-up.
    await mrr_history.record(tenant_id, "addon_changed", datetime.now(UTC))
    await audit.record(
        None,
        tenant_id,
        "subscription_addon.attached",
        "subscription",
        row["id"],
        after={
            "addon_id": str(addon_id),
            "source_id": str(source_id),
            "charge_kind": parsed.kind,
            "quantity": quantity,
            "billable_from": starts.isoformat(),
        },
    )
    return addon_id


async def set_addon_quantity(
    tenant_id: uuid.UUID, source_id: uuid.UUID, quantity: int, at: datetime | None = None
) -> uuid.UUID | None:
    """The add-on's quantity (the seats of a per-seat charge). An increase while the add-on is billable is
    billed at once (a `change` invoice, prorated to the end of the current period, for the seats beyond what
    the period has paid for); a decrease applies from the next boundary, without a credit. The invoice's id,
    or None when nothing was billed now."""
    check_quantity(quantity)
    at = at or datetime.now(UTC)
    check_moment(at, "at")
    before = await repository.addon_by_source(tenant_id, source_id)
    if before is None:
        raise AddonNotFound()
    if before["quantity"] == quantity:
        return None
    addon = addon_from_row(before)
    # Shared, as for an attach: a boundary is billed either before this change (with the old quantity, and
    # the increase prorated over the next period) or after it.
    row = await subscriptions_repository.live_subscription(tenant_id, lock="share")
    invoice_id = None
    if row is not None and row["id"] == before["subscription_id"]:
        sub = await _state.load(row)
        period = sub.current_period
        change = change_quantity(
            addon, quantity, at, period, fulls_of(period, sub), before["currency"], sub.plan.interval
        )
        if change.lines:
            invoice_id = await write_invoice(
                tenant_id=tenant_id,
                subscription_id=row["id"],
                kind="change",
                currency=before["currency"],
                period=Period(midnight(at), period.end),
                lines=change.lines,
                now=at,
                with_pending=False,
            )
        after = change.addon
    else:
        after = replace(addon, quantity=quantity, period_end=None, period_base_quantity=None, period_paid_quantity=None)
    await repository.set_quantity(
        tenant_id, source_id, quantity, after.period_end, after.period_base_quantity, after.period_paid_quantity
    )
    await mrr_history.record(tenant_id, "addon_changed", at)
    await audit.record(
        None,
        tenant_id,
        "subscription_addon.quantity_changed",
        "subscription",
        before["subscription_id"],
        before={"addon_id": str(before["id"]), "quantity": before["quantity"]},
        after={
            "addon_id": str(before["id"]),
            "quantity": quantity,
            "invoice_id": str(invoice_id) if invoice_id else None,
        },
    )
    return invoice_id


async def end_addon(tenant_id: uuid.UUID, source_id: uuid.UUID, at: datetime) -> None:
    """Stop billing the add-on at `at`. Idempotent: the first end stands. A period already billed in advance
    is not credited; usage is billed up to `at`."""
    check_moment(at, "at")
    before = await repository.addon_by_source(tenant_id, source_id)
    if before is None:
        raise AddonNotFound()
    if before["ended_at"] is not None:
        return
    ended = await repository.end_addon(tenant_id, source_id, at)
    await mrr_history.record(tenant_id, "addon_changed", at)
    await audit.record(
        None,
        tenant_id,
        "subscription_addon.ended",
        "subscription",
        before["subscription_id"],
        after={"addon_id": str(before["id"]), "ended_at": ended.isoformat() if ended else None},
    )


# -- for the billing cycle and the upcoming invoice -------------------------------------------------------


async def billable(tenant_id: uuid.UUID, subscription_id: uuid.UUID, since: datetime) -> list[Addon]:
    """The subscription's add-ons that may bill anything from `since` on (one indexed query)."""
    return [addon_from_row(row) for row in await repository.billable_addons(tenant_id, subscription_id, since)]


async def _usage(tenant_id: uuid.UUID, addons: Sequence[Addon], boundary: Boundary) -> dict[Any, Decimal]:
    """Each metered add-on's units in its window, aggregated as the plan's metrics are."""
    windows: dict[tuple[datetime, datetime], list[tuple[Any, str]]] = defaultdict(list)
    for addon in addons:
        window = metered_window(addon, boundary)
        if addon.charge.metric_code is not None and window is not None:
            windows[(window.start, window.end)].append((addon.id, addon.charge.metric_code))
    usage: dict[Any, Decimal] = {}
    if not windows:
        return usage
    found = await _state.metrics({code for group in windows.values() for _, code in group})
    for (start, end), group in windows.items():
        codes = sorted({code for _, code in group if code in found})
        measured = await usage_repository.aggregate_usage(tenant_id, [found[code] for code in codes], start, end)
        for addon_id, code in group:
            usage[addon_id] = measured.get(code, Decimal(0))
    return usage


async def boundary_lines(
    tenant_id: uuid.UUID, addons: Sequence[Addon], before: Subscription, after: Subscription
) -> list[Line]:
    """The add-ons' lines of the invoice for the boundary `lifecycle.cross_boundary` took `before` over.

    Metered add-ons are measured with the plan's own aggregation (one query per distinct usage window)."""
    if not addons:
        return []
    boundary = boundary_of(before, after)
    return lines_at(addons, boundary, await _usage(tenant_id, addons, boundary))
