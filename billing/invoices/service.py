"""Invoices: writing one from lines, finalizing, reading, previewing, voiding and crediting."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

from billing.access import tenant_of
from billing.addons import service as _addons
from billing.addons.rules import Addon
from billing.commissions import service as _commissions
from billing.discounts import service as _discounts
from billing.disputes import repository as disputes_repository
from billing.disputes.service import DisputeView, dispute_view, disputes_of_invoices
from billing.errors import (
    BillingInvalid,
    CreditExceedsRemainder,
    CreditPurchaseNotCreditable,
    InvalidInvoiceTransition,
    InvoiceDisputed,
    InvoiceNotFound,
    PaymentInFlight,
    SubscriptionNotFound,
)
from billing.invoices import adjustments_repository, repository
from billing.invoices.totals import TaxAmount, Totals, amount_due, cash_rounded, credit_to_carry, totals
from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.money import Money, exponent
from billing.notices import service as notices
from billing.payments import repository as payments_repository
from billing.payments import service as _payments
from billing.payments.stripe_amounts import chargeable_step, require_credit_chargeable
from billing.periods import Period
from billing.rating import Line
from billing.subscriptions import lifecycle
from billing.subscriptions import repository as subscriptions_repository
from billing.subscriptions import state as _state
from billing.subscriptions.states import Status
from billing.taxes import service as _taxes
from billing.wallets.application import (
    CREDIT_PURCHASE,
    apply_credits,
    credits_for,
    give_back_credits,
    restore_credits,
)
from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of
from controlplane.core.views import Page, view_of
from tenants import audit
from tenants.roles import Permission


@dataclass(frozen=True, slots=True)
class InvoiceLineView:
    """One line of an invoice: quantity and unit amount may be fractional, the amount is whole minor units."""

    description: str
    charge_kind: str
    charge_index: int | None
    metric_code: str | None
    quantity: Decimal
    unit_amount_minor: Decimal
    amount_minor: int
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True, slots=True)
class InvoiceView:
    """An invoice with its lines. The upcoming invoice and a change's preview (computed, never stored) have no
    id, number or issue date, and the status "upcoming" or "preview"."""

    id: uuid.UUID | None
    number: str | None
    tenant_id: uuid.UUID
    subscription_id: uuid.UUID | None
    kind: str
    status: str
    currency: str
    period_start: datetime
    period_end: datetime
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    taxes: tuple[TaxAmount, ...]
    total_minor: int
    credited_minor: int
    credits_applied_minor: int
    amount_due_minor: int
    issued_at: datetime | None
    lines: tuple[InvoiceLineView, ...]
    disputes: tuple[DisputeView, ...] = ()  # card disputes of its payment (billing.disputes)


@dataclass(frozen=True, slots=True)
class CreditNoteView:
    id: uuid.UUID
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    number: str
    amount_minor: int
    currency: str
    reason: str
    taxes: tuple[TaxAmount, ...]
    created_at: datetime


def credit_note_number(invoice_number: str, position: int) -> str:
    """A credit note's number: its invoice's and its place among that invoice's notes (`ACME-000012-CN1`)."""
    return f"{invoice_number}-CN{position}"


def credit_note_view(row: dict[str, Any]) -> CreditNoteView:
    return view_of(CreditNoteView, row, taxes=taxes_of(row))


def _line_of_pending(item: dict[str, Any]) -> Line:
    return Line(
        description=item["description"],
        charge_kind=item["charge_kind"],
        quantity=item["quantity"],
        unit_amount=item["unit_amount_minor"],
        precise_amount=item["precise_amount_minor"],
        period=Period(item["period_start"], item["period_end"]),
        metric_code=item["metric_code"],
    )


@dataclass(frozen=True, slots=True)
class ComposedInvoice:
    """An invoice computed from its lines, not written: what `write_invoice` stores, and what a preview shows."""

    lines: list[Line]  # as stored: charges, pending items, discounts, the credit carried, cash rounding
    charges: list[Line]  # the lines before discounts (what the discounts were computed on)
    discount_minor: int
    carried: list[Line]  # the credit carried to the subscription's next invoice, as its pending item
    pending: list[dict[str, Any]]  # the pending items the invoice takes in
    figures: Totals


