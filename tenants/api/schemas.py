"""API shapes of the tenants domain. Input structs reject unknown fields."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from controlplane.core.web import ONE_LINE, Currency, Email, Input, Name
from tenants.service import MAX_RATE_LIMIT_PERCENT, MIN_RATE_LIMIT_PERCENT

Slug = Annotated[str, Meta(min_length=1, max_length=63, pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
TenantRole = Literal["tenant_admin", "tenant_member", "billing_viewer"]
Password = Annotated[str, Meta(min_length=1, max_length=1024)]
TaxRateBps = Annotated[int, Meta(ge=0, le=10_000, description="Tax rate in basis points, exclusive (2000 = 20 %)")]
GraceHours = Annotated[int, Meta(ge=0, le=720, description="Hours an invoice stays a draft before it is finalized")]


class TokenRequest(Input):
    email: Annotated[str, Meta(min_length=1, max_length=320, pattern=r"^[^\x00-\x1f\x7f]+$")]
    password: Password


class TokenRead(Struct, kw_only=True):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int


class TenantCreate(Input):
    """`currency`, `tax_rate_bps` and `invoice_grace_hours` are commercial terms: staff only. Left out, the
    currency is the reseller agreement's (a reseller's admin always leaves them out); tax and grace are 0."""

    name: Name
    slug: Slug
    currency: Currency | UnsetType = UNSET
    billing_email: Email | None = None
    reseller_id: uuid.UUID | None = None
    tax_rate_bps: TaxRateBps | UnsetType = UNSET
    invoice_grace_hours: GraceHours | UnsetType = UNSET


class TenantUpdate(Input):
    """`currency`, `tax_rate_bps` and `invoice_grace_hours` are staff only (403 `commercial_terms_staff_only`);
    the currency cannot change while the tenant has a live subscription or unpaid invoices (409)."""

    name: Name | UnsetType = UNSET
    billing_email: Email | UnsetType | None = UNSET
    currency: Currency | UnsetType = UNSET
    tax_rate_bps: TaxRateBps | UnsetType = UNSET
    invoice_grace_hours: GraceHours | UnsetType = UNSET


class TenantRead(Struct, kw_only=True):
    id: uuid.UUID
    name: str
    slug: str
    status: Literal["active", "suspended", "pending_deletion"]
    billing_email: str | None
    currency: str
    reseller_id: uuid.UUID | None
    tax_rate_bps: int
    invoice_grace_hours: int
    created_at: datetime
    updated_at: datetime


RateLimitPercent = Annotated[
    int,
    Meta(
        ge=MIN_RATE_LIMIT_PERCENT,
        le=MAX_RATE_LIMIT_PERCENT,
        description="Scales the tenant's API rate limits: 100 = the defaults, 400 = four times, 50 = half",
    ),
]


class RateLimitOverride(Input):
    """Staff's override of the tenant's rate-limit percentage; null removes it (the plan's applies again)."""

    rate_limit_percent: RateLimitPercent | None


class RateLimitOverrideRead(Struct, kw_only=True):
    tenant_id: uuid.UUID
    rate_limit_percent: Annotated[int | None, Meta(description="Staff's override; null: the plan's applies")]


class TenantMemberCreate(Input):
    email: Email
    role: TenantRole


class TenantMemberUpdate(Input):
    role: TenantRole


class TenantMemberRead(Struct, kw_only=True):
    user_id: uuid.UUID
    tenant_id: uuid.UUID
    email: str
    role: str
    created_at: datetime
    updated_at: datetime


class ApiKeyCreate(Input):
    name: Name
    role: TenantRole = "tenant_member"


class ApiKeyRead(Struct, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    role: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyRead, kw_only=True):
    # The whole key, shown this once; an Idempotency-Key replay of the creation leaves it out.
    secret: Annotated[str, Meta(description="The full key, shown only in the first answer")] | UnsetType = UNSET


class AuditEventRead(Struct, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    actor_type: str
    actor_id: uuid.UUID | None
    action: str
    target_type: str
    target_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime


class TenantPage(Struct, kw_only=True):
    items: list[TenantRead]
    next_cursor: str | None


class TenantMemberPage(Struct, kw_only=True):
    items: list[TenantMemberRead]
    next_cursor: str | None


class ApiKeyPage(Struct, kw_only=True):
    items: list[ApiKeyRead]
    next_cursor: str | None


class AuditEventPage(Struct, kw_only=True):
    items: list[AuditEventRead]
    next_cursor: str | None


Line = Annotated[str, Meta(min_length=1, max_length=200, pattern=ONE_LINE)]
Country = Annotated[str, Meta(min_length=2, max_length=2, pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2")]
TaxId = Annotated[str, Meta(min_length=2, max_length=64, pattern=r"^[A-Za-z0-9 .\-/]+$")]


class Address(Input):
    line1: Line
    city: Line
    country: Country
    line2: Line | None = None
    postal_code: Annotated[str, Meta(min_length=1, max_length=20, pattern=r"^[A-Za-z0-9 \-]+$")] | None = None
    region: Line | None = None


class BillingProfile(Input):
    """The whole profile: a field left out is cleared (PUT replaces)."""

    contact_name: Name | None = None
    contact_email: Email | None = None
    tax_id: TaxId | None = None
    address: Address | None = None


class BillingProfileRead(Struct, kw_only=True):
    contact_name: str | None
    contact_email: str | None
    tax_id: str | None
    address: Address | None
    updated_at: datetime | None


class WebhookSecretRotated(Struct, kw_only=True):
    rotated_at: datetime
    previous_valid_until: datetime | None
    # Shown this once; an Idempotency-Key replay of the rotation leaves it out.
    secret: Annotated[str, Meta(description="The new signing secret, shown only in the first answer")] | UnsetType = (
        UNSET
    )


class WebhookEndpoint(Input):
    url: Annotated[str, Meta(min_length=8, max_length=2000, pattern=r"^https?://[^\s\x00-\x1f\x7f]+$")]


class WebhookEndpointRead(Struct, kw_only=True):
    url: str
    created_at: datetime
    updated_at: datetime


class WebhookSecretStatus(Struct, kw_only=True):
    rotated_at: datetime
    previous_valid_until: datetime | None
    signatures: Annotated[int, Meta(description="Signatures each delivery carries now (2 during a rotation window)")]


class WebhookEventRead(Struct, kw_only=True):
    id: str
    type: str
    status: Literal["pending", "delivered", "failed"]
    created_at: datetime
    attempts: int
    delivered_at: datetime | None
    next_attempt_at: Annotated[datetime | None, Meta(description="When it is tried next, while pending")]
    last_error: str | None


class WebhookEventList(Struct, kw_only=True):
    items: list[WebhookEventRead]
