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
}


def next_status(current: TenantStatus, action: str) -> TenantStatus | None:
    """The status after `action`, or None when the action is not allowed from `current`."""
    return _TRANSITIONS.get(action, {}).get(current)
