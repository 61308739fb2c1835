"""Helpers of the rate limit tests: budgets, an unreachable Redis, and the counters (the `limits` fixture is in
conftest)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import redis.asyncio as aioredis
from litestar import Litestar
from prometheus_client import REGISTRY

from controlplane.core.ratelimit.limiter import RateLimiter
from controlplane.core.ratelimit.policy import Limit
from controlplane.core.ratelimit.store import GcraStore

SLOW = Limit(1, 10)  # ten at once, then one a second: a burst in a test sees at most one unit come back
ROOMY = Limit(1_000_000, 100_000_000)


def limiter_of(app: Litestar) -> RateLimiter:
    limiter: RateLimiter = app.state.rate_limiter
    return limiter


def refusals(route: str, limit_class: str, subject: str) -> float:
    labels = {"route": route, "limit_class": limit_class, "subject": subject}
    return REGISTRY.get_sample_value("controlplane_rate_limit_refusals_total", labels) or 0.0


@contextmanager
def redis_unreachable(limiter: RateLimiter) -> Iterator[None]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = aioredis.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=0.5, socket_timeout=0.5)
    working = limiter.store
    limiter.store = GcraStore(dead)
    try:
        yield
    finally:
        limiter.store = working


def unavailable(outcome: str) -> float:
    return REGISTRY.get_sample_value("controlplane_rate_limit_unavailable_total", {"outcome": outcome}) or 0.0
