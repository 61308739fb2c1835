"""Escrow agreements: create, fund (one captured charge), move milestones, release, refund, cancel.

Every movement of the held money writes its journal in the same transaction. Stripe is called between
transactions, with idempotency keys derived from the agreement and milestone ids, stored first.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing.access import tenant_of
from billing.errors import (
    CurrencyMismatch,
    EscrowNotFound,
    EscrowNotFunded,
    EscrowPayeeNotFound,
    EscrowPayeeNotQualified,
    FundingDeclined,
    InvalidMilestoneTransition,
    NoPaymentMethod,
)
from billing.escrow import repository
from billing.escrow import rules as escrow
from billing.escrow.rules import Action, Settlement
from billing.ledger import repository as ledger_repository
from billing.ledger import rules as ledger
from billing.money import exponent
from billing.payments import repository as payments_repository
from billing.payments.gateway import StripeGateway
from billing.payments.stripe_amounts import require_chargeable
from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.views import view_of
from tenants import audit
from tenants.errors import PartnerNotFound, PartnerNotQualified
from tenants.roles import Permission
from tenants.service import check_access, ensure_qualified, tenant_terms

log = logging.getLogger("billing.escrow")


@dataclass(frozen=True, slots=True)
class MilestoneTerms:
    title: str
    amount_minor: int
    due_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EscrowTerms:
    """A new agreement: the payer (a tenant), the payee, the amount and the milestones that sum to it."""

    tenant_id: uuid.UUID
    payee_type: str
    payee_id: uuid.UUID
    currency: str
    amount_minor: int
    milestones: tuple[MilestoneTerms, ...]
    inspection_days: int = 7


@dataclass(frozen=True, slots=True)
class EscrowPayee:
    type: str
    id: uuid.UUID


@dataclass(frozen=True, slots=True)
class MilestoneView:
    id: uuid.UUID
    position: int
    title: str
    amount_minor: int
    due_at: datetime | None
    status: str
    released_minor: int
    refunded_minor: int
    reason: str | None
    submitted_at: datetime | None
    # Failed attempts of the hourly auto-accept past the inspection window, and the last one's error.
    auto_accept_attempts: int
    auto_accept_error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class EscrowView:
    """An agreement, its milestones, and where its money is: held = funded - released - refunded."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    payee: EscrowPayee
    currency: str
    amount_minor: int
    inspection_days: int
    status: str
    funded_minor: int
    released_minor: int
    refunded_minor: int
    held_minor: int
    milestones: tuple[MilestoneView, ...]
    funding_decline_code: str | None
    funded_at: datetime | None
    created_at: datetime
    updated_at: datetime


async def create_escrow(actor: Principal, terms: EscrowTerms) -> EscrowView:
    tenant_id = terms.tenant_id
    exponent(terms.currency)
    milestones = terms.milestones
    escrow.check_milestones(terms.amount_minor, [m.amount_minor for m in milestones])
    # Funded with one charge, refunded or released a milestone at a time: each is an amount Stripe can move.
    for amount in [terms.amount_minor, *(m.amount_minor for m in milestones)]:
        require_chargeable(amount, terms.currency, exponent(terms.currency))
    escrow_id = uuid.uuid4()
    if terms.payee_type in escrow.PARTNER_PAYEES:
        # Access first, so a stranger learns nothing of partners; the payee is read in its own context.
        async with tenant_tx(tenant_id):
            await check_access(actor, tenant_id, Permission.MANAGE_BILLING, method="POST")
        await _check_payee(terms.payee_type, terms.payee_id)
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.MANAGE_BILLING, method="POST")
        tenant = await tenant_terms(tenant_id)
        assert tenant is not None
        if tenant.currency != terms.currency:
            raise CurrencyMismatch(f"the payer is billed in {tenant.currency}, not {terms.currency}")
        await repository.insert_escrow(
            {
                "id": escrow_id,
                "tenant_id": tenant_id,
                "payee_type": terms.payee_type,
                "payee_id": terms.payee_id,
                "currency": terms.currency,
                "amount_minor": terms.amount_minor,
                "inspection_days": terms.inspection_days,
            },
            [{"title": m.title, "amount_minor": m.amount_minor, "due_at": m.due_at} for m in milestones],
        )
        await audit.record(
            actor, tenant_id, "escrow.created", "escrow", escrow_id, after={"amount_minor": terms.amount_minor}
        )
        return await _read(escrow_id)


