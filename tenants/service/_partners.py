"""Partners: sign-up, members, qualification (submit, review, expire) and the one gate every partner action
passes. A partner's rows are read in its own partner context; the staff queue reads across partners."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, partner_tx, system_tx, user_tx
from controlplane.core.errors import StaffOnly
from controlplane.core.pagination import PageRequest, page_of_views
from controlplane.core.views import Page, view_of
from tenants import partners_repository as repository
from tenants import qualification as engine
from tenants.errors import ForbiddenForRole, InvalidCheckpointTransition, PartnerNotFound, UnknownPartnerSubtype
from tenants.notifications import notify
from tenants.repository import get_user_by_email, insert_user

RESELLER_ADMIN = "reseller_admin"


@dataclass(frozen=True, slots=True)
class CheckpointStatusView:
    code: str
    status: str
    expires_at: datetime | None
    exempt: bool


@dataclass(frozen=True, slots=True)
class QualificationView:
    """Where a partner stands: qualified or not, each checkpoint's status, and what is left to do."""

    partner_id: uuid.UUID
    kind: str
    subtype: str
    is_qualified: bool
    checkpoints: list[CheckpointStatusView]
    issues: list[str]
    required_actions: list[str]


@dataclass(frozen=True, slots=True)
class PartnerView:
    id: uuid.UUID
    kind: str
    subtype: str
    name: str
    email: str
    stripe_account_id: str | None
    created_by: uuid.UUID | None
    created_at: datetime
    qualification: QualificationView


@dataclass(frozen=True, slots=True)
class NewPartner:
    name: str
    email: str
    subtype: str


@dataclass(frozen=True, slots=True)
class PartnerMemberView:
    partner_id: uuid.UUID
    user_id: uuid.UUID
    role: str


@dataclass(frozen=True, slots=True)
class CheckpointHistoryEntry:
    code: str
    from_status: str
    to_status: str
    actor_type: str
    actor_id: uuid.UUID | None
    reason: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class PendingCheckpointView:
    """A checkpoint submitted for staff review, with the partner it belongs to."""

    partner_id: uuid.UUID
    kind: str
    subtype: str
    name: str
    code: str
    submitted_at: datetime | None
    evidence: str | None  # what the partner submitted, for the reviewer to check


@dataclass(frozen=True, slots=True)
class AdministeredPartnerView:
    """A partner a person administers, as their home page lists it."""

    id: uuid.UUID
    kind: str
    subtype: str
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class PartnerInView:
    """A partner as one of its people (or staff) reads it, with the reader's role: "staff", "reseller_admin" or
    "reseller_viewer"."""

    partner: PartnerView
    role: str


@dataclass(frozen=True, slots=True)
class BillingSummaryView:
    """In one currency: a tenant's invoices (neither draft nor void), what they total, what is paid and due."""

    currency: str
    invoices: int
    invoiced_minor: int
    paid_minor: int | None
    outstanding_minor: int


@dataclass(frozen=True, slots=True)
class RecurringRevenueView:
    """A tenant's monthly recurring revenue now, in one currency."""

    currency: str
    mrr_minor: int


@dataclass(frozen=True, slots=True)
class OwnedTenantView:
    """A tenant as its reseller sees it: no members, no personal data."""

    id: uuid.UUID
    name: str
    slug: str
    status: str
    currency: str
    created_at: datetime
    billing: list[BillingSummaryView]
    mrr: list[RecurringRevenueView] | None  # None: the reader does not read the reseller's revenue


async def _role(actor: Principal, partner_id: uuid.UUID) -> str:
    """Inside `partner_tx`: "staff", or the actor's role in the partner; anyone else finds no partner."""
    if await repository.get_partner(partner_id) is None:
        raise PartnerNotFound()
    if actor.is_staff:
        return "staff"
    role = await repository.member_role(partner_id, actor.id) if actor.kind == "user" else None
    if role is None:
        raise PartnerNotFound()
    return role


async def ensure_partner_access(actor: Principal, partner_id: uuid.UUID, *, manage: bool = False) -> str:
    """Inside `partner_tx`: the actor's role in the partner (or "staff"); `manage`: staff only."""
    role = await _role(actor, partner_id)
    if manage and role != "staff":
        raise StaffOnly()
    return role


