"""The tenant status machine: pure."""

from __future__ import annotations

import enum


class TenantStatus(enum.StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    PENDING_DELETION = "pending_deletion"


# action -> {from: to}; a status already at the target maps to itself, so retries are no-ops.
_TRANSITIONS: dict[str, dict[TenantStatus, TenantStatus]] = {
    "suspend": {TenantStatus.ACTIVE: TenantStatus.SUSPENDED, TenantStatus.SUSPENDED: TenantStatus.SUSPENDED},
    "reactivate": {TenantStatus.SUSPENDED: TenantStatus.ACTIVE, TenantStatus.ACTIVE: TenantStatus.ACTIVE},
    # Billing's calls: dunning suspends an active tenant; paying lifts that suspension (and only that one).
    "suspend_for_non_payment": {TenantStatus.ACTIVE: TenantStatus.SUSPENDED},
    "lift_non_payment_suspension": {TenantStatus.SUSPENDED: TenantStatus.ACTIVE},
    "erase": {
        TenantStatus.ACTIVE: TenantStatus.PENDING_DELETION,
        TenantStatus.SUSPENDED: TenantStatus.PENDING_DELETION,
        TenantStatus.PENDING_DELETION: TenantStatus.PENDING_DELETION,
    },
}


def next_status(current: TenantStatus, action: str) -> TenantStatus | None:
    """The status after `action`, or None when the action is not allowed from `current`."""
    return _TRANSITIONS.get(action, {}).get(current)


def service_denial(status: TenantStatus, suspended_for_non_payment: bool) -> str | None:
    """Why a tenant in this state gets no service from other domains (entitlements), or None when it does."""
    if status == TenantStatus.PENDING_DELETION:
        return "tenant_erased"
    if suspended_for_non_payment:
        return "tenant_suspended_for_non_payment"
    if status == TenantStatus.SUSPENDED:
        return "tenant_suspended"
    return None
