"""The tenant status machine: pure.

A tenant's state is its status and the two reasons it may be suspended for: staff suspended it, and billing
suspended it for non-payment (an uncollectible invoice; `billing_suspended_at`). Each reason is recorded
whatever the status, and the status is suspended while either holds: paying lifts only the non-payment
reason, and staff's reactivation lifts only theirs unless they lift the non-payment one explicitly.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PENDING_DELETION = "pending_deletion"


@dataclass(frozen=True)
class TenantState:
    status: TenantStatus
    suspended_by_staff: bool = False
    suspended_for_non_payment: bool = False


def _settled(state: TenantState) -> TenantState:
    """The status that follows from the reasons (a tenant being erased stays so)."""
    if state.status == TenantStatus.PENDING_DELETION:
        return state
    suspended = state.suspended_by_staff or state.suspended_for_non_payment
    return replace(state, status=TenantStatus.SUSPENDED if suspended else TenantStatus.ACTIVE)


def next_state(state: TenantState, action: str) -> TenantState | None:
    """The state after `action`, or None when the action is not allowed from `state`. Repeating an action
    answers the same state, so retries are no-ops.

    - `suspend` / `reactivate`: staff's own reason. Staff cannot reactivate a tenant suspended for non-payment
      (None: it must settle or void the invoice) unless they `reactivate_lifting_non_payment`.
    - `suspend_for_non_payment` / `lift_non_payment_suspension`: billing's calls, recorded whatever the status
      (a tenant already suspended by staff owes the invoice too); the lift reactivates only a tenant suspended
      for that reason alone.
    - `erase`: from any state; nothing brings a tenant back from it.
    """
    erased = state.status == TenantStatus.PENDING_DELETION
    if action == "erase":
        return replace(state, status=TenantStatus.PENDING_DELETION)
    if action == "suspend_for_non_payment":
        return _settled(replace(state, suspended_for_non_payment=True))
    if action == "lift_non_payment_suspension":
        return _settled(replace(state, suspended_for_non_payment=False))
    if erased:
        return None
    if action == "suspend":
        return _settled(replace(state, suspended_by_staff=True))
    if action == "reactivate":
        if state.suspended_for_non_payment:
            return None
        return _settled(replace(state, suspended_by_staff=False))
    if action == "reactivate_lifting_non_payment":
        return _settled(replace(state, suspended_by_staff=False, suspended_for_non_payment=False))
    return None


def service_denial(status: TenantStatus, suspended_for_non_payment: bool) -> str | None:
    """Why a tenant in this state gets no service from other domains (entitlements), or None when it does."""
    if status == TenantStatus.PENDING_DELETION:
        return "tenant_erased"
    if suspended_for_non_payment:
        return "tenant_suspended_for_non_payment"
    if status == TenantStatus.SUSPENDED:
        return "tenant_suspended"
    return None
