"""License terms, token claims and the entitlement decision. Pure: the shell loads rows and signs.

A license's `expires_at` follows what was paid for: a trial ends with the trial, a paid plugin's license
lasts to the end of the subscription's current period plus the dunning window (so a late payment within
it renews in time), and a free plugin's license does not expire while installed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from plugins_registry.pricing import Pricing

ISSUER = "controlplane"
# A token of a license without an end still carries `exp`: a plugin offline for longer asks for a fresh one.
OPEN_ENDED_TOKEN_TTL = timedelta(days=365)

Reason = Literal["granted", "not_installed", "license_revoked", "license_expired", "feature_not_included"]


@dataclass(frozen=True, slots=True)
class Terms:
    trial: bool
    trial_ends_at: datetime | None
    expires_at: datetime | None


def terms_at_install(
    pricing: Pricing, now: datetime, period_end: datetime | None, grace: timedelta, *, trial: bool = True
) -> Terms:
    """A trial when the plugin has one and `trial` allows it (a tenant gets each plugin's trial once)."""
    if pricing.trial_days and trial:
        trial_end = now + timedelta(days=pricing.trial_days)
        return Terms(True, trial_end, trial_end)
    if not pricing.is_paid:
        return Terms(False, None, None)
    assert period_end is not None, "a paid plugin is installed on a live subscription"
    return Terms(False, None, paid_through(period_end, grace))


def paid_through(period_end: datetime, grace: timedelta) -> datetime:
    return period_end + grace


def claims(license_row: dict[str, Any], issued_at: datetime) -> dict[str, Any]:
    """What a license token asserts; `exp` is the license's end, or a year for an open-ended one."""
    expires_at = license_row["expires_at"] or issued_at + OPEN_ENDED_TOKEN_TTL
    entitlements = license_row["entitlements"]
    return {
        "iss": ISSUER,
        "jti": str(license_row["id"]),
        "sub": str(license_row["tenant_id"]),
        "plugin": license_row["slug"],
        "versions": license_row["version_range"],
        "entitlements": {
            "features": entitlements["features"],
            "limits": entitlements["limits"],
            "seats": license_row["seats"],
        },
        "trial": license_row["trial"],
        "iat": int(issued_at.timestamp()),
        "exp": int(expires_at.timestamp()),
    }


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the entitlement check needs to know about one tenant's license for one plugin."""

    license_id: uuid.UUID
    status: str
    expires_at: datetime | None
    trial: bool
    features: frozenset[str]
    limits: dict[str, int]
    seats: int
    seats_used: int


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: Reason


def decide(snapshot: Snapshot | None, feature: str | None, now: datetime) -> Decision:
    """Without a feature, whether the plugin is licensed at all."""
    if snapshot is None:
        return Decision(False, "not_installed")
    if snapshot.status == "revoked":
        return Decision(False, "license_revoked")
    # Time decides too, so a license past its end is refused before the expiry task has run.
    if snapshot.status == "expired" or (snapshot.expires_at is not None and snapshot.expires_at <= now):
        return Decision(False, "license_expired")
    if feature is not None and feature not in snapshot.features:
        return Decision(False, "feature_not_included")
    return Decision(True, "granted")
