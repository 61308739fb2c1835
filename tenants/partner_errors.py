"""Errors of partner qualification (resellers and plugin publishers).

Each subclasses a `controlplane.core.errors` base, so `controlplane.core.problems` maps it to its HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied


class UnknownCheckpoint(NotFound):
    code = "unknown_checkpoint"
    title = "The partner type has no checkpoint with this code"


class UnknownPartnerSubtype(InvalidInput):
    code = "unknown_partner_subtype"
    title = "The partner type has no such subtype"


class PrerequisiteMissing(Conflict):
    code = "checkpoint_prerequisite_missing"
    title = "A prerequisite checkpoint is not approved yet"


class InvalidCheckpointTransition(Conflict):
    code = "invalid_checkpoint_transition"
    title = "The checkpoint cannot do this in its current status"


class CheckpointExempt(Conflict):
    code = "checkpoint_exempt"
    title = "This partner subtype is exempt from the checkpoint"


class RejectionNeedsReason(InvalidInput):
    code = "rejection_needs_reason"
    title = "A rejection must say why"


class InvalidEvidence(InvalidInput):
    code = "checkpoint_evidence_invalid"
    title = "The evidence submitted for the checkpoint is not valid"


class NotCheckpointApprover(PermissionDenied):
    code = "checkpoint_approver_required"
    title = "Only the checkpoint's approver may review it"


class PartnerNotQualified(PermissionDenied):
    code = "partner_not_qualified"
    title = "The partner has not completed qualification"

    def __init__(self, required_actions: Iterable[str], detail: str | None = None) -> None:
        # Like SuspendedForNonPayment: the problem body carries what unblocks the request.
        actions = list(required_actions)
        super().__init__(detail, required_actions=actions)
        self.required_actions = actions


class PartnerNotFound(NotFound):
    code = "partner_not_found"
    title = "No partner has this id"