def _states(rows: list[dict[str, Any]]) -> dict[str, engine.CheckpointState]:
    return {
        row["code"]: engine.CheckpointState(
            row["code"],
            engine.Status(row["status"]),
            row["evidence"].get("text"),
            row["submitted_at"],
            row["approved_at"],
            row["expires_at"],
            row["reason"],
        )
        for row in rows
    }


def _view(partner: dict[str, Any], states: dict[str, engine.CheckpointState], now: datetime) -> QualificationView:
    result = engine.evaluate(engine.PARTNER_TYPES[partner["kind"]], partner["subtype"], states, now)
    return QualificationView(
        partner_id=partner["id"],
        kind=partner["kind"],
        subtype=partner["subtype"],
        is_qualified=result.is_qualified,
        checkpoints=[CheckpointStatusView(c.code, c.status.value, c.expires_at, c.exempt) for c in result.checkpoints],
        issues=list(result.issues),
        required_actions=list(result.required_actions),
    )


async def is_reseller_admin(actor: Principal, partner_id: uuid.UUID) -> bool:
    if actor.kind != "user":
        return False
    async with partner_tx(partner_id):
        return await repository.member_role(partner_id, actor.id) == RESELLER_ADMIN


async def create_partner(actor: Principal, kind: str, new: NewPartner) -> PartnerView:
    """Staff create a partner directly; anyone else signs one up and becomes its first admin. Either way it
    starts unqualified, with every checkpoint ahead of it."""
    if new.subtype not in engine.PARTNER_TYPES[kind].subtypes:
        raise UnknownPartnerSubtype(f"a {kind} is one of: {', '.join(sorted(engine.PARTNER_TYPES[kind].subtypes))}")
    partner_id = uuid.uuid4()
    values = {"name": new.name, "email": new.email, "subtype": new.subtype}
    async with system_tx(SystemReason.PARTNER_SIGNUP):
        row = await repository.insert_partner({**values, "id": partner_id, "kind": kind, "created_by": actor.id})
        if not actor.is_staff and actor.kind == "user":
            await repository.insert_member(partner_id, actor.id, RESELLER_ADMIN)
    return view_of(PartnerView, row, qualification=_view(row, {}, datetime.now(UTC)))


async def add_member(actor: Principal, partner_id: uuid.UUID, email: str, role: str) -> PartnerMemberView:
    async with partner_tx(partner_id):
        if await _role(actor, partner_id) == "reseller_viewer":
            raise ForbiddenForRole("only a reseller admin adds members")
    email = email.strip().lower()
    async with system_tx(SystemReason.MEMBER_INVITE):
        user = await get_user_by_email(email) or await insert_user(uuid.uuid4(), email, None, False)
        if user is None:  # invited concurrently
            user = await get_user_by_email(email)
    assert user is not None
    async with partner_tx(partner_id):
        member = await repository.insert_member(partner_id, user["id"], role)
        if member is None:  # a member already: answered as they are
            held = await repository.member_role(partner_id, user["id"])
            member = {"partner_id": partner_id, "user_id": user["id"], "role": held}
    return view_of(PartnerMemberView, member)


async def qualification(actor: Principal, partner_id: uuid.UUID) -> QualificationView:
    async with partner_tx(partner_id):
        await _role(actor, partner_id)
        partner = await repository.get_partner(partner_id)
        assert partner is not None
        return _view(partner, _states(await repository.checkpoints(partner_id)), datetime.now(UTC))


async def get_partner(actor: Principal, partner_id: uuid.UUID) -> PartnerInView:
    """The partner, where it stands, and the actor's role in it; PartnerNotFound for anyone else."""
    async with partner_tx(partner_id):
        role = await _role(actor, partner_id)
        row = await repository.get_partner(partner_id)
        assert row is not None
        standing = _view(row, _states(await repository.checkpoints(partner_id)), datetime.now(UTC))
    return PartnerInView(view_of(PartnerView, row, qualification=standing), role)


