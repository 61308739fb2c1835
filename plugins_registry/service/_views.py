"""Views several use cases answer with: a plugin's or license's entitlements, a license with its current
token, an install with its license."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class EntitlementsView:
    """What a plugin grants (or a license was issued with): features, named limits and the seat limit."""

    features: tuple[str, ...]
    limits: dict[str, int]
    seats: int


@dataclass(frozen=True, slots=True)
class LicenseView:
    id: uuid.UUID
    tenant_id: uuid.UUID
    install_id: uuid.UUID
    plugin: str
    status: str
    trial: bool
    trial_ends_at: datetime | None
    expires_at: datetime | None
    seats: int
    version_range: str
    entitlements: EntitlementsView
    token: str
    key_id: str
    issued_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


@dataclass(frozen=True, slots=True)
class InstallView:
    id: uuid.UUID
    tenant_id: uuid.UUID
    plugin: str
    version: str
    previous_version: str | None
    version_yanked: bool
    seats: int
    status: str
    installed_at: datetime
    updated_at: datetime
    license: LicenseView


def entitlements_view(raw: dict[str, Any], seats: int) -> EntitlementsView:
    """The view of an `entitlements` JSON column; `seats` is the license's (or the plugin's) seat limit."""
    return EntitlementsView(tuple(raw["features"]), dict(raw["limits"]), seats)


def license_view(row: dict[str, Any]) -> LicenseView:
    return LicenseView(
        id=row["id"],
        tenant_id=row["tenant_id"],
        install_id=row["install_id"],
        plugin=row["slug"],
        status=row["status"],
        trial=row["trial"],
        trial_ends_at=row["trial_ends_at"],
        expires_at=row["expires_at"],
        seats=row["seats"],
        version_range=row["version_range"],
        entitlements=entitlements_view(row["entitlements"], row["seats"]),
        token=row["token"],
        key_id=str(row["key_version"]),
        issued_at=row["issued_at"],
        revoked_at=row["revoked_at"],
        revoke_reason=row["revoke_reason"],
    )


def install_view(install: dict[str, Any], license_row: dict[str, Any], *, yanked: bool) -> InstallView:
    return InstallView(
        id=install["id"],
        tenant_id=install["tenant_id"],
        plugin=install["slug"],
        version=install["version"],
        previous_version=install["previous_version"],
        version_yanked=yanked,
        seats=install["seats"],
        status=install["status"],
        installed_at=install["installed_at"],
        updated_at=install["updated_at"],
        license=license_view(license_row),
    )
