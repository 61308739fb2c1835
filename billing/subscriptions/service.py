"""Subscriptions: start, read, change plan or seats, cancel, resume."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypedDict

from billing.access import tenant_of
from billing.analytics import history as mrr_history
from billing.catalogue import repository as catalogue_repository
from billing.catalogue.rules import Plan
from billing.discounts import rules as discount_rules
from billing.discounts import service as discounts
from billing.errors import (
    CurrencyMismatch,
    InvalidStart,
    PastStartForbidden,
    PlanNotFound,
    RenewalNotBilled,
    SubscriptionExists,
    SubscriptionNotFound,
)
from billing.invoices import adjustments_repository as invoices_adjustments_repository
from billing.invoices import repository as invoices_repository
from billing.invoices.cycle import boundary_due, catch_up
from billing.invoices.service import (
    InvoiceDraft,
    InvoiceLineView,
    InvoiceView,
    add_credit_note,
    finalize,
    line_view,
    money_in_flight,
    preview_of,
    refuse_while_money_in_flight,
    settle_if_paid_by_credits,
    write_invoice,
)
from billing.invoices.totals import amount_due, tax_of
from billing.money import exponent
from billing.notices import service as notices
from billing.payments.stripe_amounts import cash_rounding, chargeable_step, payable_in_steps
from billing.periods import Anchor, midnight
from billing.subscriptions import lifecycle, repository
from billing.subscriptions import state as _state
from billing.subscriptions.states import Status
from billing.subscriptions.trials import claim_trial
from billing.usage.service import ensure_within_bounds
from billing.wallets.application import credits_for
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import audit
from tenants.roles import Permission
from tenants.service import tenant_terms

# How far ahead a client's clock may be: a start "now" from a slightly fast clock is still now.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class NewSubscription:
    """What a subscription starts with: a plan (its latest version), seats, and when (None: now)."""

    plan_code: str
    seats: int = 1
    start_at: datetime | None = None
    billing_anchor: Anchor = "calendar"


class SubscriptionChanges(TypedDict, total=False):
    """A change of plan and/or seats: only the keys sent."""

    plan_code: str
    seats: int


@dataclass(frozen=True, slots=True)
class SubscriptionView:
    """A subscription as it stands: its plan version, period, pending change and billing failure, if any."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    plan_id: uuid.UUID
    plan_code: str
    plan_version: int
    seats: int
    status: str
    billing_anchor: str
    anchor_date: date
    started_at: datetime
    trial_end: datetime | None
    current_period_start: datetime
    current_period_end: datetime
    usage_from: datetime
    cancel_at_period_end: bool
    canceled_at: datetime | None
    pending_plan_id: uuid.UUID | None
    pending_plan_code: str | None
    pending_seats: int | None
    created_at: datetime
    updated_at: datetime
    billing_error: str | None
    billing_error_at: datetime | None
    billing_attempts: int
    billing_retry_at: datetime | None


def subscription_view(row: dict[str, Any]) -> SubscriptionView:
    return view_of(SubscriptionView, row)


def summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": row["status"],
        "plan_code": row["plan_code"],
        "plan_version": row["plan_version"],
        "seats": row["seats"],
    }


async def _plan_for(code: str) -> Plan:
    row = await catalogue_repository.latest_plan(code)
    if row is None:
        raise PlanNotFound(f"no plan has the code {code!r}")
    return _state.plan_of(row)