async def administered_partners(actor: Principal, limit: int = 100) -> list[AdministeredPartnerView]:
    """The partners a signed-in person is an admin of (the database shows a user only their own memberships)."""
    if actor.kind != "user":
        return []
    async with user_tx(actor.id):
        rows = await repository.administered_by(actor.id, RESELLER_ADMIN, limit)
    return [view_of(AdministeredPartnerView, row) for row in rows]


async def _transition(actor: Principal | None, partner_id: uuid.UUID, step: Any) -> QualificationView:
    """Lock the partner, apply one engine transition (which checks who may review), keep the new state and
    its history entry, and answer the partner's qualification. `actor` None: the expiry task."""
    now = datetime.now(UTC)
    async with partner_tx(partner_id):
        role = "staff" if actor is None else await _role(actor, partner_id)
        if role == "reseller_viewer":
            raise ForbiddenForRole("a reseller viewer reads qualification only")
        partner = await repository.get_partner(partner_id, lock=True)
        assert partner is not None
        states = _states(await repository.checkpoints(partner_id))
        done: engine.Transition = step(engine.PARTNER_TYPES[partner["kind"]], partner["subtype"], states, now, role)
        state, entry = done.state, done.entry
        await repository.save_checkpoint(
            partner_id,
            {
                "code": state.code,
                "status": state.status.value,
                "evidence": {"text": state.evidence} if state.evidence else {},
                "submitted_at": state.submitted_at,
                "approved_at": state.approved_at,
                "expires_at": state.expires_at,
                "reason": state.reason,
            },
        )
        await repository.insert_history(
            partner_id,
            {
                "code": entry.code,
                "from_status": entry.from_status.value,
                "to_status": entry.to_status.value,
                "actor_type": actor.kind if actor else "system",
                "actor_id": actor.id if actor else None,
                "reason": entry.reason,
                "at": entry.at,
            },
        )
        if state.code == "payout_account_verified" and state.status is engine.Status.APPROVED and state.evidence:
            await repository.set_stripe_account(partner_id, state.evidence)
        states = {**states, state.code: state}
        view = _view(partner, states, now)
        # Kept on the partner row for the gates that cannot read checkpoints (inside a tenant's transaction).
        ends = [s.expires_at for s in states.values() if s.status is engine.Status.APPROVED and s.expires_at]
        await repository.set_qualification(partner_id, view.is_qualified, min(ends, default=None))
        await _tell_review(partner_id, partner["kind"], state, entry, view)
        return view


async def _tell_review(
    partner_id: uuid.UUID,
    kind: str,
    state: engine.CheckpointState,
    entry: engine.HistoryEntry,
    view: QualificationView,
) -> None:
    """Inside the transition's transaction: a review (approved or rejected) is told to the partner's admins;
    a submission or an expiry is not. Each review is its own occurrence (its code and time)."""
    if entry.to_status not in (engine.Status.APPROVED, engine.Status.REJECTED):
        return
    key = f"{partner_id}:{entry.code}:{entry.at.isoformat()}"
    title = engine.PARTNER_TYPES[kind].checkpoint(entry.code).title
    data: dict[str, Any]
    if entry.to_status is engine.Status.APPROVED:
        data = {
            "code": entry.code,
            "title": title,
            "approved_at": entry.at.astimezone(UTC).isoformat(),
            "expires_at": state.expires_at.astimezone(UTC).isoformat() if state.expires_at else None,
        }
        await notify("partner.checkpoint_approved", key, data, partner_id=partner_id)
        return
    data = {
        "code": entry.code,
        "title": title,
        "reason": entry.reason,
        # What is left to qualify, this checkpoint's resubmission among it (the API's stable action codes).
        "required_actions": list(view.required_actions),
    }
    await notify("partner.checkpoint_rejected", key, data, partner_id=partner_id)


async def submit_checkpoint(actor: Principal, partner_id: uuid.UUID, code: str, evidence: str) -> QualificationView:
    return await _transition(
        actor,
        partner_id,
        lambda kind, subtype, states, now, role: engine.submit(
            kind, subtype, states, code, actor=actor.key, at=now, evidence=evidence
        ),
    )


async def approve_checkpoint(actor: Principal, partner_id: uuid.UUID, code: str) -> QualificationView:
    return await _transition(
        actor,
        partner_id,
        lambda kind, subtype, states, now, role: engine.approve(kind, states, code, actor=actor.key, role=role, at=now),
    )