@dataclass(frozen=True, slots=True)
class InvoiceDraft:
    """An invoice decided and not yet computed: what `compose_invoice` computes from it (a preview) and
    `write_invoice` writes (the same invoice), so a preview and the invoice written take one value."""

    tenant_id: uuid.UUID
    subscription_id: uuid.UUID | None
    kind: str
    currency: str
    period: Period
    lines: list[Line]
    plan_code: str | None = None
    with_pending: bool = True

    async def compose(self) -> ComposedInvoice:
        return await compose_invoice(
            tenant_id=self.tenant_id,
            subscription_id=self.subscription_id,
            kind=self.kind,
            currency=self.currency,
            period=self.period,
            lines=self.lines,
            plan_code=self.plan_code,
            with_pending=self.with_pending,
        )

    async def write(self, *, now: datetime, boundary: datetime | None = None, settle: bool = True) -> uuid.UUID | None:
        return await write_invoice(
            tenant_id=self.tenant_id,
            subscription_id=self.subscription_id,
            kind=self.kind,
            currency=self.currency,
            period=self.period,
            lines=self.lines,
            plan_code=self.plan_code,
            with_pending=self.with_pending,
            now=now,
            boundary=boundary,
            settle=settle,
        )


async def compose_invoice(
    *,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID | None,
    kind: str,
    currency: str,
    period: Period,
    lines: list[Line],
    with_pending: bool = True,
    plan_code: str | None = None,
    taxed: bool = True,
    lock: bool = False,
) -> ComposedInvoice:
    """Inside the caller's tenant transaction: the invoice `write_invoice` would write from `lines`, computed
    and nothing written (see `write_invoice` for the order). `lock`: the subscription's discounts are locked
    until the transaction ends (an invoice about to be written; `discounts.discount_lines`)."""
    pending: list[dict[str, Any]] = []
    discounts: list[Line] = []
    if subscription_id is not None:
        if with_pending:
            pending = await adjustments_repository.open_pending_items(subscription_id)
        lines = lines + [_line_of_pending(item) for item in pending]
        discounts = await _discounts.discount_lines(
            tenant_id, subscription_id, lines, period, currency=currency, plan_code=plan_code, kind=kind, lock=lock
        )
    charges = lines
    lines = lines + discounts
    carry = credit_to_carry([line.amount_minor for line in lines])
    carried: list[Line] = []
    if carry:
        lines.append(
            Line("Credit carried to the next invoice", "proration", Decimal(1), Decimal(carry), Decimal(carry), period)
        )
        carried.append(
            Line(
                "Credit carried from an earlier invoice",
                "proration",
                Decimal(1),
                Decimal(-carry),
                Decimal(-carry),
                period,
            )
        )
    figures = totals([line.amount_minor for line in lines], await _taxes.rates_of(tenant_id) if taxed else [])
    figures = _cash_rounded(lines, figures, currency, period)
    return ComposedInvoice(
        lines=lines,
        charges=charges,
        discount_minor=sum((line.amount_minor for line in discounts), 0),
        carried=carried,
        pending=pending,
        figures=figures,
    )