async def _check_payee(payee_type: str, payee_id: uuid.UUID) -> None:
    """A partner payee exists, is of the payee's type and is qualified now; the partner's own required
    actions are not the payer's to read, so they are not passed on."""
    try:
        await ensure_qualified(payee_id, payee_type)
    except PartnerNotFound:
        raise EscrowPayeeNotFound(f"no {payee_type} has this id") from None
    except PartnerNotQualified:
        raise EscrowPayeeNotQualified(f"the {payee_type} is not qualified to be paid") from None


async def _read(escrow_id: uuid.UUID) -> EscrowView:
    row = await repository.get_escrow(escrow_id)
    if row is None:
        raise EscrowNotFound()
    milestones = await repository.milestones_of(escrow_id)
    released = sum(m["released_minor"] for m in milestones)
    refunded = sum(m["refunded_minor"] for m in milestones)
    funded = row["amount_minor"] if row["funded_at"] else 0
    return view_of(
        EscrowView,
        row,
        payee=EscrowPayee(row["payee_type"], row["payee_id"]),
        milestones=tuple(view_of(MilestoneView, m) for m in milestones),
        funded_minor=funded,
        released_minor=released,
        refunded_minor=refunded,
        held_minor=escrow.held(funded, released, refunded),
    )


async def get_escrow(actor: Principal, escrow_id: uuid.UUID) -> EscrowView:
    tenant_id = await tenant_of(actor, "escrows", escrow_id, Permission.READ_BILLING, "GET")
    async with tenant_tx(tenant_id):
        return await _read(escrow_id)


async def fund_escrow(gateway: StripeGateway, actor: Principal, escrow_id: uuid.UUID) -> EscrowView:
    """Charge the whole amount to the payer's default card and hold it. Funding again answers as it is."""
    tenant_id = await tenant_of(actor, "escrows", escrow_id, Permission.MANAGE_BILLING, "POST")
    async with tenant_tx(tenant_id):
        row = await repository.get_escrow(escrow_id, lock=True)
        if row is None:
            raise EscrowNotFound()
        if row["status"] == "canceled":
            raise EscrowNotFunded("a canceled agreement cannot be funded", current_status="canceled")
        if row["status"] not in ("draft", "funding"):
            return await _read(escrow_id)
        method = await payments_repository.default_payment_method(tenant_id)
        customer_id = await payments_repository.customer_of(tenant_id)
        if method is None or customer_id is None:
            raise NoPaymentMethod(required_actions=["add_payment_method"])
        # An unanswered attempt is retried with its key; after a decline, the next attempt has its own.
        attempt = row["funding_attempts"] + (0 if row["status"] == "funding" else 1)
        key = f"escrow:{escrow_id}:fund:attempt:{attempt}"
        changes = {"status": "funding", "funding_key": key, "funding_attempts": attempt}
        await repository.update_escrow(escrow_id, changes)
    outcome = await asyncio.to_thread(
        gateway.charge,
        key,
        row["amount_minor"],
        row["currency"],
        customer_id,
        method["stripe_payment_method_id"],
        {"escrow_id": str(escrow_id)},
    )
    async with tenant_tx(tenant_id):
        current = await repository.get_escrow(escrow_id, lock=True)
        assert current is not None
        if current["status"] != "funding":
            return await _read(escrow_id)
        if not outcome.succeeded:
            await repository.update_escrow(escrow_id, {"status": "draft", "funding_decline_code": outcome.decline_code})
            await audit.record(actor, tenant_id, "escrow.funding_declined", "escrow", escrow_id)
        else:
            await repository.update_escrow(
                escrow_id,
                {
                    "status": "funded",
                    "stripe_payment_intent_id": outcome.payment_intent_id,
                    "funded_at": datetime.now(UTC),
                },
            )
            postings = ledger.escrow_funded(escrow_id, current["currency"], current["amount_minor"])
            await ledger_repository.post(tenant_id, "escrow_funding", escrow_id, "Escrow funded", postings)
            await audit.record(actor, tenant_id, "escrow.funded", "escrow", escrow_id)
    if not outcome.succeeded:
        raise FundingDeclined(decline_code=outcome.decline_code, required_actions=["add_payment_method"])
    async with tenant_tx(tenant_id):
        return await _read(escrow_id)


