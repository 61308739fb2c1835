"""Partner qualification: the checkpoints a reseller or plugin publisher passes before it may sell. Pure.

A `PartnerType` lists its checkpoints in order. Each goes `not_started` → `submitted` (partner) →
`approved` or `rejected` (its approver); a rejected or expired one may be submitted again; an approved one
with a validity lapses to `expired` at `expires_at`. `exempt` is computed from the subtype, never stored.

Prerequisites are checked on submit: each must be approved and unexpired at that time. An exempt prerequisite
is replaced by its own prerequisites, so skipping a step never skips the one before it. A refusal names the
first missing prerequisite in checkpoint order, e.g. a standard reseller's `agreement_signed` submitted first
names `payout_account_verified` (its direct prerequisite), and lists every missing one in `missing`.

Time decides: an approval past `expires_at` counts as expired everywhere, before the expiry task runs.
`required_actions` lists every unsatisfied non-exempt checkpoint in order, including ones still blocked by a
prerequisite, so a client can show the whole path; `issues` says which wait for what.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise

from tenants.errors import (
    CheckpointExempt,
    InvalidCheckpointTransition,
    InvalidEvidence,
    NotCheckpointApprover,
    PartnerNotQualified,
    PrerequisiteMissing,
    RejectionNeedsReason,
    UnknownCheckpoint,
    UnknownPartnerSubtype,
)


class Status(enum.StrEnum):
    NOT_STARTED = "not_started"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    EXEMPT = "exempt"  # computed by evaluate, never stored


class Action(enum.StrEnum):
    SUBMIT = "submit"
    APPROVE = "approve"
    REJECT = "reject"
    EXPIRE = "expire"


S = Status
TRANSITIONS: dict[Action, tuple[frozenset[Status], Status]] = {
    Action.SUBMIT: (frozenset({S.NOT_STARTED, S.REJECTED, S.EXPIRED}), S.SUBMITTED),
    Action.APPROVE: (frozenset({S.SUBMITTED}), S.APPROVED),
    Action.REJECT: (frozenset({S.SUBMITTED}), S.REJECTED),
    Action.EXPIRE: (frozenset({S.APPROVED}), S.EXPIRED),
}


def _aware(at: datetime | None) -> None:
    if at is not None and at.utcoffset() is None:
        raise ValueError("qualification times must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    code: str
    title: str
    prerequisites: tuple[str, ...] = ()
    approver: str = "staff"
    valid_for: timedelta | None = None
    exempt_subtypes: frozenset[str] = frozenset()
    evidence_pattern: str | None = None  # full-match regex the submitted evidence must satisfy


@dataclass(frozen=True, slots=True)
class PartnerType:
    name: str
    subtypes: frozenset[str]
    checkpoints: tuple[Checkpoint, ...]

    def __post_init__(self) -> None:
        seen: list[str] = []
        for cp in self.checkpoints:
            # Prerequisites must come earlier, so the declared order is always a valid order of work.
            if cp.code in seen or not set(cp.prerequisites) <= set(seen):
                raise ValueError(f"{self.name}.{cp.code}: duplicate, or a prerequisite not declared before it")
            if not cp.exempt_subtypes <= self.subtypes or (cp.valid_for is not None and cp.valid_for <= timedelta()):
                raise ValueError(f"{self.name}.{cp.code}: unknown exempt subtype or non-positive validity")
            seen.append(cp.code)

    def checkpoint(self, code: str) -> Checkpoint:
        for cp in self.checkpoints:
            if cp.code == code:
                return cp
        raise UnknownCheckpoint(f"{self.name} has no checkpoint {code!r}", checkpoint=code)

    def is_exempt(self, code: str, subtype: str) -> bool:
        if subtype not in self.subtypes:
            raise UnknownPartnerSubtype(f"{self.name} has no subtype {subtype!r}", subtype=subtype)
        return subtype in self.checkpoint(code).exempt_subtypes

    def prerequisites(self, code: str, subtype: str) -> tuple[str, ...]:
        """The codes that must be approved before `code` is submitted, exempt ones replaced by theirs."""
        found: set[str] = set()
        for pre in self.checkpoint(code).prerequisites:
            found |= set(self.prerequisites(pre, subtype)) if self.is_exempt(pre, subtype) else {pre}
        return tuple(cp.code for cp in self.checkpoints if cp.code in found)


@dataclass(frozen=True, slots=True)
class CheckpointState:
    code: str
    status: Status = Status.NOT_STARTED
    evidence: str | None = None
    submitted_at: datetime | None = None
    approved_at: datetime | None = None
    expires_at: datetime | None = None
    reason: str | None = None  # the last rejection's

    def __post_init__(self) -> None:
        if self.status is Status.EXEMPT:
            raise ValueError("exempt is computed, never stored")
        for at in (self.submitted_at, self.approved_at, self.expires_at):
            _aware(at)

    def status_at(self, now: datetime) -> Status:
        lapsed = self.status is S.APPROVED and self.expires_at is not None and self.expires_at <= now
        return S.EXPIRED if lapsed else self.status


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    code: str
    from_status: Status
    to_status: Status
    actor: str
    at: datetime
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    state: CheckpointState
    entry: HistoryEntry


@dataclass(frozen=True, slots=True)
class CheckpointView:
    code: str
    status: Status
    expires_at: datetime | None
    exempt: bool


@dataclass(frozen=True, slots=True)
class Qualification:
    is_qualified: bool
    checkpoints: tuple[CheckpointView, ...]
    issues: tuple[str, ...] = ()
    required_actions: tuple[str, ...] = ()

    def require(self) -> None:
        """Raise PartnerNotQualified (403 with required_actions) unless qualified."""
        if not self.is_qualified:
            raise PartnerNotQualified(self.required_actions, "; ".join(self.issues) or None)


States = Mapping[str, CheckpointState]  # by code; a missing code is not_started


def _state(checkpoints: States, code: str) -> CheckpointState:
    return checkpoints.get(code) or CheckpointState(code)


def _missing(pt: PartnerType, subtype: str, checkpoints: States, code: str, now: datetime) -> list[str]:
    """`code`'s prerequisites that are not approved-and-unexpired at `now`, in checkpoint order."""
    prerequisites = pt.prerequisites(code, subtype)
    return [p for p in prerequisites if _state(checkpoints, p).status_at(now) is not S.APPROVED]