async def write_invoice(
    *,
    tenant_id: uuid.UUID,
    subscription_id: uuid.UUID | None,
    kind: str,
    currency: str,
    period: Period,
    lines: list[Line],
    now: datetime,
    boundary: datetime | None = None,
    with_pending: bool = True,
    plan_code: str | None = None,
    finalization: Literal["grace", "now", "manual"] = "grace",
    taxed: bool = True,
    settle: bool = True,
) -> uuid.UUID | None:
    """Write a draft invoice with its lines, inside the caller's tenant transaction, and finalize it unless
    the tenant keeps drafts for a while. None when this boundary is already billed (nothing is written).
    `finalization`: after the tenant's grace hours (the cycle's drafts), `now`, or `manual` (a draft staff
    finalize themselves: no `finalize_at`, so `finalize_due_drafts` never picks it).

    Pending items (proration credits and charges) join a subscription's invoice, then its discounts (for the
    plan `plan_code` bills, None: the subscription's current plan; see billing.discounts.rules). If credits
    outweigh charges, the excess is carried to the next invoice, so the total is never negative unless every
    line is a credit. An invoice without a subscription (`one_off`, `credit_purchase`) has neither.
    `taxed=False` (a credit purchase) bills no tax: credits are taxed on the invoices they pay, after tax.
    `settle=False`: an invoice the wallet's credits pay in full is not settled here (see `finalize`); the caller
    calls `settle_if_paid_by_credits` once it has moved the subscription the invoice bills.
    The figures are `compose_invoice`'s, so a preview from it shows what is written here.
    """
    settings = await repository.tenant_billing_settings(tenant_id)
    composed = await compose_invoice(
        tenant_id=tenant_id,
        subscription_id=subscription_id,
        kind=kind,
        currency=currency,
        period=period,
        lines=lines,
        with_pending=with_pending,
        plan_code=plan_code,
        taxed=taxed,
        lock=True,
    )
    figures = composed.figures
    grace = settings["invoice_grace_hours"]
    invoice_id = uuid.uuid4()
    written = await repository.insert_invoice(
        {
            "id": invoice_id,
            "tenant_id": tenant_id,
            "subscription_id": subscription_id,
            "kind": kind,
            "cycle_boundary": boundary,
            "currency": currency,
            "period_start": period.start,
            "period_end": period.end,
            "subtotal_minor": figures.subtotal_minor,
            "discount_minor": composed.discount_minor,
            "tax_rate_bps": figures.tax_rate_bps,
            "tax_minor": figures.tax_minor,
            "taxes": figures.taxes,
            "total_minor": figures.total_minor,
            "amount_due_minor": amount_due(figures.total_minor, 0),
            "finalize_at": None if finalization == "manual" else now + timedelta(hours=grace),
        }
    )
    if not written:
        return None
    await repository.insert_lines(tenant_id, invoice_id, composed.lines)
    if subscription_id is not None:
        await adjustments_repository.consume_pending_items([item["id"] for item in composed.pending], invoice_id)
        await adjustments_repository.insert_pending_items(tenant_id, subscription_id, composed.carried)
        await _discounts.record_applied(
            tenant_id, subscription_id, invoice_id, composed.charges, kind=kind, currency=currency, plan_code=plan_code
        )
    draft = finalization == "manual" or (finalization == "grace" and grace > 0)
    if not draft:
        await finalize(tenant_id, invoice_id, now, settle=settle)
    metrics.INVOICES_CREATED_TOTAL.labels(kind=kind).inc()
    await audit.record(
        None,
        tenant_id,
        "invoice.created",
        "invoice",
        invoice_id,
        after={"kind": kind, "total_minor": figures.total_minor, "currency": currency, "draft": draft},
    )
    return invoice_id


def preview_of(
    composed: ComposedInvoice,
    draft: InvoiceDraft,
    *,
    status: Literal["preview", "upcoming"] = "preview",
    credits_applied_minor: int = 0,
) -> InvoiceView:
    """The view of an invoice computed and not written: no id, number or issue date, the status "preview" (or
    "upcoming": the next boundary's invoice); `credits_applied_minor`: what the wallet would pay of it
    (`credits_for`)."""
    figures = composed.figures
    return InvoiceView(
        id=None,
        number=None,
        tenant_id=draft.tenant_id,
        subscription_id=draft.subscription_id,
        kind=draft.kind,
        status=status,
        currency=draft.currency,
        period_start=draft.period.start,
        period_end=draft.period.end,
        subtotal_minor=figures.subtotal_minor,
        discount_minor=composed.discount_minor,
        tax_minor=figures.tax_minor,
        taxes=figures.taxes,
        total_minor=figures.total_minor,
        credited_minor=0,
        credits_applied_minor=credits_applied_minor,
        amount_due_minor=amount_due(figures.total_minor, 0) - credits_applied_minor,
        issued_at=None,
        lines=tuple(line_view(line) for line in composed.lines),
    )


def _cash_rounded(lines: list[Line], figures: Totals, currency: str, period: Period) -> Totals:
    """In a currency Stripe charges only in steps, the amount due is rounded to the nearest step after tax by
    a `rounding` line appended to `lines` (billing.invoices.totals), so Stripe can always charge what is due."""
    rounded, adjustment = cash_rounded(figures, chargeable_step(currency, exponent(currency)))
    if adjustment:
        amount = Decimal(adjustment)
        lines.append(Line("Rounding to a chargeable amount", "rounding", Decimal(1), amount, amount, period))
    return rounded