async def create_subscription(actor: Principal, tenant_id: uuid.UUID, new: NewSubscription) -> SubscriptionView:
    now = datetime.now(UTC)
    start_at = new.start_at or now
    if start_at.tzinfo is None:
        raise InvalidStart("start_at must carry a timezone")
    if start_at > now + CLOCK_SKEW:
        raise InvalidStart("start_at may not be in the future")
    if midnight(start_at) < midnight(now) and not actor.is_staff:
        raise PastStartForbidden()
    async with tenant_tx(tenant_id):
        # Share-locked: a concurrent change of the tenant's currency (which checks for a live subscription
        # under its update lock) waits for this one, or this one sees the new currency.
        tenant = await tenant_terms(tenant_id, lock="share")
        assert tenant is not None  # the guard checked it
        plan = await _plan_for(new.plan_code)
        if plan.currency != tenant.currency:
            raise CurrencyMismatch(f"the tenant is billed in {tenant.currency}; plan {plan.code} is in {plan.currency}")
        subscription_id = uuid.uuid4()
        # A plan's trial is given once per tenant and plan code (whatever the version), unless staff granted another.
        trial = plan.trial_days > 0 and await claim_trial(tenant_id, "plan", plan.code, subscription_id)
        sub = lifecycle.start(plan, new.seats, start_at, new.billing_anchor, trial=trial)
        inserted = await repository.insert_subscription(
            {
                "id": subscription_id,
                "tenant_id": tenant_id,
                "plan_id": plan.id,
                "seats": sub.seats,
                "status": sub.status.value,
                "billing_anchor": sub.anchor,
                "anchor_date": sub.anchor_date,
                "started_at": sub.current_period.start,
                "trial_end": sub.trial_end,
                "current_period_start": sub.current_period.start,
                "current_period_end": sub.current_period.end,
                "usage_from": sub.usage_from,
            }
        )
        if not inserted:
            raise SubscriptionExists()
        # From the start of its first period (staff importing one that started earlier: from then).
        imported = midnight(start_at) < midnight(now)
        cause = "trial_started" if trial else "import" if imported else "subscription_created"
        await mrr_history.record(tenant_id, cause, sub.current_period.start)
        await audit.record(
            actor,
            tenant_id,
            "subscription.created",
            "subscription",
            subscription_id,
            after={"plan_code": plan.code, "seats": sub.seats, "status": sub.status.value},
        )
        if sub.status != Status.TRIALING:
            # Without a trial the first period is billed at once (from the start, prorated if partial).
            await catch_up(tenant_id, subscription_id, now, limit=1)
        return subscription_view(await _read(subscription_id))


async def _read(subscription_id: uuid.UUID) -> dict[str, Any]:
    row = await repository.get_subscription(subscription_id)
    if row is None:
        raise SubscriptionNotFound()
    return row


async def list_subscriptions(tenant_id: uuid.UUID, page: PageRequest) -> Page[SubscriptionView]:
    async with tenant_tx(tenant_id):
        rows = await repository.list_subscriptions(tenant_id, page)
    return page_of_views(rows, page, subscription_view)


async def get_subscription(actor: Principal, subscription_id: uuid.UUID) -> SubscriptionView:
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.READ_BILLING, "GET")
    async with tenant_tx(tenant_id):
        return subscription_view(await _read(subscription_id))


async def _locked(subscription_id: uuid.UUID) -> dict[str, Any]:
    row = await repository.get_subscription(subscription_id, lock="update")
    if row is None:
        raise SubscriptionNotFound()
    return row


@dataclass(frozen=True, slots=True)
class _PlannedChange:
    """A change of plan and/or seats as the rules decide it on what is stored (`_planned`)."""

    sub: lifecycle.Subscription  # as it is
    plan: Plan  # the plan asked for (the current one when only seats change)
    result: lifecycle.Change  # its lines (if any) at the billed share of the period

    @property
    def billed_now(self) -> bool:
        """An upgrade (or a plan change ending a trial) is billed at once on an invoice of its own; a
        downgrade's lines wait for the next invoice."""
        return bool(self.result.lines) and self.result.direction in ("upgrade", "trial_ended")

    def invoice(self, tenant_id: uuid.UUID, subscription_id: uuid.UUID) -> InvoiceDraft:
        """The change's invoice, which the change writes and its preview composes."""
        return InvoiceDraft(
            tenant_id=tenant_id,
            subscription_id=subscription_id,
            kind="change",
            currency=self.plan.currency,
            plan_code=self.plan.code,
            period=self.result.subscription.current_period,
            lines=self.result.lines,
            with_pending=False,
        )


async def _planned(
    tenant_id: uuid.UUID, row: dict[str, Any], changes: SubscriptionChanges, now: datetime
) -> _PlannedChange:
    """Inside the caller's tenant transaction, the boundaries up to `now` billed: what the change of the
    subscription `row` does at `now`, and the checks it must pass. It reads and writes nothing:
    `change_subscription` writes what it decides, `preview_change` shows it."""
    sub = await _state.load(row)
    plan_code = changes.get("plan_code")
    plan = await _plan_for(plan_code) if plan_code else sub.plan
    seats = changes.get("seats") or sub.seats
    usage = (
        await _state.usage_for(tenant_id, sub.plan, sub.usage_from, now, period_start=sub.current_period.start)
        if plan.id != sub.plan.id
        else {}
    )
    result = lifecycle.change(sub, plan, seats, now, usage)
    if result.lines:
        # The old plan's unused time is credited at what was billed for it (its discounts taken off).
        share = await discounts.billed_share(row["id"], sub.current_period.end)
        result = replace(result, lines=discount_rules.at_billed_share(result.lines, share))
    if result.subscription.plan.id != sub.plan.id:
        changed_to = result.subscription.plan
        await ensure_within_bounds(
            tenant_id, changed_to.charges, result.subscription.usage_from, f"plan {changed_to.code}"
        )
    pending = result.subscription.pending_plan
    if pending is not None and pending.id not in (sub.plan.id, sub.pending_plan.id if sub.pending_plan else None):
        # A scheduled plan rates usage already stored (events stamped past its boundary within the clock
        # skew); ingestion bounds the window by it only from now on.
        await ensure_within_bounds(tenant_id, pending.charges, result.subscription.usage_from, f"plan {pending.code}")
    return _PlannedChange(sub, plan, result)


