"""API shapes of the plugin registry. Input structs reject unknown fields; money is integer minor units
(a metered plugin's unit price may be a decimal string)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from billing import limits
from controlplane.core.web import Currency, Email, Input, Name

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
FEATURE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
PluginSlug = Annotated[str, Meta(min_length=2, max_length=63, pattern=SLUG_PATTERN)]
VersionText = Annotated[str, Meta(min_length=5, max_length=256, description="A semantic version, e.g. 1.4.0-rc.1")]
Seats = Annotated[int, Meta(ge=1, le=100_000)]  # at most billing.limits.MAX_SEATS
# A plugin's price becomes an add-on charge: at most billing.limits.MAX_UNIT_PRICE_MINOR (10^9), so its price
# x seats stays within an invoice line. As a decimal string: up to nine integer digits and twelve places.
_PRICE_DIGITS = len(str(limits.MAX_UNIT_PRICE_MINOR)) - 1
PriceMinor = (
    Annotated[int, Meta(ge=0, le=limits.MAX_UNIT_PRICE_MINOR)]
    | Annotated[
        str,
        Meta(max_length=32, pattern=rf"^[0-9]{{1,{_PRICE_DIGITS}}}(\.[0-9]{{1,{limits.MAX_PLACES}}})?$"),
    ]
)
Text = Annotated[str, Meta(max_length=10_000)]
Fingerprint = Annotated[str, Meta(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
Label = Annotated[str, Meta(max_length=200, pattern=r"^[^\x00-\x1f\x7f]*$")]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
FeatureName = Annotated[str, Meta(pattern=FEATURE_PATTERN)]


class PublisherCreate(Input):
    name: Name
    email: Email
    # A partner of kind publisher: then its versions may be published only while it is qualified.
    partner_id: uuid.UUID | None = None


class PublisherRead(Struct):
    id: uuid.UUID
    name: str
    email: str
    status: str
    partner_id: uuid.UUID | None
    created_at: datetime


class PublisherPage(Struct):
    items: list[PublisherRead]
    next_cursor: str | None


class Pricing(Input):
    model: Literal["free", "flat", "per_seat", "metered"]
    amount_minor: Annotated[
        PriceMinor, Meta(description="Minor units; a metered unit price may be a decimal string")
    ] = 0
    currency: Currency | None = None
    metric_code: Annotated[str, Meta(min_length=1, max_length=63)] | None = None
    trial_days: Annotated[int, Meta(ge=0, le=365)] = 0


class Entitlements(Input):
    features: Annotated[list[FeatureName], Meta(max_length=100)] = []
    limits: Annotated[dict[FeatureName, Annotated[int, Meta(ge=0, le=2**53)]], Meta(max_length=50)] = {}
    seats: Seats = 1


class PluginCreate(Input):
    slug: PluginSlug
    name: Name
    publisher_id: uuid.UUID
    pricing: Pricing
    description: Text = ""
    entitlements: Entitlements | None = None


class PricingRead(Struct):
    model: str
    amount_minor: str
    currency: str | None
    metric_code: str | None
    trial_days: int


class EntitlementsRead(Struct):
    features: list[str]
    limits: dict[str, int]
    seats: int


class PluginRead(Struct):
    id: uuid.UUID
    slug: str
    name: str
    publisher_id: uuid.UUID
    description: str
    pricing: PricingRead
    entitlements: EntitlementsRead
    created_at: datetime


class PluginPage(Struct):
    items: list[PluginRead]
    next_cursor: str | None


class VersionCreate(Input):
    version: VersionText
    min_platform_version: VersionText
    artifact_sha256: Sha256
    changelog: Text = ""


class VersionYank(Input):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class VersionRead(Struct):
    id: uuid.UUID
    plugin_id: uuid.UUID
    version: str
    min_platform_version: str
    changelog: str
    artifact_sha256: str
    yanked: bool
    yanked_at: datetime | None
    yank_reason: str | None
    created_at: datetime


class VersionList(Struct):
    items: list[VersionRead]


class InstallCreate(Input):
    slug: PluginSlug
    version: VersionText | None = None
    seats: Seats | None = None


class InstallUpdate(Input):
    version: VersionText | UnsetType = UNSET
    seats: Seats | UnsetType = UNSET


class LicenseRead(Struct):
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
    entitlements: EntitlementsRead
    token: Annotated[str, Meta(description="A compact JWS (EdDSA); verify it with the keys of /v1/licensing/keys")]
    key_id: str
    issued_at: datetime
    revoked_at: datetime | None
    revoke_reason: str | None


class LicensePage(Struct):
    items: list[LicenseRead]
    next_cursor: str | None


class InstallRead(Struct):
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
    license: LicenseRead


class InstallPage(Struct):
    items: list[InstallRead]
    next_cursor: str | None


class ActivationCreate(Input):
    fingerprint: Fingerprint
    label: Label = ""


class ActivationRead(Struct):
    id: uuid.UUID
    license_id: uuid.UUID
    fingerprint: str
    label: str
    last_heartbeat_at: datetime
    created_at: datetime


class ActivationList(Struct):
    items: list[ActivationRead]


class EntitlementRead(Struct):
    allowed: bool
    reason: Literal[
        "granted",
        "not_installed",
        "license_revoked",
        "license_expired",
        "feature_not_included",
        "tenant_suspended",
        "tenant_suspended_for_non_payment",
        "tenant_erased",
    ]
    plugin: str
    feature: str | None
    license_id: uuid.UUID | None
    trial: bool | None
    expires_at: datetime | None
    limits: dict[str, int]
    usage: dict[str, int]


class Jwk(Struct):
    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class Jwks(Struct):
    keys: list[Jwk]


class RevokedLicense(Struct):
    id: uuid.UUID
    revoked_at: datetime
    expires_at: datetime | None


class RevocationList(Struct):
    items: list[RevokedLicense]
    next_after: Annotated[
        datetime | None,
        Meta(description="Deprecated: the last item's time; revocations at that same time may follow. Use next_cursor"),
    ]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page; null on the last page")]


# A decimal string of four places, rounded half up; null when there is nothing to divide by.
Rate = Annotated[str, Meta(pattern=r"^[0-9]+\.[0-9]{4}$")] | None


class PluginAdoptionFigures(Struct):
    slug: str
    plugin_id: uuid.UUID
    installed_tenants: Annotated[int, Meta(description="Tenants with the plugin installed at the month's end")]
    installs: Annotated[int, Meta(description="Installs in the month (a reinstall counts again)")]
    uninstalls: int
    trials_started: int
    trials_converted: int


class PluginAdoptionRead(Struct):
    month: Annotated[str, Meta(description="YYYY-MM (UTC); the current month ends now")]
    adoption_rate: Annotated[
        Rate, Meta(description="tenants_with_plugins / active_tenants, four places rounded half up; null without any")
    ]
    tenants_with_plugins: Annotated[
        int, Meta(description="Active tenants with at least one plugin installed at the month's end")
    ]
    active_tenants: Annotated[
        int,
        Meta(
            description="Tenants created before the month's end that are active now (no past status is kept, "
            "so a tenant suspended or erased since is left out)"
        ),
    ]
    plugins: list[PluginAdoptionFigures]
