"""The root of every domain's error tree.

Services raise these; only `controlplane.core.problems` turns them into HTTP. Each concrete error has a
stable `code` that clients may match on; the message is for people and never holds secrets or SQL.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "domain_error"
    title: ClassVar[str] = "The request could not be completed"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)


class BadRequest(DomainError):
    code = "bad_request"
    title = "The request is malformed"


class InvalidInput(DomainError):
    code = "invalid_input"
    title = "The request is not valid"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    title = "Authentication is required"


class PaymentRequired(DomainError):
    code = "payment_required"
    title = "Payment is required before this can be used"


class PermissionDenied(DomainError):
    code = "permission_denied"
    title = "You may not do this"


class StaffOnly(PermissionDenied):
    code = "staff_only"
    title = "Only platform staff may do this"


class NotFound(DomainError):
    code = "not_found"
    title = "Not found"


class Conflict(DomainError):
    code = "conflict"
    title = "The request conflicts with the current state"


class RateLimited(DomainError):
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after_seconds: int) -> None:
        super().__init__(detail, retry_after_seconds=retry_after_seconds)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailable(DomainError):
    code = "service_unavailable"
    title = "A service the control plane depends on is unavailable"
    # Which one (a bounded metric label: controlplane_dependency_unavailable_total{dependency}), and when to
    # try again (the Retry-After header).
    dependency: ClassVar[str] = "other"
    retry_after_seconds: ClassVar[int] = 5


class DatabaseUnavailable(ServiceUnavailable):
    """PostgreSQL cannot be reached, refuses connections, or dropped the connection mid-request."""

    code = "database_unavailable"
    title = "The database is unavailable"
    dependency = "database"


class SecretsUnavailable(ServiceUnavailable):
    code = "secrets_unavailable"
    title = "The secret store is unavailable"
    dependency = "openbao"


class OpenBaoUnavailable(SecretsUnavailable):
    """OpenBao cannot be reached, times out, is sealed or answers 5xx: an outage, not a refusal."""

    code = "openbao_unavailable"
    title = "OpenBao is unavailable"


class SecretNotFound(NotFound):
    code = "secret_not_found"
    title = "A required secret is missing"


class SecretConflict(Conflict):
    code = "secret_conflict"
    title = "The secret changed while it was being written"


class StaticRoleMismatch(SecretsUnavailable):
    code = "db_static_role_mismatch"
    title = "OpenBao's database static role is for another database user"


class DateOutOfRange(BadRequest):
    code = "date_out_of_range"
    title = "The date has no equivalent in UTC between the years 1 and 9999"


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"
    title = "The page cursor is not valid"
