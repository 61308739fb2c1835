"""Liveness, readiness (PostgreSQL, Redis, OpenBao each answer) and the Prometheus scrape."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from litestar import Request, Response, get

from controlplane.core import db, metrics
from controlplane.core.problems import problem, problem_responses

CHECK_TIMEOUT_SECONDS = 2.0


async def _postgres() -> None:
    async with db.anonymous_tx():
        await db.fetch("select 1")


async def _redis(url: str) -> None:
    client = aioredis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT_SECONDS)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _openbao(request: Request[Any, Any, Any]) -> None:
    if not await asyncio.to_thread(request.app.state.secret_store.is_ready):
        raise RuntimeError("sealed, unreachable or token invalid")


@get("/health/live", exclude_from_auth=True, tags=["health"], include_in_schema=True)
async def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", exclude_from_auth=True, tags=["health"], responses=problem_responses(503))
async def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    settings = request.app.state.settings
    checks = {
        "postgres": _postgres(),
        "redis": _redis(settings.redis_url),
        "openbao": _openbao(request),
    }

    async def outcome(check: Any) -> str:
        try:
            await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure of a dependency means "not ready", whatever its type
            return f"failed: {type(exc).__name__}"
        return "ok"

    # Concurrently: a probe waits for the slowest dependency, not for the sum of them.
    results = dict(zip(checks, await asyncio.gather(*map(outcome, checks.values())), strict=True))
    failed = sorted(name for name, result in results.items() if result != "ok")
    if failed:
        return problem(503, "not_ready", "Not ready: " + ", ".join(failed) + " failed", checks=results)
    return Response({"status": "ready", "checks": results})


@get("/metrics", exclude_from_auth=True, tags=["health"], include_in_schema=False)
async def scrape(request: Request[Any, Any, Any]) -> Response[bytes]:
    # Secret ages are read from OpenBao at scrape time (at most once a minute), not kept by a process.
    secret_ages = getattr(request.app.state, "secret_ages", None)
    if secret_ages is not None:
        await secret_ages.refresh_if_stale()
    # Business gauges from the database, the longest refusal streak from Redis.
    for name in ("business_gauges", "refusal_streaks"):
        refresher = getattr(request.app.state, name, None)
        if refresher is not None:
            await refresher.refresh_if_stale()
    redis_client = getattr(request.app.state, "redis", None)
    if redis_client is not None:
        await metrics.observe_celery_queues(redis_client)
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)
