"""The entitlement check on the wire: its answer's body, and the fast path that serves the common request.

Machine traffic checks entitlements far more often than anything else, and nearly every check is the same
question asked again. The fast path answers such a request before Litestar routes it: an API key verified a
moment ago, a plain query, an answer in the cache, a budget with room. It spends the budgets exactly as the rate
limit middleware does and answers as the route would (same body, `RateLimit` headers, `X-Request-ID`, the route's
metrics label). Everything else goes to the full stack, which then does all of it: a JWT, a key not verified
yet, a cache miss, a parameter to validate, a CORS request, a blocked address, a refusal or Redis down. A refused
check spends nothing (see `controlplane.core.ratelimit.store`), so passing it on after a refusal spends no
budget twice.
"""

from __future__ import annotations

import re

import msgspec
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from controlplane.core.context import request_id_from
from controlplane.core.errors import RateLimited
from controlplane.core.ratelimit.limiter import RateLimiter
from controlplane.core.ratelimit.policy import LimitClass, headers
from controlplane.core.ratelimit.store import LimiterUnavailable
from plugins_registry import service
from plugins_registry.api.schemas import FEATURE_PATTERN, SLUG_PATTERN, EntitlementRead
from tenants.service import verified_api_key

PATH = "/v1/entitlements/check"
_SLUG = re.compile(SLUG_PATTERN)
_FEATURE = re.compile(FEATURE_PATTERN)
_ENCODE = msgspec.json.Encoder().encode


def entitlement_read(answer: service.EntitlementAnswer) -> EntitlementRead:
    return EntitlementRead(
        allowed=answer.allowed,
        reason=answer.reason,  # type: ignore[arg-type]  # a licensing or tenant-denial reason, as listed
        plugin=answer.plugin,
        feature=answer.feature,
        license_id=answer.license_id,
        trial=answer.trial,
        expires_at=answer.expires_at,
        limits=answer.limits,
        usage=answer.usage,
    )


def _query(raw: bytes) -> tuple[str, str | None] | None:
    """`plugin` and the optional `feature`, when the query holds exactly those, once each, valid as they stand
    (nothing percent-encoded, so no decoding can differ from Litestar's)."""
    plugin: str | None = None
    feature: str | None = None
    for pair in raw.decode("latin-1").split("&"):
        name, _, value = pair.partition("=")
        if name == "plugin" and plugin is None and _SLUG.fullmatch(value):
            plugin = value
        elif name == "feature" and feature is None and _FEATURE.fullmatch(value):
            feature = value
        else:
            return None
    return None if plugin is None else (plugin, feature)


class EntitlementFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        served = scope["type"] == "http" and scope["path"] == PATH and scope.get("method") == "GET"
        if not (served and await self._served(scope, send)):
            await self.app(scope, receive, send)

    async def _served(self, scope: Scope, send: Send) -> bool:
        query = _query(scope["query_string"])
        if query is None:
            return False
        authorization = request_id = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                request_id = value
            elif name == b"origin":  # CORS headers are the full stack's
                return False
        scheme, _, credentials = authorization.decode("latin-1").partition(" ")
        principal = verified_api_key(credentials.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            return False
        answer = service.cached_check(principal, *query)
        limiter: RateLimiter | None = getattr(scope["app"].state, "rate_limiter", None)
        if answer is None or limiter is None:
            return False
        client = scope.get("client")
        address = client[0] if client else "unknown"
        limit_headers: list[tuple[bytes, bytes]] = []
        try:
            limiter.refuse_if_blocked(address)
        except RateLimited:
            return False
        if limiter.enabled:
            buckets = await limiter.buckets(principal, LimitClass.ENTITLEMENTS, address=address, tenant_in_path=None)
            try:
                verdict = await limiter.spend(buckets)
            except LimiterUnavailable:
                return False
            if not verdict.allowed:
                return False
            limit_headers = headers(buckets, verdict)
        service.count_cached(answer)
        body = _ENCODE(entitlement_read(answer))
        scope["path_template"] = PATH  # the route's label in the request metrics
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *limit_headers,
                (b"x-request-id", request_id_from(request_id).encode()),
            ],
        }
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return True
