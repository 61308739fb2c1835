"""The entitlement check, the hot path: answered from an in-process cache that every change which could
alter an answer evicts (see `controlplane.invalidation`); the database only on a miss, Stripe never."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from controlplane import metrics
from controlplane.auth.principal import Principal
from controlplane.db import tenant_tx
from controlplane.invalidation import Cache
from plugins_registry import licensing, repository
from plugins_registry.errors import ApiKeyRequired
from plugins_registry.service._events import ENTITLEMENTS_TOPIC
from tenants.errors import ForbiddenForRole
from tenants.roles import Permission, role_allows

# tenant id -> plugin slug -> its license snapshot (None: not installed). A whole tenant is evicted at once.
_snapshots: Cache[uuid.UUID, dict[str, licensing.Snapshot | None]] = Cache(
    ENTITLEMENTS_TOPIC, uuid.UUID, ttl_seconds=300.0
)
# Bound once: `labels()` costs microseconds, and this is the hot path.
_HIT = metrics.ENTITLEMENT_CACHE_LOOKUPS_TOTAL.labels(result="hit")
_MISS = metrics.ENTITLEMENT_CACHE_LOOKUPS_TOTAL.labels(result="miss")
_DECISIONS = {
    True: metrics.ENTITLEMENT_CHECKS_TOTAL.labels(decision="allowed"),
    False: metrics.ENTITLEMENT_CHECKS_TOTAL.labels(decision="denied"),
}


async def _snapshot(tenant_id: uuid.UUID, slug: str) -> licensing.Snapshot | None:
    cached = _snapshots.get(tenant_id)
    if cached is not None and slug in cached:
        _HIT.inc()
        return cached[slug]
    _MISS.inc()
    generation = _snapshots.generation()
    async with tenant_tx(tenant_id):
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
    _snapshots.put(tenant_id, {**(cached or {}), slug: snapshot}, generation)
    return snapshot


async def check(principal: Principal, slug: str, feature: str | None) -> dict[str, Any]:
    if principal.kind != "api_key" or principal.tenant_id is None:
        raise ApiKeyRequired()
    if not role_allows(principal.api_key_role, Permission.USE_PLUGINS):
        raise ForbiddenForRole()
    snapshot = await _snapshot(principal.tenant_id, slug)
    decision = licensing.decide(snapshot, feature, datetime.now(UTC))
    _DECISIONS[decision.allowed].inc()
    return {
        "allowed": decision.allowed,
        "reason": decision.reason,
        "plugin": slug,
        "feature": feature,
        "license_id": snapshot.license_id if snapshot else None,
        "trial": snapshot.trial if snapshot else None,
        "expires_at": snapshot.expires_at if snapshot else None,
        "limits": {"seats": snapshot.seats, **snapshot.limits} if snapshot else {},
        "usage": {"seats": snapshot.seats_used} if snapshot else {},
    }