async def finalize(
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    now: datetime,
    *,
    with_credits: bool = True,
    settle: bool = True,
    announce: bool = True,
) -> bool:
    """Number the draft and book it: the tenant owes its total from now on, less the credits its wallet pays.
    A credit purchase books a liability to the tenant instead of revenue. Credits that pay the whole amount
    due make the invoice paid (True is returned), with a payment's consequences
    (billing.payments.service.settle_paid). Those read the subscription (its status moves, plugin licenses
    are renewed to its period's end), so a caller about to move the subscription (the cycle advancing its
    period, a plan change, a cancellation) passes `settle=False` and settles afterwards
    (`settle_if_paid_by_credits`). `with_credits=False` (a draft numbered only to be voided) applies none.
    The tenant is told (`invoice.finalized`, in this transaction) unless `announce=False` (that same draft)."""
    number = await repository.take_invoice_number(tenant_id)
    invoice = await repository.finalize_invoice(invoice_id, number, now)
    if invoice["kind"] == CREDIT_PURCHASE:
        postings = ledger.credit_purchase_issued(tenant_id, invoice["currency"], invoice["total_minor"])
    else:
        postings = ledger.invoice_issued(
            tenant_id, invoice["currency"], invoice["subtotal_minor"], invoice["tax_minor"]
        )
    await ledger_repository.post(tenant_id, "invoice", invoice_id, f"Invoice {number} issued", postings)
    applied = await apply_credits(tenant_id, invoice, now) if with_credits else 0
    if not applied:
        if announce:
            await notices.invoice_finalized(invoice)
        return False
    due = amount_due(invoice["total_minor"], invoice["credited_minor"], 0, applied)
    after = await repository.set_invoice_status(
        invoice_id, "paid" if due == 0 else invoice["status"], credits_applied_minor=applied, amount_due_minor=due
    )
    if announce:
        # With what the credits paid; told as finalized even when they paid it all (the paid notice follows).
        await notices.invoice_finalized(after)
    if due != 0:
        return False
    if settle:
        await _payments.settle_paid(None, tenant_id, after)
    return True


async def settle_if_paid_by_credits(tenant_id: uuid.UUID, invoice_id: uuid.UUID | None) -> None:
    """Inside the caller's transaction, after it wrote or finalized `invoice_id` with `settle=False` and moved
    its subscription: if the wallet's credits paid it in full, what follows a payment follows now."""
    if invoice_id is None:
        return
    row = await repository.get_invoice(invoice_id)
    if row is not None and row["status"] == "paid" and row["amount_due_minor"] == 0 and row["credits_applied_minor"]:
        await _payments.settle_paid(None, tenant_id, row)


def taxes_of(row: dict[str, Any]) -> tuple[TaxAmount, ...]:
    """An invoice's or credit note's `taxes` (asyncpg hands jsonb back as text)."""
    items = json.loads(row["taxes"]) if isinstance(row["taxes"], str) else row["taxes"]
    return tuple(TaxAmount(**item) for item in items)


def invoice_taxes(row: dict[str, Any]) -> tuple[TaxAmount, ...]:
    """The invoice's tax per rate, summing to its `tax_minor` (an invoice stored without a list, with tax, has
    its tax as a single rate)."""
    taxes = taxes_of(row)
    if sum((tax.amount_minor for tax in taxes), 0) != row["tax_minor"]:
        return (TaxAmount("tax", "Tax", row["tax_rate_bps"], row["tax_minor"]),)
    return taxes


async def _with_lines(rows: list[dict[str, Any]]) -> list[InvoiceView]:
    """Inside the caller's transaction: the invoices of `rows` with their stored lines."""
    lines = await repository.invoice_lines([row["id"] for row in rows])
    disputes = await disputes_of_invoices([row["id"] for row in rows])
    return [
        view_of(
            InvoiceView,
            row,
            taxes=taxes_of(row),
            lines=tuple(view_of(InvoiceLineView, line) for line in lines[row["id"]]),
            disputes=disputes.get(row["id"], ()),
        )
        for row in rows
    ]


def _view_in_full(row: dict[str, Any]) -> InvoiceView:
    """The view of an invoice read with its lines and disputes (`repository.list_invoices`)."""
    return view_of(
        InvoiceView,
        row,
        taxes=taxes_of(row),
        lines=tuple(view_of(InvoiceLineView, line) for line in row["lines"]),
        disputes=tuple(dispute_view(dispute) for dispute in row["disputes"]),
    )


