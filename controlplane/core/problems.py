"""The one table from error to HTTP response: RFC 9457 problem+json with a stable `code`.

Domain errors, Litestar's own HTTP errors and anything unexpected all leave through here, so a client
always gets the same shape and never a stack trace, SQL or a secret.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.types import ExceptionHandlersMap
from msgspec import UNSET, Struct, UnsetType

from controlplane.core import metrics
from controlplane.core.errors import (
    BadRequest,
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
)

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://controlplane.dev/problems/"
log = logging.getLogger("controlplane.errors")

# Most specific first: a subclass listed later would never be reached.
DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (BadRequest, 400),
    (InvalidInput, 422),
    (Unauthenticated, 401),
    (PaymentRequired, 402),
    (PermissionDenied, 403),
    (NotFound, 404),
    (Conflict, 409),
    (RateLimited, 429),
    (ServiceUnavailable, 503),
)

# Codes for Litestar's own errors, by status.
HTTP_STATUS_CODE: dict[int, str] = {
    400: "bad_request",
    401: "unauthenticated",
    402: "payment_required",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "rate_limited",
    503: "service_unavailable",
}


# What each documented error status means, in the OpenAPI document.
PROBLEM_DESCRIPTIONS: dict[int, str] = {
    400: "The parameters, the body or the Idempotency-Key header are malformed",
    401: "No bearer token or API key, or it is invalid, expired or revoked",
    402: "The tenant is suspended for an unpaid invoice; see required_actions",
    403: "The principal's role, or the tenant's status, does not allow this",
    404: "Not found, or not visible to this principal",
    409: "The request conflicts with the current state, or its Idempotency-Key is still in use",
    413: "The request body is too large",
    422: "A value is not valid here, or the Idempotency-Key was used with another request",
    429: "A rate limit is spent (see the RateLimit header) or too many attempts; retry after Retry-After's seconds",
    503: "A service the control plane depends on is unavailable; retry after the Retry-After header's seconds",
}


class Problem(Struct, kw_only=True):
    """RFC 9457 problem details: the body of every error response. Clients match on `code`."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    errors: list[dict[str, Any]] | UnsetType = UNSET  # validation errors: which fields failed and why
    checks: dict[str, str] | UnsetType = UNSET  # readiness: each dependency's result
    retry_after_seconds: int | UnsetType = UNSET  # rate limits and outages: also sent as Retry-After
    required_actions: list[str] | UnsetType = UNSET  # what unblocks the request (e.g. pay_invoice)


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """`responses=` for a route handler: the problem+json answers it can give, documented in OpenAPI. Every
    route may be rate limited (429) and may meet a dependency's outage (503)."""
    return {
        status: ResponseSpec(
            Problem,
            description=PROBLEM_DESCRIPTIONS.get(status) or HTTPStatus(status).phrase,
            media_type=PROBLEM_JSON,
            generate_examples=False,
        )
        for status in sorted({*statuses, 429, 503})
    }


def status_for(error: DomainError) -> int:
    for error_type, status in DOMAIN_STATUS:
        if isinstance(error, error_type):
            return status
    return 400


def problem(status: int, code: str, detail: str, *, title: str | None = None, **extra: Any) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def domain_error_handler(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    extra = exc.extra
    if isinstance(exc, ServiceUnavailable):
        # An outage of a dependency: a named 503 the client may retry (Retry-After), counted by dependency.
        metrics.DEPENDENCY_UNAVAILABLE_TOTAL.labels(dependency=exc.dependency).inc()
        extra = {"retry_after_seconds": exc.retry_after_seconds, **extra}
    response = problem(status_for(exc), exc.code, exc.detail, title=exc.title, **extra)
    if isinstance(exc, RateLimited | ServiceUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


def validation_error_handler(_: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    # Litestar's `extra` lists which fields failed and why, never the stored data.
    errors = exc.extra if isinstance(exc.extra, list) else []
    status = exc.status_code
    return problem(status, "validation_error", exc.detail or "The request body is not valid", errors=errors)


def http_error_handler(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    code = HTTP_STATUS_CODE.get(status, "http_error")
    if status >= 500:
        log.error("http error %s: %s", status, exc.detail)
        return problem(status, code, HTTPStatus(status).phrase)
    headers = getattr(exc, "headers", None) or {}
    response = problem(status, code, exc.detail or HTTPStatus(status).phrase)
    response.headers.update(headers)
    return response


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.scope.get("path"), exc_info=exc)
    return problem(500, "internal_error", "An unexpected error occurred; it has been logged.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    DomainError: domain_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}
