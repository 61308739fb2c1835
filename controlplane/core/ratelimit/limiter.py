"""Which budgets a request spends, and spending them: the rate limiter an API process holds.

The domains hand in what the ground floor cannot know: a tenant's percentage (its plan or a staff override)
and whether a person is a member of the tenant in the path. Both answers are cached: the percentage until
`RATE_LIMIT_TOPIC` is published for the tenant (a staff override, a subscription's plan or status changed) or
a minute at most, the membership for a minute (so a former member spends at most a minute of the tenant's
budget).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controlplane.core.auth.principal import Principal
from controlplane.core.errors import RateLimited, ServiceUnavailable
from controlplane.core.invalidation import Cache
from controlplane.core.ratelimit.policy import (
    Bucket,
    Buckets,
    Cost,
    LimitClass,
    RateLimits,
    Subject,
    Verdict,
    costs,
)
from controlplane.core.ratelimit.refusals import RefusalStreaks
from controlplane.core.ratelimit.store import KEY_PREFIX, GcraStore, LimiterUnavailable

RATE_LIMIT_TOPIC = "tenant-rate-limits"
# What a process keeps per request shape (~0.6-1 KB each) and per (person, tenant in the path) (~0.4 KB), dropped
# whole when full: rebuilding either is cheap, while addresses (IPv6 gives a client millions of /64s) and
# tenant ids in paths are the client's to choose, so the bounds keep a flood of them to a few MB a process.
_MAX_SHAPES = 10_000
_MAX_MEMBERS = 10_000
_MAX_BLOCKED = 100_000  # ~130 bytes each
_FAILURES_DETAIL = "Too many failed authentications from this address; retry after Retry-After's seconds"


class RateLimiterUnavailable(ServiceUnavailable):
    code = "rate_limiter_unavailable"
    title = "The rate limiter is unavailable; only reads are served"
    dependency = "redis"
    retry_after_seconds = 2


TenantPercent = Callable[[uuid.UUID], Awaitable[int]]
MemberOf = Callable[[Principal, uuid.UUID], Awaitable[bool]]
TENANT_CLASSES = (LimitClass.INGESTION, LimitClass.ENTITLEMENTS, LimitClass.READS, LimitClass.WRITES)


@functools.lru_cache(maxsize=4096)  # parsing an address costs microseconds; the same few come again and again
def address_key(host: str) -> str:
    """An IPv4 address as is (also when a dual-stack server reports it mapped into IPv6: otherwise every IPv4
    client would share `::/64`); an IPv6 address by its /64, which one client usually holds whole."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if address.version == 6 and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False).network_address) + "/64"
    return str(address)


@dataclass(frozen=True, slots=True)
class _Shape:
    """What decides a request's budgets: who asks (a key, a person, an address) and for which tenant."""

    client: Subject
    limit_class: LimitClass
    who: str
    tenant_id: uuid.UUID | None = None
    percent: int = 100


@dataclass(frozen=True, slots=True)
class ClassView:
    """A tenant's budget for one class: its limit and what is left now (for `GET /v1/tenants/{id}/limits`)."""

    limit_class: LimitClass
    per_second: float
    burst: int
    remaining: int
    reset_seconds: float
    api_key_per_second: float
    api_key_burst: int


