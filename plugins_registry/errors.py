"""Errors of the plugin registry. `controlplane.core.problems` maps each base class to its HTTP status."""

from controlplane.core.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
)


class RegistryInvalid(InvalidInput):
    code = "invalid_registry_input"
    title = "The plugin registry input is not valid"


class InvalidVersion(RegistryInvalid):
    code = "invalid_version"
    title = "The version is not a semantic version"


class InvalidVersionRange(RegistryInvalid):
    code = "invalid_version_range"
    title = "The version range is not valid"


class InvalidPricing(RegistryInvalid):
    code = "invalid_pricing"
    title = "The plugin's pricing is not valid"


class InvalidSeats(RegistryInvalid):
    code = "invalid_seats"
    title = "The number of seats is not allowed"


class PublisherNotFound(NotFound):
    code = "publisher_not_found"
    title = "No publisher has this id"


class PluginNotFound(NotFound):
    code = "plugin_not_found"
    title = "No plugin has this slug"


class VersionNotFound(NotFound):
    code = "version_not_found"
    title = "The plugin has no such version"


class InstallNotFound(NotFound):
    code = "install_not_found"
    title = "The plugin is not installed for this tenant"


class LicenseNotFound(NotFound):
    code = "license_not_found"
    title = "No license has this id"


class ActivationNotFound(NotFound):
    code = "activation_not_found"
    title = "No activation has this id"


class SlugTaken(Conflict):
    code = "plugin_slug_taken"
    title = "Another plugin has this slug"


class VersionExists(Conflict):
    code = "version_exists"
    title = "This version is already published with different contents"


class VersionYanked(Conflict):
    code = "version_yanked"
    title = "The version was yanked and cannot be newly installed"


class NoInstallableVersion(Conflict):
    code = "no_installable_version"
    title = "The plugin has no stable version that is not yanked"


class AlreadyInstalled(Conflict):
    code = "plugin_already_installed"
    title = "The plugin is already installed at another version"


class NothingToRollBack(Conflict):
    code = "nothing_to_roll_back"
    title = "The install has no previous version to return to"


class PublisherInactive(Conflict):
    code = "publisher_inactive"
    title = "The publisher is not active"


class SubscriptionRequired(Conflict):
    code = "subscription_required"
    title = "A paid plugin needs a live subscription to bill it"


class LicenseNotActive(Conflict):
    code = "license_not_active"
    title = "The license is revoked or expired"


class SeatsExhausted(Conflict):
    code = "seats_exhausted"
    title = "Every seat of the license is in use"


class ActivationRateLimited(RateLimited):
    code = "activation_rate_limited"
    title = "Too many activations of this license; try again later"


class ApiKeyRequired(PermissionDenied):
    code = "api_key_required"
    title = "The entitlement check is made with a tenant API key"


class SigningUnavailable(ServiceUnavailable):
    code = "license_signing_unavailable"
    title = "License signing is unavailable"
    dependency = "openbao"


class SeatsInUse(Conflict):
    code = "seats_in_use"
    title = "More seats are in use than the new number; release activations first"


class InvalidMonth(RegistryInvalid):
    code = "invalid_month"
    title = "The month is not a calendar month (YYYY-MM)"


class MonthInFuture(RegistryInvalid):
    code = "month_in_future"
    title = "The month has not begun yet"


class TokenInvalid(Exception):
    """A license token must not be trusted; `reason` says why. Raised where a token is verified offline
    (`plugins_registry.license_token.verify`), never answered over HTTP, so not a `DomainError`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