async def list_invoices(tenant_id: uuid.UUID, page: PageRequest) -> Page[InvoiceView]:
    async with tenant_tx(tenant_id):
        rows = await repository.list_invoices(tenant_id, page)
    items, cursor = page_of(rows, page)
    return Page([_view_in_full(row) for row in items], cursor)


async def get_invoice(actor: Principal, invoice_id: uuid.UUID) -> InvoiceView:
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.READ_BILLING, "GET")
    async with tenant_tx(tenant_id):
        row = await repository.get_invoice_in_full(invoice_id)
    if row is None:
        raise InvoiceNotFound()
    return _view_in_full(row)


async def boundary_invoice(
    tenant_id: uuid.UUID, subscription_id: uuid.UUID, sub: lifecycle.Subscription, addons: list[Addon]
) -> tuple[lifecycle.Step, InvoiceDraft]:
    """Inside the caller's tenant transaction: the boundary at the end of `sub`'s current period as the cycle
    bills it (the step, with the subscription after it) and its invoice, which the cycle writes (adding the
    boundary) and the upcoming invoice composes. `addons`: the subscription's billable add-ons
    (`addons.billable`)."""
    window = lifecycle.usage_window(sub)
    usage = (
        await _state.usage_for(tenant_id, sub.plan, window.start, window.end, period_start=sub.current_period.start)
        if sub.status != Status.TRIALING
        else {}
    )
    step = lifecycle.cross_boundary(sub, usage)
    # Add-ons (paid plugins) are billed at every boundary, during the subscription's own trial too.
    addon_lines = await _addons.boundary_lines(tenant_id, addons, sub, step.subscription)
    return step, InvoiceDraft(
        tenant_id=tenant_id,
        subscription_id=subscription_id,
        kind="cycle",
        currency=step.subscription.plan.currency,
        plan_code=step.subscription.plan.code,
        period=step.invoice_period,
        lines=step.lines + addon_lines,
    )


async def upcoming_invoice(tenant_id: uuid.UUID, now: datetime | None = None) -> InvoiceView:
    """What the next boundary will bill if usage stays as it is now; nothing is written. Computed as the cycle
    computes the invoice it writes there (`boundary_invoice`, `compose_invoice`): its pending items, discounts,
    credit carried to the invoice after it, taxes and cash rounding; and the prepaid credits the wallet, as it
    is now, would pay of it."""
    now = now or datetime.now(UTC)
    async with tenant_tx(tenant_id):
        row = await subscriptions_repository.live_subscription(tenant_id)
        if row is None:
            raise SubscriptionNotFound("the tenant has no live subscription")
        sub = await _state.load(row)
        addons = await _addons.billable(tenant_id, row["id"], sub.current_period.start)
        _, draft = await boundary_invoice(tenant_id, row["id"], sub, addons)
        composed = await draft.compose()
        # The wallet pays at the boundary what is left of it then (a lot expiring before pays nothing).
        due = amount_due(composed.figures.total_minor, 0)
        credits = await credits_for(tenant_id, draft.currency, due, max(now, sub.current_period.end))
    return preview_of(composed, draft, status="upcoming", credits_applied_minor=credits)


def line_view(line: Line) -> InvoiceLineView:
    return InvoiceLineView(
        description=line.description,
        charge_kind=line.charge_kind,
        charge_index=line.charge_index,
        metric_code=line.metric_code,
        quantity=line.quantity,
        unit_amount_minor=line.unit_amount,
        amount_minor=line.amount_minor,
        period_start=line.period.start,
        period_end=line.period.end,
    )


async def void_invoice(actor: Principal, invoice_id: uuid.UUID) -> InvoiceView:
    """Staff only, before payment. Voiding a void invoice again answers with it unchanged."""
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.STAFF_ONLY, "POST")
    async with tenant_tx(tenant_id):
        row = await repository.get_invoice(invoice_id, lock="update")
        if row is None:
            raise InvoiceNotFound()
        if row["status"] == "void":
            return (await _with_lines([row]))[0]
        if row["status"] not in ("draft", "finalized"):
            raise InvalidInvoiceTransition(f"a {row['status']} invoice cannot be voided", current_status=row["status"])
        await refuse_while_money_in_flight(invoice_id, "voided")
        after = await void_locked(actor, tenant_id, row)
        return (await _with_lines([after]))[0]