async def change_subscription(
    actor: Principal, subscription_id: uuid.UUID, changes: SubscriptionChanges
) -> SubscriptionView:
    """Change plan and/or seats. Repeating the same change answers with the subscription as it is."""
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.MANAGE_BILLING, "POST")
    now = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        # Boundaries already passed are billed first, so the change prorates the period it falls in.
        await catch_up(tenant_id, subscription_id, now)
        before = await _locked(subscription_id)
        planned = await _planned(tenant_id, before, changes, now)
        result = planned.result
        invoice_id = None
        if planned.billed_now:
            invoice_id = await planned.invoice(tenant_id, subscription_id).write(now=now, settle=False)
        elif result.lines:
            # A downgrade's credit (and the new price's charge) wait for the next invoice.
            await invoices_adjustments_repository.insert_pending_items(tenant_id, subscription_id, result.lines)
        await repository.update_subscription(subscription_id, _state.columns(result.subscription))
        written = await _read(subscription_id)
        await notices.subscription_written(tenant_id, before, written, now)
        await mrr_history.subscription_written(tenant_id, before, written, now)
        # Paid by the wallet's credits: settled on the changed subscription (its status, its period).
        await settle_if_paid_by_credits(tenant_id, invoice_id)
        after = await _read(subscription_id)
        await audit.record(
            actor,
            tenant_id,
            "subscription.changed",
            "subscription",
            subscription_id,
            before=summary(before),
            after=summary(after)
            | {
                "direction": result.direction,
                "timing": result.timing,
                "pending_plan_code": after["pending_plan_code"],
                "pending_seats": after["pending_seats"],
            },
        )
        return subscription_view(after)


@dataclass(frozen=True, slots=True)
class ChangePreview:
    """What `change_subscription` would do with the same changes at `computed_at`, nothing written.

    `invoice`: the change invoice it would write at once (an upgrade, or a plan change that ends a trial), its
    figures from the code that writes it (status "preview"); None when nothing is billed at once. An immediate
    downgrade bills nothing now: its proration (the old price's credit, the new price's charge) joins the next
    invoice, `next_invoice_lines` summing to `next_invoice_minor` (before that invoice's discounts and tax).
    A change for the next period (`timing` "next_period") bills nothing now either: `pending_plan_code` and
    `pending_seats` take over at `current_period_end`. Prices prorate by whole UTC days, so the figures hold
    through the day of `computed_at`; usage of the old plan is billed to the moment of the change.
    """

    subscription_id: uuid.UUID
    computed_at: datetime
    currency: str
    direction: str  # "upgrade" | "downgrade" | "none" | "trial_ended"
    timing: str  # "immediate" | "next_period"
    plan_code: str  # the subscription after the change
    plan_version: int
    seats: int
    status: str
    pending_plan_code: str | None
    pending_seats: int | None
    current_period_start: datetime
    current_period_end: datetime
    invoice: InvoiceView | None
    next_invoice_lines: tuple[InvoiceLineView, ...]
    next_invoice_minor: int


async def preview_change(
    actor: Principal, subscription_id: uuid.UUID, changes: SubscriptionChanges, now: datetime | None = None
) -> ChangePreview:
    """What `change_subscription(actor, subscription_id, changes)` would bill now, computed by the same code
    (`_planned`, `compose_invoice`) and nothing written. A subscription whose period has ended and is not
    billed yet is refused (`RenewalNotBilled`): the change would bill that renewal first."""
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.READ_BILLING, "GET")
    now = now or datetime.now(UTC)
    async with tenant_tx(tenant_id):
        row = await _read(subscription_id)
        if boundary_due(row, now):
            raise RenewalNotBilled(
                f"the period ended at {row['current_period_end'].isoformat()} and the billing cycle bills it "
                "within the hour; preview the change again then"
            )
        planned = await _planned(tenant_id, row, changes, now)
        invoice = None
        if planned.billed_now:
            draft = planned.invoice(tenant_id, subscription_id)
            composed = await draft.compose()
            due = amount_due(composed.figures.total_minor, 0)
            credits = await credits_for(tenant_id, draft.currency, due, now)
            invoice = preview_of(composed, draft, credits_applied_minor=credits)
    after = planned.result.subscription
    later = () if planned.billed_now else tuple(line_view(line) for line in planned.result.lines)
    return ChangePreview(
        subscription_id=subscription_id,
        computed_at=now,
        currency=after.plan.currency,
        direction=planned.result.direction,
        timing=planned.result.timing,
        plan_code=after.plan.code,
        plan_version=after.plan.version,
        seats=after.seats,
        status=after.status.value,
        pending_plan_code=after.pending_plan.code if after.pending_plan else None,
        pending_seats=after.pending_seats,
        current_period_start=after.current_period.start,
        current_period_end=after.current_period.end,
        invoice=invoice,
        next_invoice_lines=later,
        next_invoice_minor=sum((line.amount_minor for line in later), 0),
    )


