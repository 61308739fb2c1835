"""The entitlement check, the hot path: answered from an in-process cache that every change which could
alter an answer evicts (see `controlplane.core.invalidation`); the database only on a miss, Stripe never."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from controlplane.core import metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from controlplane.core.invalidation import Cache
from plugins_registry import licensing, repository
from plugins_registry.errors import ApiKeyRequired
from plugins_registry.service._events import ENTITLEMENTS_TOPIC
from tenants.errors import ForbiddenForRole
from tenants.roles import Permission, role_allows
from tenants.service import STATUS_TOPIC, service_denial_of


@dataclass(frozen=True, slots=True)
class EntitlementAnswer:
    """Whether the tenant may use the plugin (and the feature, if one was asked for), and why; with the
    license's terms when the plugin is installed."""

    allowed: bool
    reason: str  # a `licensing.Reason`, or why the tenant gets no service (`tenant_suspended`, ...)
    plugin: str
    feature: str | None
    license_id: uuid.UUID | None
    trial: bool | None
    expires_at: datetime | None
    limits: dict[str, int]
    usage: dict[str, int]


# tenant id -> why it gets no service (suspended, erased) and plugin slug -> its license (None: not
# installed). A whole tenant is evicted at once: by any plugin change, and by any change of its status.
@dataclass(frozen=True)
class _Tenant:
    denial: str | None
    plugins: dict[str, licensing.Snapshot | None]


_tenants: Cache[uuid.UUID, _Tenant] = Cache(ENTITLEMENTS_TOPIC, uuid.UUID, ttl_seconds=300.0, also_on=(STATUS_TOPIC,))
# Bound once: `labels()` costs microseconds, and this is the hot path.
_HIT = metrics.ENTITLEMENT_CACHE_LOOKUPS_TOTAL.labels(result="hit")
_MISS = metrics.ENTITLEMENT_CACHE_LOOKUPS_TOTAL.labels(result="miss")
_DECISIONS = {
    True: metrics.ENTITLEMENT_CHECKS_TOTAL.labels(decision="allowed"),
    False: metrics.ENTITLEMENT_CHECKS_TOTAL.labels(decision="denied"),
}


async def _lookup(tenant_id: uuid.UUID, slug: str) -> tuple[str | None, licensing.Snapshot | None]:
    cached = _tenants.get(tenant_id)
    if cached is not None and slug in cached.plugins:
        _HIT.inc()
        return cached.denial, cached.plugins[slug]
    _MISS.inc()
    generation = _tenants.generation()
    async with tenant_tx(tenant_id):
        denial = cached.denial if cached is not None else await service_denial_of(tenant_id)
        row = await repository.entitlement_snapshot(tenant_id, slug)
    snapshot = None
    if row is not None:
        snapshot = licensing.Snapshot(
            license_id=row["id"],
            status=row["status"],
            expires_at=row["expires_at"],
            trial=row["trial"],
            features=frozenset(row["entitlements"]["features"]),
            limits=dict(row["entitlements"]["limits"]),
            seats=row["seats"],
            seats_used=int(row["seats_used"]),
        )
    _tenants.put(tenant_id, _Tenant(denial, {**(cached.plugins if cached else {}), slug: snapshot}), generation)
    return denial, snapshot


def _answer(
    allowed: bool, reason: str, slug: str, feature: str | None, snapshot: licensing.Snapshot | None
) -> EntitlementAnswer:
    if snapshot is None:
        return EntitlementAnswer(allowed, reason, slug, feature, None, None, None, {}, {})
    return EntitlementAnswer(
        allowed,
        reason,
        slug,
        feature,
        snapshot.license_id,
        snapshot.trial,
        snapshot.expires_at,
        {"seats": snapshot.seats, **snapshot.limits},
        {"seats": snapshot.seats_used},
    )


def _decided(
    denial: str | None, snapshot: licensing.Snapshot | None, slug: str, feature: str | None
) -> EntitlementAnswer:
    decision = licensing.decide(snapshot, feature, datetime.now(UTC))
    # A suspended or erased tenant is denied whatever its licenses say, with the reason.
    allowed, reason = (False, denial) if denial is not None else (decision.allowed, decision.reason)
    return _answer(allowed, reason, slug, feature, snapshot)


async def check(principal: Principal, slug: str, feature: str | None) -> EntitlementAnswer:
    if principal.kind != "api_key" or principal.tenant_id is None:
        raise ApiKeyRequired()
    if not role_allows(principal.api_key_role, Permission.USE_PLUGINS):
        raise ForbiddenForRole()
    answer = _decided(*await _lookup(principal.tenant_id, slug), slug, feature)
    _DECISIONS[answer.allowed].inc()
    return answer


def cached_check(principal: Principal, slug: str, feature: str | None) -> EntitlementAnswer | None:
    """`check`'s answer when the cache holds it and `check` would not refuse the principal; else None. Counts
    nothing: the caller, once it serves the answer, calls `count_cached`."""
    if principal.kind != "api_key" or principal.tenant_id is None:
        return None
    if not role_allows(principal.api_key_role, Permission.USE_PLUGINS):
        return None
    cached = _tenants.get(principal.tenant_id)
    if cached is None or slug not in cached.plugins:
        return None
    return _decided(cached.denial, cached.plugins[slug], slug, feature)


def count_cached(answer: EntitlementAnswer) -> None:
    _HIT.inc()
    _DECISIONS[answer.allowed].inc()