def _reviewer(cp: Checkpoint, role: str) -> None:
    if role != cp.approver:
        raise NotCheckpointApprover(f"{cp.code} is reviewed by {cp.approver}", checkpoint=cp.code)


def _move(state: CheckpointState, action: Action, actor: str, at: datetime, current: Status) -> Status:
    _aware(at)
    if not actor.strip():
        raise ValueError("a transition needs an actor")
    sources, target = TRANSITIONS[action]
    if current not in sources:
        again = " again until it is reviewed" if current is S.SUBMITTED and action is Action.SUBMIT else ""
        detail = f"{state.code} is {current.value}; it cannot {action.value}{again}"
        raise InvalidCheckpointTransition(detail, checkpoint=state.code, current_status=current.value)
    return target


def submit(
    pt: PartnerType, subtype: str, checkpoints: States, code: str, *, actor: str, at: datetime, evidence: str = ""
) -> Transition:
    cp = pt.checkpoint(code)
    if pt.is_exempt(code, subtype):
        raise CheckpointExempt(f"{subtype} {pt.name}s are exempt from {code}", checkpoint=code)
    state = _state(checkpoints, code)
    current = state.status_at(at)  # a lapsed approval may be resubmitted before the expiry task runs
    target = _move(state, Action.SUBMIT, actor, at, current)
    if missing := _missing(pt, subtype, checkpoints, code, at):
        raise PrerequisiteMissing(
            f"{code} needs {missing[0]} approved first", checkpoint=code, prerequisite=missing[0], missing=missing
        )
    if cp.evidence_pattern is not None and not re.fullmatch(cp.evidence_pattern, evidence):
        raise InvalidEvidence(f"{code} needs evidence matching {cp.evidence_pattern}", checkpoint=code)
    new = CheckpointState(code, target, evidence or None, submitted_at=at)
    return Transition(new, HistoryEntry(code, current, target, actor, at))


def approve(pt: PartnerType, checkpoints: States, code: str, *, actor: str, role: str, at: datetime) -> Transition:
    cp = pt.checkpoint(code)
    _reviewer(cp, role)
    state = _state(checkpoints, code)
    current = state.status
    target = _move(state, Action.APPROVE, actor, at, current)
    expires_at = at + cp.valid_for if cp.valid_for is not None else None
    new = CheckpointState(code, target, state.evidence, state.submitted_at, approved_at=at, expires_at=expires_at)
    return Transition(new, HistoryEntry(code, current, target, actor, at))