async def cancel_subscription(actor: Principal, subscription_id: uuid.UUID, at_period_end: bool) -> SubscriptionView:
    """At the period's end (usage billed then), or now: unused advance charges are credited on the
    invoice that billed them, and usage so far is billed at once. Cancelling again answers as it is."""
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.MANAGE_BILLING, "POST")
    async with tenant_tx(tenant_id):
        after = await cancel_in_tx(
            actor, tenant_id, subscription_id, at_period_end, datetime.now(UTC), refuse_money_in_flight=True
        )
    return subscription_view(after)


async def cancel_in_tx(
    actor: Principal | None,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    at_period_end: bool,
    now: datetime,
    *,
    refuse_money_in_flight: bool = False,
) -> dict[str, Any]:
    """`cancel_subscription` inside the caller's tenant transaction (the tenant's erasure cancels with it).

    A cancel now credits the invoices that billed the period. With `refuse_money_in_flight` (a cancel asked
    for through the API), one of them with a payment or refund waiting for Stripe's answer refuses the whole
    cancel (`PaymentInFlight`, nothing written). Without it (the erasure, which must not be blocked), such an
    invoice is left uncredited (`_credit_unused`)."""
    await catch_up(tenant_id, subscription_id, now)
    before = await _locked(subscription_id)
    if before["status"] == Status.CANCELED or (at_period_end and before["cancel_at_period_end"]):
        return before
    sub = await _state.load(before)
    if at_period_end:
        ended = lifecycle.schedule_cancel(sub)
        await repository.update_subscription(subscription_id, _state.columns(ended))
    else:
        usage = await _state.usage_for(tenant_id, sub.plan, sub.usage_from, now, period_start=sub.current_period.start)
        cancellation = lifecycle.cancel_now(sub, now, usage)
        # Unused time is credited at what was billed for it: its discounts taken off (billed share).
        share = await discounts.billed_share(subscription_id, sub.current_period.end)
        unused = -sum(line.amount_minor for line in discount_rules.at_billed_share(cancellation.credit_lines, share))
        # Proration items still waiting for an invoice are settled now: a net charge on the final
        # invoice, a net credit (a downgrade's) with the unused time's credit notes.
        pending = await invoices_adjustments_repository.open_pending_items(subscription_id)
        pending_net = sum(item["amount_minor"] for item in pending)
        settled = pending if pending_net < 0 else []
        paid_by_credits = await _credit_unused(
            actor,
            tenant_id,
            subscription_id,
            sub,
            unused - min(pending_net, 0),
            settled,
            now,
            refuse_money_in_flight=refuse_money_in_flight,
        )
        if cancellation.usage_lines or (pending and pending_net >= 0):
            paid_by_credits.append(
                await write_invoice(
                    tenant_id=tenant_id,
                    subscription_id=subscription_id,
                    kind="final",
                    currency=sub.plan.currency,
                    period=cancellation.usage_period,
                    lines=cancellation.usage_lines,
                    now=now,
                    settle=False,
                )
            )
        await repository.update_subscription(
            subscription_id, _state.columns(cancellation.subscription) | {"canceled_at": now}
        )
        # Invoices the wallet's credits paid in full are settled on the canceled subscription: its status is
        # not moved back, and no plugin license is renewed for a period that ended now.
        for invoice_id in paid_by_credits:
            await settle_if_paid_by_credits(tenant_id, invoice_id)
    after = await _read(subscription_id)
    # Scheduled: an update (told as canceled when the cycle ends it); now: canceled.
    await notices.subscription_written(tenant_id, before, after, now)
    await mrr_history.subscription_written(tenant_id, before, after, now)
    action = "subscription.cancel_scheduled" if at_period_end else "subscription.canceled"
    await audit.record(
        actor, tenant_id, action, "subscription", subscription_id, before=summary(before), after=summary(after)
    )
    return after