async def void_locked(actor: Principal | None, tenant_id: uuid.UUID, row: dict[str, Any]) -> dict[str, Any]:
    """Inside the caller's tenant transaction, the draft or finalized invoice `row` locked and no money in
    flight: void it, give its credits back to their lots and its discounts what it used of them, reverse what
    it booked."""
    invoice_id = row["id"]
    now = datetime.now(UTC)
    if row["status"] == "draft":
        # A void invoice keeps its number: numbers are gapless, so a draft is numbered before voiding.
        await finalize(tenant_id, invoice_id, now, with_credits=False, announce=False)
    after = await repository.set_invoice_status(invoice_id, "void", amount_due_minor=0, voided_at=now)
    await restore_credits(tenant_id, invoice_id)
    # What it used of the subscription's discounts is theirs again (a once amount, a period, a once percent).
    await _discounts.give_back(tenant_id, row)
    # Whatever the invoice, its credit notes and its credits applied booked is reversed: a void invoice is owed
    # nothing, and the credits are the tenant's again.
    booked = await ledger_repository.invoice_postings(tenant_id, invoice_id)
    reversal = ledger.balanced(ledger.Posting(p.account, -p.amount_minor, p.currency) for p in booked)
    await ledger_repository.post(tenant_id, "invoice_void", invoice_id, f"Invoice {after['number']} voided", reversal)
    await audit.record(
        actor,
        tenant_id,
        "invoice.voided",
        "invoice",
        invoice_id,
        before={"status": row["status"]},
        after={"status": "void"},
    )
    return after


async def credit_invoice(actor: Principal, invoice_id: uuid.UUID, amount_minor: int, reason: str) -> CreditNoteView:
    """A credit note: never more than the invoice's creditable remainder (its total less earlier credits)."""
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.STAFF_ONLY, "POST")
    async with tenant_tx(tenant_id):
        if await repository.get_invoice(invoice_id, lock="update") is None:
            raise InvoiceNotFound()
        await refuse_while_money_in_flight(invoice_id, "credited")
        note = await add_credit_note(actor, tenant_id, invoice_id, amount_minor, reason)
    return note


async def money_in_flight(invoice_id: uuid.UUID) -> str | None:
    """Inside the caller's transaction, the invoice locked: "payment" or "refund" when one of the invoice is
    still waiting for Stripe's answer (it may have moved money), "dispute" when a card dispute of it is open or
    lost (its money is with the card network or the cardholder), else None."""
    if await payments_repository.has_pending_attempt(invoice_id):
        return "payment"
    if await payments_repository.pending_refunds(invoice_id):
        return "refund"
    if await disputes_repository.holds_invoice(invoice_id):
        return "dispute"
    return None


async def refuse_while_money_in_flight(invoice_id: uuid.UUID, what: str) -> None:
    """Inside the caller's transaction, the invoice locked: a collection attempt or a refund still waiting for
    Stripe's answer may have moved money, so the invoice cannot be voided or credited until it settles; an
    open or lost dispute holds its money, so it cannot be credited at all (`InvoiceDisputed`) unless won."""
    moving = await money_in_flight(invoice_id)
    if moving == "dispute":
        raise InvoiceDisputed(f"the invoice cannot be {what} while a card dispute of it is open or lost")
    if moving is not None:
        raise PaymentInFlight(f"the invoice cannot be {what} while a {moving} of it is pending at Stripe")