def reject(
    pt: PartnerType, checkpoints: States, code: str, *, actor: str, role: str, at: datetime, reason: str
) -> Transition:
    _reviewer(pt.checkpoint(code), role)
    if not reason.strip():
        raise RejectionNeedsReason(f"say why {code} is rejected", checkpoint=code)
    state = _state(checkpoints, code)
    current = state.status
    target = _move(state, Action.REJECT, actor, at, current)
    new = CheckpointState(code, target, state.evidence, state.submitted_at, reason=reason.strip())
    return Transition(new, HistoryEntry(code, current, target, actor, at, reason.strip()))


def expire(pt: PartnerType, checkpoints: States, code: str, *, at: datetime, actor: str = "system") -> Transition:
    pt.checkpoint(code)
    state = _state(checkpoints, code)
    target = _move(state, Action.EXPIRE, actor, at, state.status)
    if state.status_at(at) is not S.EXPIRED:  # still valid: only the clock expires an approval
        raise InvalidCheckpointTransition(
            f"{code} has not reached its expiry", checkpoint=code, current_status="approved"
        )
    new = replace(state, status=target)
    return Transition(new, HistoryEntry(code, state.status, target, actor, at, f"valid until {state.expires_at}"))


def due_to_expire(checkpoints: Iterable[CheckpointState], now: datetime) -> list[str]:
    """The codes of approvals whose validity has ended at `now`, for the expiry beat task."""
    _aware(now)
    return [s.code for s in checkpoints if s.status is S.APPROVED and s.status_at(now) is S.EXPIRED]


# Stable machine codes: `{prefix}_{checkpoint code}`.
_ACTION_PREFIX = {S.NOT_STARTED: "submit", S.SUBMITTED: "await_review", S.REJECTED: "resubmit", S.EXPIRED: "resubmit"}


def evaluate(pt: PartnerType, subtype: str, checkpoints: States, now: datetime) -> Qualification:
    _aware(now)
    views: list[CheckpointView] = []
    issues: list[str] = []
    actions: list[str] = []
    for cp in pt.checkpoints:
        state = _state(checkpoints, cp.code)
        if pt.is_exempt(cp.code, subtype):
            views.append(CheckpointView(cp.code, S.EXEMPT, None, exempt=True))
            continue
        status = state.status_at(now)
        views.append(CheckpointView(cp.code, status, state.expires_at, exempt=False))
        if status is S.APPROVED:
            continue
        actions.append(f"{_ACTION_PREFIX[status]}_{cp.code}")
        if status is S.NOT_STARTED:
            waiting = _missing(pt, subtype, checkpoints, cp.code, now)
            issues.append(f"{cp.code} has not been submitted" + (f"; it waits for {waiting[0]}" if waiting else ""))
        elif status is S.SUBMITTED:
            issues.append(f"{cp.code} is awaiting review")
        elif status is S.REJECTED:
            issues.append(f"{cp.code} was rejected: {state.reason or 'no reason recorded'}")
        else:
            when = state.expires_at.astimezone(UTC).date().isoformat() if state.expires_at else "an unknown date"
            issues.append(f"{cp.code} expired on {when}")
    return Qualification(not actions, tuple(views), tuple(issues), tuple(actions))


def _chain(name: str, subtypes: set[str], *checkpoints: Checkpoint) -> PartnerType:
    """Each checkpoint requires the one before it."""
    linked = [replace(cp, prerequisites=(prev.code,)) for prev, cp in pairwise(checkpoints)]
    return PartnerType(name, frozenset(subtypes), (checkpoints[0], *linked))


_REFERRAL = frozenset({"referral"})
_ACCT = r"acct_[A-Za-z0-9]+"  # a Stripe connected account id
_YEAR = timedelta(days=365)
PARTNER_TYPES: dict[str, PartnerType] = {
    "reseller": _chain(
        "reseller",
        {"standard", "referral"},
        Checkpoint("profile_approved", "Company profile approved"),
        Checkpoint("tax_id_verified", "Tax identifier verified"),
        Checkpoint(
            "payout_account_verified", "Stripe payout account", exempt_subtypes=_REFERRAL, evidence_pattern=_ACCT
        ),
        Checkpoint("agreement_signed", "Reseller agreement signed"),
        Checkpoint("sales_training_certified", "Sales training", valid_for=_YEAR, exempt_subtypes=_REFERRAL),
    ),
    "publisher": _chain(
        "publisher",
        {"standard"},
        Checkpoint("profile_approved", "Publisher profile approved"),
        Checkpoint("identity_verified", "Identity verified"),
        Checkpoint("signing_key_registered", "Plugin signing key registered"),
        Checkpoint("security_review_passed", "First plugin's security review passed"),
    ),
}
