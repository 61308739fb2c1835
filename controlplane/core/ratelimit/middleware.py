"""The rate limit on every request: after authentication (it needs the principal), before idempotency and the
handler (a refused request claims and writes nothing).

A route may declare its class (`opt={"rate_limit": "entitlements"}`); usage ingestion declares `"ingestion"`:
its request spends one unit here like every other (so malformed, oversized and replayed batches are limited
too), and its handler the rest once it knows how many events the batch holds (`charge`), so a batch spends
one unit per event. Every limited response carries `RateLimit-Policy` and `RateLimit`; a refusal is a 429 problem with
`Retry-After`. Without Redis, GET and HEAD are served unlimited and every other method is refused with a 503
`rate_limiter_unavailable`, both counted.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from typing import Any

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import RateLimited
from controlplane.core.problems import problem
from controlplane.core.ratelimit.limiter import RateLimiter, RateLimiterUnavailable, exhausted
from controlplane.core.ratelimit.policy import Buckets, Cost, LimitClass, Subject, Verdict, headers, limit_class
from controlplane.core.ratelimit.store import LimiterUnavailable

STATE_KEY = "rate_limit_charge"
_SAFE_METHODS = frozenset({"GET", "HEAD"})


@dataclass(slots=True)
class _Spent:
    """What a request spent, for its response's headers."""

    buckets: Buckets
    verdict: Verdict | None = None


def _retry_after(verdict: Verdict) -> int:
    return max(1, math.ceil(verdict.retry_after_seconds))


def _route(scope: Scope) -> str:
    return scope.get("path_template") or "unmatched"


async def _spend(limiter: RateLimiter, scope: Scope, limit: LimitClass, buckets: Buckets, cost: Cost) -> Verdict:
    """Spend the buckets: their verdict (a refusal counted, and its tenant's streak recorded), else
    `LimiterUnavailable` for a read or the 503 for anything else."""
    try:
        verdict = await limiter.spend(buckets, cost)
    except LimiterUnavailable:
        if scope.get("method", "GET") in _SAFE_METHODS:
            metrics.RATE_LIMIT_UNAVAILABLE_TOTAL.labels(outcome="served").inc()
            raise
        metrics.RATE_LIMIT_UNAVAILABLE_TOTAL.labels(outcome="refused").inc()
        raise RateLimiterUnavailable("The rate limiter cannot be reached; retry shortly") from None
    if not verdict.allowed:
        spent = exhausted(buckets, verdict, cost)
        metrics.RATE_LIMIT_REFUSALS_TOTAL.labels(_route(scope), limit.value, spent.subject.value).inc()
        if limiter.streaks is not None and spent.tenant_id is not None:  # a key's or a tenant's budget
            await limiter.streaks.refused(spent.tenant_id)
    return verdict


def _refusal(verdict: Verdict, subject: Subject) -> RateLimited:
    wait = _retry_after(verdict)
    return RateLimited(
        f"The {subject.value.replace('_', ' ')}'s rate limit is spent; retry in {wait} s", retry_after_seconds=wait
    )


async def charge(scope: Scope, cost: int, tenant_id: uuid.UUID | None = None) -> None:
    """Bring what a route that declared itself charged by its handler (usage ingestion) spends to `cost` units of
    each budget: its request already spent one at the door, like every request. `tenant_id` is the tenant the
    request acts in when its path does not name it (a usage batch's): a member acting in it spends its budget
    too, `cost` units of it (the door could not know it)."""
    spent: _Spent | None = scope.get("state", {}).get(STATE_KEY)
    if spent is None:
        return
    limiter: RateLimiter = scope["app"].state.rate_limiter
    buckets = spent.buckets
    principal = scope.get("user")
    if tenant_id is not None and isinstance(principal, Principal) and principal.kind == "user":
        buckets = await limiter.buckets(principal, LimitClass.INGESTION, address="", tenant_in_path=tenant_id)
    rest = tuple(cost - 1 if bucket in spent.buckets.items else cost for bucket in buckets.items)
    if max(rest) <= 0:
        return
    try:
        verdict = await _spend(limiter, scope, LimitClass.INGESTION, buckets, rest)
    except LimiterUnavailable:
        return
    spent.buckets, spent.verdict = buckets, verdict
    if not verdict.allowed:
        raise _refusal(verdict, exhausted(buckets, verdict, rest).subject)


class RateLimitMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        limiter: RateLimiter | None = getattr(scope["app"].state, "rate_limiter", None)
        if limiter is None or not limiter.enabled:
            await next_app(scope, receive, send)
            return
        principal = scope.get("user")
        principal = principal if isinstance(principal, Principal) else None
        declared = scope["route_handler"].opt.get("rate_limit")
        limit = limit_class(str(scope.get("method", "GET")), authenticated=principal is not None, declared=declared)
        in_path = scope.get("path_params", {}).get("tenant_id")
        client = scope.get("client")
        buckets = await limiter.buckets(
            principal,
            limit,
            address=client[0] if client else "unknown",
            tenant_in_path=in_path if isinstance(in_path, uuid.UUID) else None,
        )
        spent = _Spent(buckets)
        try:
            spent.verdict = await _spend(limiter, scope, limit, buckets, 1)
        except LimiterUnavailable:
            await next_app(scope, receive, send)  # a read, served unlimited
            return
        except RateLimiterUnavailable as error:
            await _answer(scope, receive, send, 503, error, [(b"retry-after", str(error.retry_after_seconds).encode())])
            return
        if not spent.verdict.allowed:
            refusal = _refusal(spent.verdict, exhausted(buckets, spent.verdict, 1).subject)
            extra = [(b"retry-after", str(refusal.retry_after_seconds).encode())]
            await _answer(scope, receive, send, 429, refusal, extra + headers(buckets, spent.verdict))
            return
        if limit is LimitClass.INGESTION:
            scope.setdefault("state", {})[STATE_KEY] = spent  # the handler spends the rest, per event

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and spent.verdict is not None:
                message["headers"] = [*message.get("headers", []), *headers(spent.buckets, spent.verdict)]
            await send(message)

        await next_app(scope, receive, send_with_headers)


async def _answer(
    scope: Scope, receive: Receive, send: Send, status: int, error: Any, extra: list[tuple[bytes, bytes]]
) -> None:
    body: dict[str, Any] = {"retry_after_seconds": error.retry_after_seconds}
    if status == 503:
        metrics.DEPENDENCY_UNAVAILABLE_TOTAL.labels(dependency="redis").inc()
    response = problem(status, error.code, error.detail, title=error.title, **body)

    async def send_with(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    await response.to_asgi_response(app=None, request=None)(scope, receive, send_with)  # type: ignore[arg-type]