class RateLimiter:
    def __init__(
        self,
        store: GcraStore,
        limits: RateLimits,
        tenant_percent: TenantPercent,
        member_of: MemberOf,
        *,
        enabled: bool = True,
        streaks: RefusalStreaks | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.enabled = enabled
        self.streaks = streaks
        self._tenant_percent = tenant_percent
        self._member_of = member_of
        self._percents: Cache[uuid.UUID, int] = Cache(RATE_LIMIT_TOPIC, uuid.UUID, ttl_seconds=60.0)
        self._members: dict[tuple[uuid.UUID, uuid.UUID], tuple[float, bool]] = {}
        self._shapes: dict[_Shape, Buckets] = {}
        self._blocked: dict[str, float] = {}  # address -> when it may authenticate again (monotonic)
        self._built_for = limits

    async def percent(self, tenant_id: uuid.UUID) -> int:
        cached = self._percents.get(tenant_id)
        if cached is not None:
            return cached
        generation = self._percents.generation()
        percent = await self._tenant_percent(tenant_id)
        self._percents.put(tenant_id, percent, generation)
        return percent

    async def _is_member(self, principal: Principal, tenant_id: uuid.UUID) -> bool:
        key, now = (principal.id, tenant_id), time.monotonic()
        cached = self._members.get(key)
        if cached is not None and now - cached[0] < 60.0:
            return cached[1]
        member = await self._member_of(principal, tenant_id)
        if len(self._members) >= _MAX_MEMBERS:
            self._members.clear()
        self._members[key] = (now, member)
        return member

    async def buckets(
        self, principal: Principal | None, limit_class: LimitClass, *, address: str, tenant_in_path: uuid.UUID | None
    ) -> Buckets:
        """The budgets a request spends, the client's first (so it is named when both are exhausted)."""
        if principal is None:
            return self._built(_Shape(Subject.ADDRESS, limit_class, address_key(address)))
        if principal.kind == "api_key" and principal.tenant_id is not None:
            percent = await self.percent(principal.tenant_id)
            return self._built(_Shape(Subject.API_KEY, limit_class, str(principal.id), principal.tenant_id, percent))
        if tenant_in_path is not None and not principal.is_staff and await self._is_member(principal, tenant_in_path):
            percent = await self.percent(tenant_in_path)
            return self._built(_Shape(Subject.USER, limit_class, str(principal.id), tenant_in_path, percent))
        return self._built(_Shape(Subject.USER, limit_class, str(principal.id)))

    def _built(self, shape: _Shape) -> Buckets:
        """The `Buckets` of a request's shape, built once and kept: the hot path only looks them up."""
        if self.limits is not self._built_for:  # other limits (a test sets its own): nothing kept is valid
            self._shapes.clear()
            self._built_for = self.limits
        found = self._shapes.get(shape)
        if found is None:
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            found = self._shapes[shape] = Buckets(tuple(self._made(shape)))
        return found

    def _made(self, shape: _Shape) -> list[Bucket]:
        limit_class, name = shape.limit_class, shape.limit_class.value
        if shape.client is Subject.API_KEY:
            assert shape.tenant_id is not None
            limit = self.limits.for_api_key(limit_class, shape.percent)
            where = f"key:{shape.who}"
        else:
            limit = self.limits.for_client(limit_class)
            where = f"{shape.client.value}:{shape.who}"
        key_of = shape.tenant_id if shape.client is Subject.API_KEY else None
        made = [Bucket(shape.client, f"{KEY_PREFIX}{name}:{where}", limit, key_of)]
        if shape.tenant_id is not None:
            made.append(self._tenant_bucket(shape.tenant_id, limit_class, shape.percent))
        return made

    def _tenant_bucket(self, tenant_id: uuid.UUID, limit_class: LimitClass, percent: int) -> Bucket:
        return Bucket(
            Subject.TENANT,
            f"{KEY_PREFIX}{limit_class.value}:tenant:{tenant_id}",
            self.limits.for_tenant(limit_class, percent),
            tenant_id,
        )

    async def spend(self, buckets: Buckets, cost: Cost = 1) -> Verdict:
        return await self.store.spend(buckets, cost)

    def refuse_if_blocked(self, address: str) -> None:
        """Before authenticating: an address whose failed authentications spent its budget is refused here, for
        as long as the budget said, without a database lookup of the credentials it sends."""
        if not self._blocked:  # the usual case, and the hot path: no address parsed
            return
        where = address_key(address)
        until = self._blocked.get(where)
        if until is not None:
            wait = until - time.monotonic()
            if wait > 0:
                raise RateLimited(_FAILURES_DETAIL, retry_after_seconds=math.ceil(wait))
            del self._blocked[where]

    async def failed_authentication(self, address: str) -> None:
        """Spend a unit of the address's unauthenticated budget on a failed authentication (a flood of wrong or
        revoked keys is as unauthenticated as a flood of webhooks); once spent, `RateLimited`, and the address is
        refused before authenticating until it may try again. Without Redis, nothing is counted."""
        if not self.enabled:
            return
        buckets = self._built(_Shape(Subject.ADDRESS, LimitClass.UNAUTHENTICATED, address_key(address)))
        try:
            verdict = await self.store.spend(buckets)
        except LimiterUnavailable:
            return
        if verdict.allowed:
            return
        wait = max(1, math.ceil(verdict.retry_after_seconds))
        if len(self._blocked) >= _MAX_BLOCKED:
            self._blocked.clear()
        self._blocked[address_key(address)] = time.monotonic() + wait
        raise RateLimited(_FAILURES_DETAIL, retry_after_seconds=wait)

    async def tenant_view(self, tenant_id: uuid.UUID) -> tuple[int, list[ClassView]]:
        """The tenant's percentage and, per class, its budget in force and what is left of it."""
        percent = await self.percent(tenant_id)
        buckets = Buckets(tuple(self._tenant_bucket(tenant_id, limit_class, percent) for limit_class in TENANT_CLASSES))
        try:
            verdict = await self.store.peek(buckets)
        except LimiterUnavailable:
            raise RateLimiterUnavailable("The rate limiter cannot be reached; retry shortly") from None
        views = []
        for limit_class, bucket, state in zip(TENANT_CLASSES, buckets.items, verdict.states, strict=True):
            key_limit = self.limits.for_api_key(limit_class, percent)
            views.append(
                ClassView(
                    limit_class,
                    bucket.limit.per_second,
                    bucket.limit.burst,
                    state.remaining,
                    state.reset_seconds,
                    key_limit.per_second,
                    key_limit.burst,
                )
            )
        return percent, views


def exhausted(buckets: Buckets, verdict: Verdict, cost: Cost) -> Bucket:
    """The first bucket that could not afford a refused request."""
    for bucket, state, units in zip(buckets.items, verdict.states, costs(buckets, cost), strict=True):
        interval = bucket.limit.interval_us
        if round(state.reset_seconds * 1e6) + units * interval > bucket.limit.burst * interval:
            return bucket
    return buckets.items[0]
