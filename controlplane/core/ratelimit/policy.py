"""Rate limits as pure rules: the classes of route, their budgets, a tenant's percentage, and the IETF headers.

A budget is a rate (units per second) and a burst (units that may be spent at once): a generic cell rate
algorithm (GCRA) bucket, see `controlplane.core.ratelimit.store`. Every request spends one unit, except usage
ingestion, which spends one per event.

Who is counted: an API key and its tenant; a person (user token), and the tenant named in the path (or in a
usage batch) when the person is a member acting in it (staff acting in a tenant spend their own budget, not
the tenant's); a client address on routes that need no credentials. A tenant's budgets and its keys' are the
defaults scaled by its percentage (the plan's `rate_limit_percent`, or a staff override); a person's and an
address's are the defaults.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

# The largest ingestion batch (billing.usage.rules.MAX_BATCH): an ingestion burst is never smaller, or a full
# batch could never pass. Restated here because the ground floor imports no domain.
MAX_INGESTION_COST = 1000
MAX_PER_SECOND = 1_000_000
MAX_PERCENT = 100_000


class LimitClass(enum.StrEnum):
    INGESTION = "ingestion"  # POST /v1/usage, counted in events
    ENTITLEMENTS = "entitlements"  # the entitlement check
    READS = "reads"  # every other GET and HEAD
    WRITES = "writes"  # every other method
    UNAUTHENTICATED = "unauthenticated"  # routes without credentials, per client address


class Subject(enum.StrEnum):
    """Whose budget a request spends (a metric label and the policy name in the headers)."""

    API_KEY = "api_key"
    TENANT = "tenant"
    USER = "user"
    ADDRESS = "address"


@dataclass(frozen=True, slots=True)
class Limit:
    per_second: float
    burst: int

    @property
    def interval_us(self) -> int:
        """Microseconds between two units at this rate (at least 1)."""
        return max(1, round(1_000_000 / self.per_second))

    @property
    def window_seconds(self) -> int:
        """How long an empty bucket takes to fill (the `w` of RateLimit-Policy)."""
        return max(1, math.ceil(self.burst / self.per_second))

    def scaled(self, percent: int, *, least_burst: int = 1) -> Limit:
        return Limit(self.per_second * percent / 100, max(least_burst, math.floor(self.burst * percent / 100)))

    def __str__(self) -> str:
        return f"{self.per_second:g}/{self.burst}"


def parse_limit(name: str, text: str, *, least_burst: int = 1) -> Limit:
    """`"<per second>/<burst>"`, both positive integers (ValueError naming the setting otherwise)."""
    per_second, slash, burst = text.partition("/")
    if not slash or not per_second.strip().isdigit() or not burst.strip().isdigit():
        raise ValueError(f"{name} must be <per second>/<burst> in whole numbers, not {text!r}")
    limit = Limit(int(per_second), int(burst))
    if not 1 <= limit.per_second <= MAX_PER_SECOND or not least_burst <= limit.burst <= 100 * MAX_PER_SECOND:
        raise ValueError(
            f"{name} must have 1 to {MAX_PER_SECOND:,} per second and a burst of at least {least_burst}, not {text!r}"
        )
    return limit


def _least_burst(limit_class: LimitClass) -> int:
    return MAX_INGESTION_COST if limit_class is LimitClass.INGESTION else 1


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The defaults per class: for one client (an API key, a person, an address) and for a tenant (all its
    keys and members together). RATE_LIMIT_<CLASS> and RATE_LIMIT_TENANT_<CLASS> in the environment."""

    client: Mapping[LimitClass, Limit] = field(
        default_factory=lambda: {
            LimitClass.INGESTION: Limit(10_000, 20_000),
            LimitClass.ENTITLEMENTS: Limit(1_000, 2_000),
            LimitClass.READS: Limit(50, 100),
            LimitClass.WRITES: Limit(20, 40),
            LimitClass.UNAUTHENTICATED: Limit(50, 200),  # Stripe sends its webhooks in bursts from few addresses
        }
    )
    tenant: Mapping[LimitClass, Limit] = field(
        default_factory=lambda: {
            LimitClass.INGESTION: Limit(20_000, 40_000),
            LimitClass.ENTITLEMENTS: Limit(2_000, 4_000),
            LimitClass.READS: Limit(100, 200),
            LimitClass.WRITES: Limit(40, 80),
        }
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> RateLimits:
        defaults = cls()
        client, tenant = dict(defaults.client), dict(defaults.tenant)
        for limit_class in LimitClass:
            least = _least_burst(limit_class)
            name = f"RATE_LIMIT_{limit_class.name}"
            if text := environ.get(name, "").strip():
                client[limit_class] = parse_limit(name, text, least_burst=least)
            name = f"RATE_LIMIT_TENANT_{limit_class.name}"
            if limit_class in tenant and (text := environ.get(name, "").strip()):
                tenant[limit_class] = parse_limit(name, text, least_burst=least)
        return cls(client, tenant)

    def with_client(self, limit_class: LimitClass, limit: Limit) -> RateLimits:
        return replace(self, client={**self.client, limit_class: limit})

    def with_tenant(self, limit_class: LimitClass, limit: Limit) -> RateLimits:
        return replace(self, tenant={**self.tenant, limit_class: limit})

    def for_tenant(self, limit_class: LimitClass, percent: int) -> Limit:
        return self.tenant[limit_class].scaled(percent, least_burst=_least_burst(limit_class))

    def for_api_key(self, limit_class: LimitClass, percent: int) -> Limit:
        return self.client[limit_class].scaled(percent, least_burst=_least_burst(limit_class))

    def for_client(self, limit_class: LimitClass) -> Limit:
        return self.client[limit_class]


def limit_class(method: str, *, authenticated: bool, declared: str | None) -> LimitClass:
    """A route's class: declared by the route (`opt={"rate_limit": "ingestion"}`), else by its method."""
    if not authenticated:
        return LimitClass.UNAUTHENTICATED
    if declared is not None:
        return LimitClass(declared)
    return LimitClass.READS if method in ("GET", "HEAD") else LimitClass.WRITES


@dataclass(frozen=True, slots=True)
class Bucket:
    """One budget a request spends: its Redis key and its limit, and the tenant it counts against (its own, or
    its API key's), to which a refusal by it is attributed."""

    subject: Subject
    key: str
    limit: Limit
    tenant_id: uuid.UUID | None = None


# What a request spends: as many units of each of its buckets, or per bucket (in the buckets' order).
Cost = int | tuple[int, ...]


def costs(buckets: Buckets, cost: Cost) -> tuple[int, ...]:
    """`cost` per bucket."""
    if isinstance(cost, int):
        return (cost,) * len(buckets.items)
    if len(cost) != len(buckets.items):
        raise ValueError(f"{len(cost)} costs for {len(buckets.items)} buckets")
    return cost


@dataclass(frozen=True, slots=True)
class Buckets:
    """The budgets one kind of request spends, with what the hot path would otherwise rebuild per request:
    the store's arguments (`specs`: each bucket's interval and burst in µs) and the `RateLimit-Policy` header."""

    items: tuple[Bucket, ...]
    specs: tuple[str, ...] = field(init=False)
    policy: bytes = field(init=False)

    def __post_init__(self) -> None:
        specs = tuple(f"{b.limit.interval_us},{b.limit.interval_us * b.limit.burst}" for b in self.items)
        object.__setattr__(self, "specs", specs)
        policies = (f'"{b.subject}";q={b.limit.burst};w={b.limit.window_seconds}' for b in self.items)
        object.__setattr__(self, "policy", ", ".join(policies).encode())


@dataclass(frozen=True, slots=True)
class BucketState:
    remaining: int
    reset_seconds: float  # until the bucket is full again


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after_seconds: float  # 0 when allowed
    states: Sequence[BucketState]  # one per bucket, in the request's order


def headers(buckets: Buckets, verdict: Verdict) -> list[tuple[bytes, bytes]]:
    """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers): one item per budget spent,
    named by its subject; `q` the burst, `w` the seconds an empty bucket takes to fill; `r` what is left and
    `t` the seconds until the bucket is full again."""
    states = ", ".join(
        f'"{b.subject}";r={s.remaining};t={math.ceil(s.reset_seconds)}'
        for b, s in zip(buckets.items, verdict.states, strict=True)
    )
    return [(b"ratelimit-policy", buckets.policy), (b"ratelimit", states.encode())]
