"""Rows shaped for the API: a license with its current token, an install with its license."""

from __future__ import annotations

from typing import Any


def license_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "tenant_id": row["tenant_id"],
        "install_id": row["install_id"],
        "plugin": row["slug"],
        "status": row["status"],
        "trial": row["trial"],
        "trial_ends_at": row["trial_ends_at"],
        "expires_at": row["expires_at"],
        "seats": row["seats"],
        "version_range": row["version_range"],
        "entitlements": {
            "features": row["entitlements"]["features"],
            "limits": row["entitlements"]["limits"],
            "seats": row["seats"],
        },
        "token": row["token"],
        "key_id": str(row["key_version"]),
        "issued_at": row["issued_at"],
        "revoked_at": row["revoked_at"],
        "revoke_reason": row["revoke_reason"],
    }


def install_view(install: dict[str, Any], license_row: dict[str, Any], *, yanked: bool) -> dict[str, Any]:
    return {
        "id": install["id"],
        "tenant_id": install["tenant_id"],
        "plugin": install["slug"],
        "version": install["version"],
        "previous_version": install["previous_version"],
        "version_yanked": yanked,
        "seats": install["seats"],
        "status": install["status"],
        "installed_at": install["installed_at"],
        "updated_at": install["updated_at"],
        "license": license_view(license_row),
    }
