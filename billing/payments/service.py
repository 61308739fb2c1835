"""Payments: a tenant's cards at Stripe, and collecting an invoice's amount due off-session.

A collection attempt is written (with its idempotency key `invoice:{id}:attempt:{n}`) and committed before
Stripe is called; if Stripe does not answer, the attempt stays pending and the next try sends the same
key again, so a timeout can never charge twice. Stripe's answer is recorded in a second transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing import hooks
from billing.access import tenant_of
from billing.analytics import history as mrr_history
from billing.commissions import service as _commissions
from billing.disputes import repository as disputes_repository
from billing.errors import (
    InvalidInvoiceTransition,
    InvalidPaymentMethod,
    InvalidSubscriptionTransition,
    InvoiceNotFound,
    NoPaymentMethod,
)
from billing.invoices import repository as invoices_repository
from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.notices import service as notices
from billing.payments import repository
from billing.payments.dunning import DEFAULT_SCHEDULE_DAYS
from billing.payments.gateway import CardSetup, ChargeOutcome, StripeGateway
from billing.subscriptions import repository as subscriptions_repository
from billing.subscriptions.states import Event, next_status
from billing.wallets.application import CREDIT_PURCHASE, fund_purchase
from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import audit
from tenants.roles import Permission
from tenants.service import billing_email_of, lift_non_payment_suspension, suspend_for_non_payment, tenant_terms

# The dunning schedule (settings.dunning_days) that a failed payment's notice reads its next retry from, when
# the caller does not name it (an attempt by hand, Stripe's webhook). The composition root sets it.
_DUNNING_SCHEDULE: list[tuple[int, ...]] = [DEFAULT_SCHEDULE_DAYS]


def use_dunning_schedule(days: Sequence[int]) -> None:
    _DUNNING_SCHEDULE[0] = tuple(days)


@dataclass(frozen=True, slots=True)
class PaymentMethodView:
    """A card of the tenant's at Stripe; `default` is the one collections charge."""

    id: uuid.UUID
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    default: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentView:
    """One attempt to collect an invoice: pending until Stripe answers, then succeeded or failed (with its
    decline code). `dunning_step` is the collection run's step, None for an attempt by hand."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    attempt: int
    status: str
    amount_minor: int
    currency: str
    decline_code: str | None
    dunning_step: int | None
    created_at: datetime
    updated_at: datetime


def _method_view(row: dict[str, Any]) -> PaymentMethodView:
    return view_of(PaymentMethodView, row, default=row["is_default"])


def _payment_view(row: dict[str, Any]) -> PaymentView:
    return view_of(PaymentView, row)


async def _customer_of(gateway: StripeGateway, tenant_id: uuid.UUID) -> str:
    """The tenant's Stripe customer, made on first use."""
    async with tenant_tx(tenant_id):
        customer_id = await repository.customer_of(tenant_id)
    if customer_id is None:
        email = await billing_email_of(tenant_id)
        created = await asyncio.to_thread(gateway.create_customer, str(tenant_id), email)
        async with tenant_tx(tenant_id):
            customer_id = await repository.save_customer(tenant_id, created)
    return customer_id


async def start_card_setup(gateway: StripeGateway, tenant_id: uuid.UUID) -> CardSetup:
    """A SetupIntent the browser confirms with Stripe.js (the card never reaches us), then `finish_card_setup`.
    The caller has checked that the principal may manage the tenant's billing."""
    customer_id = await _customer_of(gateway, tenant_id)
    return await asyncio.to_thread(gateway.start_card_setup, customer_id, str(tenant_id))


