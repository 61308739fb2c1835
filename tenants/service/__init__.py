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
    tenant_for_resource,
)
from tenants.service._billing_profiles import get_billing_profile, put_billing_profile, rotate_pii_key
from tenants.service._export import export_tenant
from tenants.service._members import add_member, change_member_role, get_member, list_members, remove_member
from tenants.service._page import Page
from tenants.service._partners import (
    add_member as add_partner_member,
)
from tenants.service._partners import (
    approve_checkpoint,
    checkpoint_history,
    create_partner,
    ensure_partner_access,
    ensure_partner_kind,
    ensure_qualified,
    expire_checkpoints,
    pending_checkpoints,
    qualification,
    reject_checkpoint,
    reseller_tenants,
    submit_checkpoint,
)
from tenants.service._tenants import (
    STATUS_TOPIC,
    change_status,
    create_tenant,
    get_tenant,
    lift_non_payment_suspension,
    list_tenants,
    move_tenant,
    request_erasure,
    service_denial_of,
    suspend_for_non_payment,
    update_tenant,
)
from tenants.service._users import create_or_update_user, find_user
from tenants.service._webhooks import (
    get_webhook_endpoint,
    remove_webhook_endpoint,
    rotate_webhook_secret,
    set_webhook_endpoint,
    webhook_secret_status,
)

__all__ = [
    "STATUS_TOPIC",
    "Page",
    "add_member",
    "add_partner_member",
    "approve_checkpoint",
    "authenticate_password",
    "authorize",
    "change_member_role",
    "change_status",
    "check_access",
    "checkpoint_history",
    "create_api_key",
    "create_or_update_user",
    "create_partner",
    "create_tenant",
    "ensure_partner_access",
    "ensure_partner_kind",
    "ensure_qualified",
    "expire_checkpoints",
    "export_tenant",
    "find_user",
    "get_billing_profile",
    "get_member",
    "get_tenant",
    "get_webhook_endpoint",
    "lift_non_payment_suspension",
    "list_api_keys",
    "list_audit_events",
    "list_members",
    "list_tenants",
    "move_tenant",
    "pending_checkpoints",
    "principal_for_api_key",
    "principal_for_user",
    "put_billing_profile",
    "qualification",
    "reject_checkpoint",
    "remove_member",
    "remove_webhook_endpoint",
    "request_erasure",
    "reseller_tenants",
    "revoke_api_key",
    "rotate_pii_key",
    "rotate_webhook_secret",
    "service_denial_of",
    "set_webhook_endpoint",
    "submit_checkpoint",
    "suspend_for_non_payment",
    "tenant_for_resource",
    "update_tenant",
    "webhook_secret_status",
]
