"""Errors of the tenants domain: tenants, members, API keys, sign-in, webhooks, and partner qualification
(resellers and plugin publishers).

Each subclasses a `controlplane.core.errors` base, so `controlplane.core.problems` maps it to its HTTP status.
"""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.core.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    Unauthenticated,
)


class TenantNotFound(NotFound):
    code = "tenant_not_found"
    title = "Tenant not found"


class TenantSlugTaken(Conflict):
    code = "tenant_slug_taken"
    title = "A tenant with this slug exists"


class TenantNotActive(PermissionDenied):
    code = "tenant_not_active"
    title = "The tenant is suspended or being deleted"


class InvalidStatusTransition(Conflict):
    code = "invalid_status_transition"
    title = "The tenant cannot move to that status"


class NonPaymentSuspensionOpen(Conflict):
    code = "suspended_for_non_payment_open"
    title = (
        "The tenant is suspended for non-payment: it pays, or staff void its uncollectible invoice, or staff lift "
        "the suspension explicitly (reactivate with lift_non_payment_suspension=true)"
    )


class MemberNotFound(NotFound):
    code = "member_not_found"
    title = "Member not found"


class MemberExists(Conflict):
    code = "member_exists"
    title = "This user is already a member of the tenant"


class LastAdmin(Conflict):
    code = "last_admin"
    title = "A tenant must keep at least one admin"


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    title = "API key not found"


class RoleNotGrantable(PermissionDenied):
    code = "role_not_grantable"
    title = "You may not grant this role"


class ForbiddenForRole(PermissionDenied):
    code = "forbidden_for_role"
    title = "Your role does not allow this"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    title = "Email or password is wrong"


class RevokedApiKey(Unauthenticated):
    code = "api_key_revoked"
    title = "The API key is revoked or unknown"


class UserExists(Conflict):
    code = "user_exists"
    title = "A user with this email exists"


class WeakPassword(InvalidInput):
    code = "weak_password"
    title = "The password is too short"


class SuspendedForNonPayment(PaymentRequired):
    code = "suspended_for_non_payment"
    title = "The tenant is suspended until its overdue invoice is paid"


class CommercialTermsStaffOnly(PermissionDenied):
    code = "commercial_terms_staff_only"
    title = "Only platform staff set a tenant's tax rate, invoice grace and currency"


class InvalidRateLimitPercent(InvalidInput):
    code = "invalid_rate_limit_percent"
    title = "A rate-limit percentage is an integer from 1 to 100000"


class TenantCurrencyLocked(Conflict):
    code = "tenant_currency_locked"
    title = "The tenant's currency cannot change while it has a live subscription or unpaid invoices"


class ResellerAgreementMissing(Conflict):
    code = "reseller_agreement_missing"
    title = "Staff have not set this reseller's agreement, whose currency its new tenants are billed in"


class CurrencyRequired(BadRequest):
    code = "currency_required"
    title = "A tenant created by staff needs its currency"


class WebhookEndpointNotSet(NotFound):
    code = "webhook_endpoint_not_set"
    title = "The tenant has no webhook endpoint"


# -- partner qualification -----------------------------------------------------------------------------------


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