async def finish_card_setup(
    gateway: StripeGateway, actor: Principal, tenant_id: uuid.UUID, setup_intent_id: str, make_default: bool
) -> PaymentMethodView:
    """The card of a SetupIntent Stripe.js confirmed, saved as `add_payment_method` saves one: only a succeeded
    intent of this tenant's own customer (its id comes from the browser)."""
    setup = await asyncio.to_thread(gateway.card_setup, setup_intent_id)
    async with tenant_tx(tenant_id):
        customer_id = await repository.customer_of(tenant_id)
    if setup.tenant_id != str(tenant_id) or setup.customer is None or setup.customer != customer_id:
        raise InvalidPaymentMethod("this card setup is not the tenant's")
    if setup.status != "succeeded" or setup.payment_method is None:
        raise InvalidPaymentMethod(f"the card setup has not succeeded ({setup.status})")
    return await add_payment_method(gateway, actor, tenant_id, setup.payment_method, make_default)


async def add_payment_method(
    gateway: StripeGateway, actor: Principal, tenant_id: uuid.UUID, payment_method_id: str, make_default: bool
) -> PaymentMethodView:
    """Attach a card to the tenant's Stripe customer (made on first use). The first card is the default."""
    customer_id = await _customer_of(gateway, tenant_id)
    card = await asyncio.to_thread(gateway.attach_card, payment_method_id, customer_id)
    async with tenant_tx(tenant_id):
        make_default = make_default or not await repository.has_payment_methods(tenant_id)
        row = await repository.save_payment_method(
            tenant_id,
            {
                "stripe_payment_method_id": payment_method_id,
                "brand": card.brand,
                "last4": card.last4,
                "exp_month": card.exp_month,
                "exp_year": card.exp_year,
            },
            make_default,
        )
        await audit.record(
            actor, tenant_id, "payment_method.added", "payment_method", row["id"], after={"default": row["is_default"]}
        )
    return _method_view(row)


async def list_payment_methods(tenant_id: uuid.UUID, page: PageRequest) -> Page[PaymentMethodView]:
    async with tenant_tx(tenant_id):
        rows = await repository.list_payment_methods(tenant_id, page)
    return page_of_views(rows, page, _method_view)


async def pay_invoice(gateway: StripeGateway, actor: Principal, invoice_id: uuid.UUID) -> PaymentView:
    """An attempt by hand: it has no dunning step, so it neither uses up nor moves the dunning schedule."""
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.MANAGE_BILLING, "POST")
    return await collect_invoice(gateway, tenant_id, invoice_id, actor)


class StepTaken(Exception):
    """The collection run's step was attempted meanwhile (a concurrent run): nothing to do. Internal."""


async def collect_invoice(
    gateway: StripeGateway, tenant_id: uuid.UUID, invoice_id: uuid.UUID, actor: Principal | None = None
) -> PaymentView:
    """Charge the invoice's amount due to the tenant's default card. A paid invoice answers with the
    payment that paid it."""
    payment, _ = await collect_attempt(gateway, tenant_id, invoice_id, actor)
    return payment