async def reject_checkpoint(actor: Principal, partner_id: uuid.UUID, code: str, reason: str) -> QualificationView:
    return await _transition(
        actor,
        partner_id,
        lambda kind, subtype, states, now, role: engine.reject(
            kind, states, code, actor=actor.key, role=role, at=now, reason=reason
        ),
    )


async def checkpoint_history(actor: Principal, partner_id: uuid.UUID) -> list[CheckpointHistoryEntry]:
    async with partner_tx(partner_id):
        await _role(actor, partner_id)
        rows = await repository.history(partner_id)
    return [view_of(CheckpointHistoryEntry, row) for row in rows]


async def pending_checkpoints(code: str | None, page: PageRequest) -> Page[PendingCheckpointView]:
    async with system_tx(SystemReason.PARTNER_REVIEW):
        rows = await repository.pending(code, page)
    return page_of_views(rows, page, _pending_view)


def _pending_view(row: dict[str, Any]) -> PendingCheckpointView:
    return view_of(PendingCheckpointView, row, evidence=row["evidence"].get("text"))


async def expire_checkpoints(now: datetime | None = None) -> int:
    """The beat task: approvals past their validity become expired, each recorded. Safe to run twice."""
    now = now or datetime.now(UTC)
    async with system_tx(SystemReason.PLATFORM_JOB):
        lapsed = await repository.lapsed(now, 10_000)
    expired = 0
    for item in lapsed:
        code = item["code"]
        try:
            await _transition(
                None,
                item["partner_id"],
                lambda kind, subtype, states, at, role, code=code: engine.expire(kind, states, code, at=now),
            )
        except InvalidCheckpointTransition:
            continue  # expired or renewed meanwhile
        except Exception as error:  # one partner's checkpoint never stops the others; the next run retries it
            metrics.stop_batch_on_outage("expire_partner_checkpoints", error)
            reason = metrics.batch_item_failed("expire_partner_checkpoints", error)
            async with partner_tx(item["partner_id"]):
                await repository.record_expiry_failure(item["partner_id"], code, reason, now)
            continue
        expired += 1
    return expired


async def ensure_partner_kind(partner_id: uuid.UUID, kind: str) -> None:
    async with partner_tx(partner_id):
        partner = await repository.get_partner(partner_id)
    if partner is None or partner["kind"] != kind:
        raise PartnerNotFound(f"no {kind} has this id")


async def ensure_qualified(partner_id: uuid.UUID, kind: str) -> None:
    """The one gate: raise PartnerNotQualified (403, with its required actions) unless `partner_id` is a
    qualified partner of `kind` now. Every partner action that needs qualification calls this."""
    async with partner_tx(partner_id):
        partner = await repository.get_partner(partner_id)
        if partner is None or partner["kind"] != kind:
            raise PartnerNotFound(f"no {kind} has this id")
        states = _states(await repository.checkpoints(partner_id))
    engine.evaluate(engine.PARTNER_TYPES[kind], partner["subtype"], states, datetime.now(UTC)).require()


# Who reads a reseller's revenue (its tenants' MRR), as `billing.analytics` decides for the revenue report.
REVENUE_READERS = frozenset({"staff", "reseller_admin"})


def _owned_tenant(row: dict[str, Any], *, with_mrr: bool) -> OwnedTenantView:
    return view_of(
        OwnedTenantView,
        row,
        billing=[BillingSummaryView(**summary) for summary in row["billing"]],
        mrr=[RecurringRevenueView(**each) for each in row["mrr"]] if with_mrr else None,
    )


async def reseller_tenants(actor: Principal, partner_id: uuid.UUID, page: PageRequest) -> Page[OwnedTenantView]:
    """The tenants a reseller owns, each with its billing summary: what the reseller context may read, by
    the database's policies (no members, no personal data); and each one's MRR now, for those who read the
    reseller's revenue (None for its viewers)."""
    async with partner_tx(partner_id):
        role = await _role(actor, partner_id)
        rows = await repository.owned_tenants(partner_id, page)
    return page_of_views(rows, page, functools.partial(_owned_tenant, with_mrr=role in REVENUE_READERS))
