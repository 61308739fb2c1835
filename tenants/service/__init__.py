"""Use cases of the tenants domain: each opens its transaction, checks, writes, and audits.

Authorization of the principal for a tenant happens in `authorize` (called by the API guards); the
database's row-level security confines every query to the tenant in context.
"""

from tenants.service._api_keys import create_api_key, list_api_keys, revoke_api_key
from tenants.service._audit import list_audit_events
from tenants.service._auth import (
    authenticate_password,
    authorize,
    check_access,
    principal_for_api_key,
    principal_for_user,
)
from tenants.service._export import export_tenant
from tenants.service._members import add_member, change_member_role, get_member, list_members, remove_member
from tenants.service._page import Page
from tenants.service._tenants import (
    change_status,
    create_tenant,
    get_tenant,
    list_tenants,
    request_erasure,
    update_tenant,
)
from tenants.service._users import create_or_update_user, find_user

__all__ = [
    "Page",
    "add_member",
    "authenticate_password",
    "authorize",
    "change_member_role",
    "change_status",
    "check_access",
    "create_api_key",
    "create_or_update_user",
    "create_tenant",
    "export_tenant",
    "find_user",
    "get_member",
    "get_tenant",
    "list_api_keys",
    "list_audit_events",
    "list_members",
    "list_tenants",
    "principal_for_api_key",
    "principal_for_user",
    "remove_member",
    "request_erasure",
    "revoke_api_key",
    "update_tenant",
]