async def collect_attempt(
    gateway: StripeGateway,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    actor: Principal | None = None,
    *,
    dunning_step: int | None = None,
    schedule: Sequence[int] | None = None,
) -> tuple[PaymentView, bool]:
    """(payment, refused): `refused` when Stripe refused the charge itself (nothing was charged; the attempt
    is recorded as failed with Stripe's error code). `dunning_step` is the collection run's step (None: by
    hand); a step already attempted raises `StepTaken`. `schedule`: the collection run's dunning schedule."""
    async with tenant_tx(tenant_id):
        invoice = await invoices_repository.get_invoice(invoice_id, lock="update")
        if invoice is None:
            raise InvoiceNotFound()
        if invoice["status"] == "paid":
            paid = await repository.last_attempt(invoice_id)
            if paid is not None:
                return _payment_view(paid), False
        # An uncollectible invoice can still be paid: that is how a suspended tenant comes back.
        if invoice["status"] not in ("finalized", "uncollectible") or invoice["amount_due_minor"] <= 0:
            raise InvalidInvoiceTransition(
                f"a {invoice['status']} invoice with {invoice['amount_due_minor']} due cannot be collected",
                current_status=invoice["status"],
            )
        attempt = await repository.open_attempt(invoice_id)
        if attempt is None:
            if dunning_step is not None:
                taken = await repository.last_dunning_step(invoice_id)
                if taken is not None and taken >= dunning_step:
                    raise StepTaken()
            method = await repository.default_payment_method(tenant_id)
            customer_id = await repository.customer_of(tenant_id)
            if method is None or customer_id is None:
                raise NoPaymentMethod(required_actions=["add_payment_method"])
            last = await repository.last_attempt(invoice_id)
            number = last["attempt"] + 1 if last else 1
            attempt = await repository.insert_attempt(
                {
                    "tenant_id": tenant_id,
                    "invoice_id": invoice_id,
                    "attempt": number,
                    "idempotency_key": f"invoice:{invoice_id}:attempt:{number}",
                    "amount_minor": invoice["amount_due_minor"],
                    "currency": invoice["currency"],
                    "stripe_customer_id": customer_id,
                    "stripe_payment_method_id": method["stripe_payment_method_id"],
                    "dunning_step": dunning_step,
                }
            )
    # Committed: the key is stored before Stripe hears of it.
    outcome = await asyncio.to_thread(
        gateway.charge,
        attempt["idempotency_key"],
        attempt["amount_minor"],
        attempt["currency"],
        attempt["stripe_customer_id"],
        attempt["stripe_payment_method_id"],
        {"invoice_id": str(invoice_id)},
    )
    if outcome.refused:
        metrics.COLLECTION_FAILURES_TOTAL.labels(reason="refused").inc()
    async with tenant_tx(tenant_id):
        payment = await record_outcome(actor, tenant_id, invoice_id, attempt, outcome, schedule=schedule)
    return _payment_view(payment), outcome.refused


