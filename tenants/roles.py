"""Roles and what each may do: pure rules, checked in guards and services alike."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    PLATFORM_STAFF = "platform_staff"
    TENANT_ADMIN = "tenant_admin"
    TENANT_MEMBER = "tenant_member"
    BILLING_VIEWER = "billing_viewer"
    # The partners work gives these a reseller context; the tenants policy already has its shape.
    RESELLER_ADMIN = "reseller_admin"
    RESELLER_VIEWER = "reseller_viewer"


TENANT_ROLES = (Role.TENANT_ADMIN, Role.TENANT_MEMBER, Role.BILLING_VIEWER)


class Permission(enum.StrEnum):
    READ_TENANT = "read_tenant"
    MANAGE_TENANT = "manage_tenant"
    MANAGE_MEMBERS = "manage_members"
    READ_MEMBERS = "read_members"
    MANAGE_API_KEYS = "manage_api_keys"
    READ_AUDIT = "read_audit"
    READ_BILLING = "read_billing"
    MANAGE_BILLING = "manage_billing"
    REPORT_USAGE = "report_usage"
    READ_PLUGINS = "read_plugins"
    MANAGE_PLUGINS = "manage_plugins"
    # What a running plugin does with the tenant's API key: check entitlements, hold seats.
    USE_PLUGINS = "use_plugins"
    STAFF_ONLY = "staff_only"


# What a tenant suspended for non-payment may still do: see and settle its bills.
BILLING_PERMISSIONS = frozenset({Permission.READ_BILLING, Permission.MANAGE_BILLING})

GRANTS: dict[Role, frozenset[Permission]] = {
    Role.TENANT_ADMIN: frozenset(
        {
            Permission.READ_TENANT,
            Permission.MANAGE_TENANT,
            Permission.MANAGE_MEMBERS,
            Permission.READ_MEMBERS,
            Permission.MANAGE_API_KEYS,
            Permission.READ_AUDIT,
            Permission.READ_BILLING,
            Permission.MANAGE_BILLING,
            Permission.REPORT_USAGE,
            Permission.READ_PLUGINS,
            Permission.MANAGE_PLUGINS,
            Permission.USE_PLUGINS,
        }
    ),
    # Members' API keys meter their product's usage; they see no invoices.
    Role.TENANT_MEMBER: frozenset(
        {
            Permission.READ_TENANT,
            Permission.READ_MEMBERS,
            Permission.REPORT_USAGE,
            Permission.READ_PLUGINS,
            Permission.USE_PLUGINS,
        }
    ),
    Role.BILLING_VIEWER: frozenset({Permission.READ_TENANT, Permission.READ_BILLING}),
}


def role_allows(role: str | None, permission: Permission) -> bool:
    if role is None or permission is Permission.STAFF_ONLY:
        return False
    # A role's text finds its StrEnum member (same hash and equality); an unknown text finds nothing.
    return permission in GRANTS.get(role, frozenset())  # type: ignore[call-overload]


def may_grant(granter_role: str | None, granted_role: str) -> bool:
    """Nobody hands out more than they hold; admins may grant any tenant role."""
    return granter_role == Role.TENANT_ADMIN and granted_role in TENANT_ROLES