async def add_credit_note(
    actor: Principal | None,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    amount_minor: int,
    reason: str,
    *,
    refund: bool = False,
    to_wallet_minor: int = 0,
) -> CreditNoteView:
    """Inside the caller's tenant transaction. `to_wallet_minor` of the note (at most what the wallet's
    credits paid on the invoice) goes back to the wallet instead of by card or off the amount due: the
    credits are given back first (lowering `credits_applied_minor`, so the note fits the remainder), then
    the note takes the whole amount's revenue and tax back."""
    row = await repository.get_invoice(invoice_id, lock="update")
    if row is None:
        raise InvoiceNotFound()
    if row["status"] not in ("finalized", "paid"):
        raise InvalidInvoiceTransition(f"a {row['status']} invoice cannot be credited", current_status=row["status"])
    if row["kind"] == CREDIT_PURCHASE and not refund:
        raise CreditPurchaseNotCreditable()
    if not 0 <= to_wallet_minor <= min(amount_minor, row["credits_applied_minor"]):
        raise BillingInvalid("what goes back to the wallet is at most the note and what the wallet paid")
    if not refund:
        # A refund's own note is Stripe's amount already (checked before it was sent, or reported by Stripe).
        # What goes back to the wallet is no card money: only the rest must be chargeable.
        paid = row["status"] == "paid"
        due = row["amount_due_minor"]
        card = amount_minor - to_wallet_minor
        require_credit_chargeable(card, due, paid, row["currency"], exponent(row["currency"]))
    if to_wallet_minor:
        given = await give_back_credits(tenant_id, row, to_wallet_minor)
        applied = row["credits_applied_minor"] - given["purchased"] - given["granted"]
        due = 0 if row["status"] == "paid" else amount_due(row["total_minor"], row["credited_minor"], 0, applied)
        row = await repository.set_invoice_status(
            invoice_id, row["status"], credits_applied_minor=applied, amount_due_minor=due
        )
    # What the wallet's credits paid is not creditable here: it is the wallet's to give back.
    remainder = row["total_minor"] - row["credited_minor"] - row["credits_applied_minor"]
    if amount_minor > remainder:
        raise CreditExceedsRemainder(
            f"at most {Money(max(remainder, 0), row['currency']).format()} can still be credited",
            creditable_minor=max(remainder, 0),
        )
    # The note's tax per rate and the ledger's tax payable come from the same split (billing.ledger.rules).
    invoice_tax = invoice_taxes(row)
    tax_amounts = [tax.amount_minor for tax in invoice_tax]
    _, tax_parts = ledger.credit_parts(amount_minor, row["subtotal_minor"], tax_amounts, row["credited_minor"])
    # Numbered now, under the invoice's lock (taken above): the next place among its notes, never reused.
    position = await adjustments_repository.credit_note_count(invoice_id) + 1
    note = await adjustments_repository.insert_credit_note(
        {
            "tenant_id": tenant_id,
            "invoice_id": invoice_id,
            "number": credit_note_number(row["number"], position),
            "amount_minor": amount_minor,
            "currency": row["currency"],
            "reason": reason,
            "taxes": [
                TaxAmount(tax.code, tax.name, tax.rate_bps, part)
                for tax, part in zip(invoice_tax, tax_parts, strict=True)
            ],
        }
    )
    postings = ledger.invoice_reduced(
        tenant_id,
        row["currency"],
        amount_minor,
        row["subtotal_minor"],
        tax_amounts,
        row["credited_minor"],
        revenue_account=_reduced_account(tenant_id, row["kind"], refund),
    )
    await ledger_repository.post(tenant_id, "credit_note", note["id"], f"Credit note on {row['number']}", postings)
    if row["status"] == "paid" and row["kind"] != CREDIT_PURCHASE:
        await _commissions.invoice_credited(tenant_id, row, note["id"], amount_minor, datetime.now(UTC))
    credited = row["credited_minor"] + amount_minor
    # What a credit note frees on a paid invoice goes back as a refund (payments), not as an amount due.
    due = 0 if row["status"] == "paid" else amount_due(row["total_minor"], credited, 0, row["credits_applied_minor"])
    await repository.set_invoice_status(invoice_id, row["status"], credited_minor=credited, amount_due_minor=due)
    await audit.record(
        actor,
        tenant_id,
        "credit_note.created",
        "invoice",
        invoice_id,
        after={"amount_minor": amount_minor, "credit_note_id": str(note["id"])},
    )
    return credit_note_view(note)


def _reduced_account(tenant_id: uuid.UUID, kind: str, refund: bool) -> str:
    """Where a credit note takes back the invoice's net: a refund of a credit purchase reduces the liability
    (the unapplied credit goes back), a refund `refunds`, any other note `revenue`."""
    if kind == CREDIT_PURCHASE:
        return ledger.credit_liability(tenant_id)
    return ledger.REFUNDS if refund else ledger.REVENUE


async def list_credit_notes(actor: Principal, invoice_id: uuid.UUID) -> list[CreditNoteView]:
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.READ_BILLING, "GET")
    async with tenant_tx(tenant_id):
        return [credit_note_view(row) for row in await adjustments_repository.credit_notes_of(invoice_id)]