async def _credit_unused(
    actor: Principal | None,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID,
    sub: Any,
    unused: int,
    settled: list[dict[str, Any]],
    now: datetime,
    *,
    refuse_money_in_flight: bool,
) -> list[uuid.UUID | None]:
    """Credit notes for `unused` (before tax) on the invoices that billed the current period, newest first
    (locked), each with its tax and up to what it can still be credited (what the card paid or still owes,
    then what the wallet's credits paid, given back to the wallet); `settled` pending items are marked as
    paid out by the first of them. Returns the drafts it finalized that the wallet's credits paid in full, for
    the caller to settle once the subscription is canceled.

    A credit note beside a payment or refund in flight would be undone by its answer: a pending charge
    succeeds for the old amount due (the overpayment absorbed), a pending refund no longer fits the
    remainder (`CreditExceedsRemainder` on its resend, pending for ever). So such an invoice is refused
    (`refuse_money_in_flight`) or, for the erasure, skipped: it is not credited here; its payment or refund
    settles as Stripe answers, and what the tenant is owed for it goes back by the ordinary refund and
    credit-note path afterwards."""
    credited: list[uuid.UUID] = []
    paid_by_credits: list[uuid.UUID | None] = []
    for invoice in await invoices_repository.invoices_billing_period(subscription_id, sub.current_period.end):
        if unused <= 0:
            break
        if invoice["status"] == "draft":
            if await finalize(tenant_id, invoice["id"], now, settle=False):
                paid_by_credits.append(invoice["id"])
            # Finalizing numbered it and applied the wallet's credits: credit what it is now.
            invoice = await invoices_repository.get_invoice(invoice["id"], lock="update") or invoice
        # In a currency Stripe takes only in steps, the credit is cash-rounded like the invoice (and never more
        # than the steps left to credit), so what it frees can go back by card.
        step = chargeable_step(invoice["currency"], exponent(invoice["currency"]))
        # Card first, then wallet: the unused time is credited out of what the card paid (or still owes), in
        # Stripe's steps; what it exceeds that by, up to what the wallet's credits paid, goes back to the
        # wallet (add_credit_note gives those credits back before the note takes its revenue and tax back).
        remainder = invoice["total_minor"] - invoice["credited_minor"] - invoice["credits_applied_minor"]
        gross = unused + tax_of(unused, invoice["tax_rate_bps"])
        wanted = gross + cash_rounding(gross, step)
        by_card = min(wanted, payable_in_steps(remainder, step))
        to_wallet = min(wanted - by_card, invoice["credits_applied_minor"])
        credit = by_card + to_wallet
        if credit > 0 and refuse_money_in_flight:
            await refuse_while_money_in_flight(invoice["id"], "credited by a cancellation")
        elif credit > 0 and await money_in_flight(invoice["id"]) is not None:
            # The erasure is never blocked: this invoice is skipped, its payment or refund settles as Stripe
            # answers, and what it still owes the tenant is handled by the ordinary refund/credit path later.
            continue
        if credit > 0:
            await add_credit_note(
                actor, tenant_id, invoice["id"], credit, "Unused time after cancellation", to_wallet_minor=to_wallet
            )
            credited.append(invoice["id"])
            # What this credit covered, before tax, no longer needs crediting elsewhere.
            unused -= -(-credit * 10_000 // (10_000 + invoice["tax_rate_bps"]))
    if settled and credited:
        await invoices_adjustments_repository.consume_pending_items([item["id"] for item in settled], credited[0])
    return paid_by_credits


async def resume_subscription(actor: Principal, subscription_id: uuid.UUID) -> SubscriptionView:
    tenant_id = await tenant_of(actor, "subscriptions", subscription_id, Permission.MANAGE_BILLING, "POST")
    async with tenant_tx(tenant_id):
        before = await _locked(subscription_id)
        if not before["cancel_at_period_end"] and before["status"] != Status.CANCELED:
            return subscription_view(before)
        resumed = lifecycle.resume(await _state.load(before))
        await repository.update_subscription(subscription_id, _state.columns(resumed))
        after = await _read(subscription_id)
        resumed_at = datetime.now(UTC)
        await notices.subscription_written(tenant_id, before, after, resumed_at)
        await mrr_history.subscription_written(tenant_id, before, after, resumed_at)
        await audit.record(
            actor,
            tenant_id,
            "subscription.resumed",
            "subscription",
            subscription_id,
            before=summary(before),
            after=summary(after),
        )
        return subscription_view(after)