async def record_outcome(
    actor: Principal | None,
    tenant_id: uuid.UUID,
    invoice_id: uuid.UUID,
    attempt: dict[str, Any],
    outcome: ChargeOutcome,
    *,
    schedule: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Inside the caller's transaction: Stripe's answer to an attempt, and what follows from it. A failure is
    told (`invoice.payment_failed`, with the next retry of `schedule`, by default the configured one)."""
    invoice = await invoices_repository.get_invoice(invoice_id, lock="update")
    assert invoice is not None
    status = "succeeded" if outcome.succeeded else "failed"
    payment = await repository.settle_attempt(attempt["id"], status, outcome.payment_intent_id, outcome.decline_code)
    if payment is None:  # settled meanwhile by a concurrent retry: its answer stands
        return await repository.get_attempt(attempt["id"])
    became_paid = outcome.succeeded and invoice["status"] in ("finalized", "uncollectible")
    if outcome.succeeded:
        if became_paid:
            await invoices_repository.set_invoice_status(invoice_id, "paid", amount_due_minor=0)
            await _reactivate_if_settled(actor, tenant_id, invoice_id)
            if invoice["kind"] == CREDIT_PURCHASE:
                # The credit bought is available from now, in this same transaction.
                await fund_purchase(tenant_id, invoice, payment)
        postings = ledger.payment_received(tenant_id, payment["currency"], payment["amount_minor"])
        await ledger_repository.post(tenant_id, "payment", payment["id"], f"Payment of {invoice['number']}", postings)
    await _move_subscription(
        invoice["subscription_id"], Event.PAYMENT_SUCCEEDED if outcome.succeeded else Event.PAYMENT_FAILED
    )
    metrics.PAYMENTS_TOTAL.labels(outcome=status).inc()
    await audit.record(
        actor,
        tenant_id,
        f"payment.{status}",
        "invoice",
        invoice_id,
        after={
            "attempt": payment["attempt"],
            "amount_minor": payment["amount_minor"],
            "decline_code": payment["decline_code"],
        },
    )
    if not outcome.succeeded:
        schedule = _DUNNING_SCHEDULE[0] if schedule is None else schedule
        await notices.payment_failed(invoice, payment, datetime.now(UTC), schedule)
    if became_paid:
        await _paid_consequences(tenant_id, invoice)
    return payment


async def settle_paid(actor: Principal | None, tenant_id: uuid.UUID, invoice: dict[str, Any]) -> None:
    """Inside the caller's transaction: `invoice` (its row) was just made paid by credits from the wallet,
    with no card payment; what follows is what follows a payment: a suspension lifted, the subscription
    active again, the reseller's commission, the other domains' hooks."""
    # Read unlocked first: this runs inside a finalization that already updated the tenant's row (its invoice
    # number), and locking it FOR UPDATE there would deadlock with other finalizations holding a key share on
    # it (their invoices' foreign key). Only a suspended tenant needs the lock, to be lifted.
    terms = await tenant_terms(tenant_id)
    if terms is not None and terms.billing_suspended_at is not None:
        await _reactivate_if_settled(actor, tenant_id, invoice["id"])
    await _move_subscription(invoice["subscription_id"], Event.PAYMENT_SUCCEEDED)
    await audit.record(
        actor,
        tenant_id,
        "invoice.paid_by_credits",
        "invoice",
        invoice["id"],
        after={"credits_applied_minor": invoice["credits_applied_minor"]},
    )
    await _paid_consequences(tenant_id, invoice)


async def _paid_consequences(tenant_id: uuid.UUID, invoice: dict[str, Any]) -> None:
    """The invoice turned paid (by card, by Stripe's webhook, by the wallet's credits: every path comes here).
    A credit purchase earns no commission: its credit earns when it pays."""
    now = datetime.now(UTC)
    if invoice["kind"] != CREDIT_PURCHASE:
        await _commissions.invoice_paid(tenant_id, invoice, now)
    await notices.invoice_paid(invoice, now)
    # Other domains (the plugin registry renews licenses) act in this same transaction.
    await hooks.invoice_paid(tenant_id, invoice["id"])


async def _move_subscription(subscription_id: uuid.UUID | None, event: Event) -> None:
    """past_due on a failed payment, active again on a successful one; other states are left alone. An invoice
    without a subscription (one-off, credit purchase) moves none."""
    if subscription_id is None:
        return
    row = await subscriptions_repository.get_subscription(subscription_id, lock="update")
    if row is None:
        return
    try:
        target = next_status(row["status"], event)
    except InvalidSubscriptionTransition:
        return
    if target != row["status"]:
        await subscriptions_repository.update_subscription(subscription_id, {"status": target.value})
        moved, at = {**row, "status": target.value}, datetime.now(UTC)
        await notices.subscription_written(row["tenant_id"], row, moved, at)
        await mrr_history.subscription_written(row["tenant_id"], row, moved, at)


async def _reactivate_if_settled(actor: Principal | None, tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> None:
    """A tenant suspended for non-payment is active again once nothing it owes is uncollectible and no lost
    card dispute's amount billed again is unpaid (billing.disputes: the suspension for that loss waits for it)."""
    tenant = await tenant_terms(tenant_id, lock="update")
    if tenant is None or tenant.billing_suspended_at is None:
        return
    if await repository.other_uncollectible(tenant_id, invoice_id):
        return
    if await disputes_repository.unpaid_rebill(tenant_id):
        return
    # The tenants domain owns the status: billing asks for the lift.
    if await lift_non_payment_suspension(tenant_id, actor):
        metrics.DUNNING_STEPS_TOTAL.labels(step="reactivated").inc()


async def give_up(tenant_id: uuid.UUID, invoice_id: uuid.UUID, now: datetime) -> None:
    """The last retry failed: the invoice is uncollectible and the tenant suspended until it pays."""
    async with tenant_tx(tenant_id):
        invoice = await invoices_repository.get_invoice(invoice_id, lock="update")
        if invoice is None or invoice["status"] != "finalized":
            return
        await invoices_repository.set_invoice_status(invoice_id, "uncollectible")
        await audit.record(
            None, tenant_id, "invoice.uncollectible", "invoice", invoice_id, after={"status": "uncollectible"}
        )
        # The tenants domain owns the status: billing asks for the suspension.
        await suspend_for_non_payment(tenant_id, invoice_id, now)
    metrics.DUNNING_STEPS_TOTAL.labels(step="uncollectible").inc()
