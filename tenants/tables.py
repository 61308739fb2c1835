"""Piccolo tables of the tenants domain. The DDL (with its constraints and RLS) is in piccolo_migrations."""

from piccolo.columns import JSONB, UUID, BigInt, Boolean, Bytea, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table

from controlplane.core.db import ENGINE


class User(Table, tablename="users", db=ENGINE):
    id = UUID(primary_key=True)
    email = Text()
    password_hash = Text(null=True)
    is_platform_staff = Boolean(default=False)
    status = Text(default="active")
    # Moved on by every password change (a trigger) and by "sign out everywhere": older console sessions end.
    session_generation = BigInt(default=0)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Tenant(Table, tablename="tenants", db=ENGINE):
    id = UUID(primary_key=True)
    name = Text()
    slug = Text()
    status = Text(default="active")
    billing_email = Text(null=True)  # sealed with the tenant's data key (tenants.billing_contact)
    billing_email_key_version = Integer(null=True)  # only for transit ciphertext from before the data keys
    currency = Varchar(length=3)
    reseller_id = UUID(null=True)
    reseller_since = Timestamptz(null=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    erasure_requested_at = Timestamptz(null=True, default=None)
    # Added by the billing migration.
    tax_rate_bps = Integer(default=0)
    invoice_grace_hours = Integer(default=0)
    invoice_sequence = BigInt(default=0)
    billing_suspended_at = Timestamptz(null=True, default=None)
    # Staff's suspension, apart from billing's (tenants.status).
    staff_suspended_at = Timestamptz(null=True, default=None)
    # Staff's override of the rate-limit percentage (null: the plan's applies).
    rate_limit_percent = Integer(null=True, default=None)


class TenantDataKey(Table, tablename="tenant_data_keys", db=ENGINE):
    """The tenant's data key for its personal data, wrapped by transit (`tenants.data_keys`)."""

    tenant_id = UUID(primary_key=True)
    wrapped_key = Text()
    key_version = Integer()
    created_at = Timestamptz()


class Membership(Table, tablename="memberships", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    user_id = UUID()
    role = Text()
    created_at = Timestamptz()
    updated_at = Timestamptz()


class ApiKey(Table, tablename="api_keys", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    name = Text()
    role = Text()
    secret_hash = Bytea()
    created_by = UUID(null=True)
    created_at = Timestamptz()
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class AuditEvent(Table, tablename="audit_events", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    actor_type = Text()
    actor_id = UUID(null=True)
    action = Text()
    target_type = Text()
    target_id = Text()
    before = JSONB(null=True)
    after = JSONB(null=True)
    request_id = Text(null=True)
    created_at = Timestamptz()


class IdempotencyKey(Table, tablename="idempotency_keys", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID(null=True)
    principal = Text()
    key = Text()
    method = Text()
    path = Text()
    request_hash = Text()
    state = Text()
    response_status = Integer(null=True)
    response_body = Bytea(null=True)
    response_content_type = Text(null=True)
    created_at = Timestamptz()
    expires_at = Timestamptz()


class Partner(Table, tablename="partners", db=ENGINE):
    id = UUID(primary_key=True)
    kind = Text()
    subtype = Text()
    name = Text()
    email = Text()
    stripe_account_id = Text(null=True)
    qualified = Boolean()
    qualified_until = Timestamptz(null=True)
    created_by = UUID(null=True)
    created_at = Timestamptz()


class PartnerMember(Table, tablename="partner_members", db=ENGINE):
    partner_id = UUID(primary_key=True)
    user_id = UUID()
    role = Text()
    created_at = Timestamptz()


class PartnerCheckpoint(Table, tablename="partner_checkpoints", db=ENGINE):
    partner_id = UUID(primary_key=True)
    code = Text()
    status = Text()
    evidence = JSONB()
    submitted_at = Timestamptz(null=True)
    approved_at = Timestamptz(null=True)
    expires_at = Timestamptz(null=True)
    reason = Text(null=True)
    updated_at = Timestamptz()
    expiry_error = Text(null=True, default=None)
    expiry_attempts = Integer()
    expiry_failed_at = Timestamptz(null=True, default=None)


class PartnerCheckpointHistory(Table, tablename="partner_checkpoint_history", db=ENGINE):
    id = BigInt(primary_key=True)
    partner_id = UUID()
    code = Text()
    from_status = Text()
    to_status = Text()
    actor_type = Text()
    actor_id = UUID(null=True)
    reason = Text(null=True)
    at = Timestamptz()


class Notification(Table, tablename="notifications", db=ENGINE):
    id = BigInt(primary_key=True)
    tenant_id = UUID(null=True)
    partner_id = UUID(null=True)
    event_type = Text()
    event_key = Text()
    recipient = Text()
    user_id = UUID(null=True)
    data = JSONB()
    attachment_id = UUID(null=True)
    status = Text(default="pending")
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True)
    last_error = Text(null=True)
    sent_at = Timestamptz(null=True)
    failed_at = Timestamptz(null=True)
    created_at = Timestamptz()


# Made by plugins_registry's migrations (it was the plugin outbox; see plugins_registry_2026_12_04t02_30): its
# changes go there too, since the tenants app's migrations run before that app's on a fresh database.
class WebhookOutboxEvent(Table, tablename="webhook_outbox", db=ENGINE):
    id = BigInt(primary_key=True)
    tenant_id = UUID()
    event_type = Text()
    event_key = Text(null=True)
    payload = JSONB()
    created_at = Timestamptz()
    delivered_at = Timestamptz(null=True)
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(null=True)
    last_error = Text(null=True)
    failed_at = Timestamptz(null=True)