# Who may take each step on a milestone. Payees have no accounts yet (the partners work adds them), so
# platform staff submit on a payee's behalf; resolving a dispute is staff's by design.
STEP_PERMISSION = {
    Action.SUBMIT: Permission.STAFF_ONLY,
    Action.ACCEPT: Permission.MANAGE_BILLING,
    Action.REJECT: Permission.MANAGE_BILLING,
    Action.RESOLVE: Permission.STAFF_ONLY,
}


async def milestone_step(
    gateway: StripeGateway,
    actor: Principal | None,
    escrow_id: uuid.UUID,
    milestone_id: uuid.UUID,
    action: Action,
    *,
    reason: str | None = None,
    outcome: str | None = None,
    release_minor: int = 0,
    tenant_id: uuid.UUID | None = None,
) -> EscrowView:
    if tenant_id is None:
        assert actor is not None
        tenant_id = await tenant_of(actor, "escrows", escrow_id, STEP_PERMISSION[action], "POST")
    async with tenant_tx(tenant_id):
        row = await repository.get_escrow(escrow_id, lock=True)
        if row is None:
            raise EscrowNotFound()
        if row["status"] != "funded":
            raise EscrowNotFunded(f"a {row['status']} agreement's milestones cannot move", current_status=row["status"])
        milestone = next(
            (m for m in await repository.milestones_of(escrow_id, lock=True) if m["id"] == milestone_id), None
        )
        if milestone is None:
            raise EscrowNotFound("no such milestone in this agreement")
        settlement = escrow.step(
            milestone["status"], action, milestone["amount_minor"], outcome=outcome, release_minor=release_minor
        )
        changes: dict[str, Any] = {"status": settlement.status.value}
        if action is Action.SUBMIT:
            changes["submitted_at"] = datetime.now(UTC)
        if reason:
            changes["reason"] = reason
        await _settle(gateway, tenant_id, row, milestone, settlement, changes)
        await audit.record(
            actor,
            tenant_id,
            f"escrow.milestone.{action.value}",
            "escrow",
            escrow_id,
            after={"milestone_id": str(milestone_id), "status": settlement.status.value},
        )
        await _close_if_settled(escrow_id)
        return await _read(escrow_id)


async def _settle(
    gateway: StripeGateway,
    tenant_id: uuid.UUID,
    row: dict[str, Any],
    milestone: dict[str, Any],
    settlement: Settlement,
    changes: dict[str, Any],
) -> None:
    """Inside the agreement's transaction: release to the payee and/or refund the payer, with journals.

    The refund is a Stripe call inside the transaction; its key (escrow, milestone) makes a retry after a
    rollback a repeat Stripe ignores rather than a second refund.
    """
    escrow_id, currency = row["id"], row["currency"]
    if settlement.refund_minor:
        await asyncio.to_thread(
            gateway.refund,
            f"escrow:{escrow_id}:milestone:{milestone['id']}:refund",
            row["stripe_payment_intent_id"],
            settlement.refund_minor,
            currency,
        )
        postings = ledger.escrow_refunded(escrow_id, currency, settlement.refund_minor)
        await ledger_repository.post(
            tenant_id, "escrow_refund", milestone["id"], f"Escrow refund: {milestone['title']}", postings
        )
        changes["refunded_minor"] = settlement.refund_minor
    if settlement.release_minor:
        postings = ledger.escrow_released(
            escrow_id, row["payee_type"], row["payee_id"], currency, settlement.release_minor
        )
        await ledger_repository.post(
            tenant_id, "escrow_release", milestone["id"], f"Escrow release: {milestone['title']}", postings
        )
        changes["released_minor"] = settlement.release_minor
    await repository.update_milestone(milestone["id"], changes)


async def _close_if_settled(escrow_id: uuid.UUID) -> None:
    milestones = await repository.milestones_of(escrow_id)
    if all(m["status"] in escrow.SETTLED for m in milestones):
        await repository.update_escrow(escrow_id, {"status": "closed"})


async def cancel_escrow(gateway: StripeGateway, actor: Principal, escrow_id: uuid.UUID) -> EscrowView:
    """Refund every milestone not yet settled, unless one is under review (EscrowUnderReview, nothing moves).
    Cancelling again answers as it is."""
    tenant_id = await tenant_of(actor, "escrows", escrow_id, Permission.MANAGE_BILLING, "POST")
    async with tenant_tx(tenant_id):
        row = await repository.get_escrow(escrow_id, lock=True)
        if row is None:
            raise EscrowNotFound()
        if row["status"] in ("canceled", "closed"):
            return await _read(escrow_id)
        if row["status"] == "funding":
            raise EscrowNotFunded("the agreement is being funded; retry funding first", current_status="funding")
        if row["status"] == "funded":
            milestones = await repository.milestones_of(escrow_id, lock=True)
            # Checked whole before any refund: delivered work is decided by acceptance, the inspection window
            # or staff, never by the payer's cancel.
            escrow.check_cancellable([m["status"] for m in milestones])
            for milestone in milestones:
                if milestone["status"] in escrow.SETTLED:
                    continue
                settlement = escrow.step(milestone["status"], Action.CANCEL, milestone["amount_minor"])
                await _settle(gateway, tenant_id, row, milestone, settlement, {"status": settlement.status.value})
        await repository.update_escrow(escrow_id, {"status": "canceled"})
        await audit.record(actor, tenant_id, "escrow.canceled", "escrow", escrow_id)
        return await _read(escrow_id)


async def accept_overdue(gateway: StripeGateway, now: datetime) -> int:
    """Beat: a submitted milestone the payer has not answered within the inspection window is accepted.
    Each milestone is its own transaction: one whose release fails is recorded on it (attempts, error, when),
    counted in `controlplane_batch_item_failures_total{batch_job="accept_overdue_milestones"}` and retried on the
    back-off, and the others are accepted."""
    async with system_tx(SystemReason.PLATFORM_JOB):
        overdue = await repository.overdue_submissions(now, 1000)
    accepted = 0
    for item in overdue:
        try:
            await milestone_step(
                gateway, None, item["escrow_id"], item["id"], Action.ACCEPT, tenant_id=item["tenant_id"]
            )
            accepted += 1
        except (InvalidMilestoneTransition, EscrowNotFunded):
            continue  # answered (or the agreement closed or canceled) meanwhile
        except Exception as error:  # one milestone never stops the others
            metrics.stop_batch_on_outage("accept_overdue_milestones", error)
            reason = metrics.batch_item_failed("accept_overdue_milestones", error)
            try:
                async with tenant_tx(item["tenant_id"]):
                    await repository.record_auto_accept_failure(item["id"], metrics.batch_item_detail(reason, error))
            except Exception:  # the database itself failed; the milestone is listed again next time
                log.exception("milestone %s: its failed auto-accept could not be recorded", item["id"])
    return accepted
