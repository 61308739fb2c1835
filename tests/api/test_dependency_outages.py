"""A dependency outage (PostgreSQL, Redis, OpenBao) is a named 503 with Retry-After, never a 500; a pooled
connection broken by a restart is replaced transparently; sign-in stays throttled without Redis."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import hvac
import pytest
import redis.asyncio as aioredis
from httpx import AsyncClient
from litestar import Litestar
from prometheus_client import REGISTRY

from controlplane.core import db
from controlplane.core.errors import DatabaseUnavailable
from controlplane.core.settings import Settings
from controlplane.core.tenant_vault import TenantVault
from tests.api._helpers import assert_problem
from tests.factories import PASSWORD, Factory


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _unavailable_count(dependency: str) -> float:
    value = REGISTRY.get_sample_value("controlplane_dependency_unavailable_total", {"dependency": dependency})
    return value or 0.0


@asynccontextmanager
async def database_down(settings: Settings) -> AsyncIterator[None]:
    """The app's pool pointed at a port where no PostgreSQL listens (as while it is stopped), then restored."""
    parts = urlsplit(settings.database_url)
    dead = urlunsplit(parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{_closed_port()}"))
    await db.stop_pool()
    await db.start_pool(dead, min_size=0, max_size=2)
    try:
        yield
    finally:
        await db.stop_pool()
        await db.start_pool(
            settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
        )


async def test_a_database_outage_is_a_503_database_unavailable_with_retry_after(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    user = await factory.user()
    before = _unavailable_count("database")
    async with database_down(settings):
        listed = await client.get("/v1/tenants", headers=user.headers)
        signed_in = await client.post("/v1/auth/token", json={"email": user.email, "password": PASSWORD})
        created = await client.post(
            "/v1/tenants", json={"name": "Outage Ltd", "slug": "outage-ltd"}, headers=user.headers
        )
    for response in (listed, signed_in, created):
        body = assert_problem(response, 503, "database_unavailable")
        assert int(response.headers["Retry-After"]) > 0
        assert body["retry_after_seconds"] == int(response.headers["Retry-After"])
    assert _unavailable_count("database") == before + 3
    # Back up: the same requests work again, with no restart of the API.
    assert (await client.get("/v1/tenants", headers=user.headers)).status_code == 200


def _end_app_sessions(dsn: str) -> int:
    """End every session of the app role but the LISTEN one, as a restart of PostgreSQL does, and wait until
    they are gone; blocking (its own loop in a thread), so the app's loop cannot notice before its next query."""

    async def end() -> int:
        # A role may end its own sessions.
        killer = await asyncpg.connect(dsn)
        try:
            pids = await killer.fetchval(
                "select array_agg(pid) from pg_stat_activity where usename = current_user "
                "and pid <> pg_backend_pid() and query not ilike 'listen%'"
            )
            for pid in pids or []:
                await killer.execute("select pg_terminate_backend($1)", pid)
            while await killer.fetchval("select count(*) from pg_stat_activity where pid = any($1)", pids or []):
                pass
            return len(pids or [])
        finally:
            await killer.close()

    ended: list[int] = []
    worker = threading.Thread(target=lambda: ended.append(asyncio.run(end())))
    worker.start()
    worker.join()
    return ended[0]


async def test_a_pooled_connection_broken_by_a_restart_is_replaced_transparently(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    user = await factory.user()
    assert (await client.get("/v1/tenants", headers=user.headers)).status_code == 200
    for _ in range(3):
        assert _end_app_sessions(settings.database_url) >= 1
        response = await client.get("/v1/tenants", headers=user.headers)
        assert response.status_code == 200, response.text


async def test_an_openbao_outage_is_a_503_openbao_unavailable_with_retry_after(
    app: Litestar, client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    vault = app.state.tenant_vault
    app.state.tenant_vault = TenantVault(hvac.Client(url=f"http://127.0.0.1:{_closed_port()}", token="x", timeout=2))
    before = _unavailable_count("openbao")
    try:
        response = await client.get(f"/v1/tenants/{tenant['id']}/webhook-secret", headers=admin.headers)
    finally:
        app.state.tenant_vault = vault
    assert_problem(response, 503, "openbao_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert _unavailable_count("openbao") == before + 1


async def test_sign_in_stays_throttled_while_redis_is_down(
    app: Litestar, client: AsyncClient, factory: Factory
) -> None:
    victim = await factory.user()
    throttle = app.state.sign_in_throttle
    dead = aioredis.from_url(f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=1.0)
    app.state.sign_in_throttle = dataclasses.replace(throttle, redis=dead)
    try:
        for _ in range(throttle.per_account):
            wrong = await client.post("/v1/auth/token", json={"email": victim.email, "password": "not-the-password"})
            assert_problem(wrong, 401, "invalid_credentials")
        locked = await client.post("/v1/auth/token", json={"email": victim.email, "password": PASSWORD})
    finally:
        app.state.sign_in_throttle = throttle
        await dead.aclose()
    assert_problem(locked, 429, "too_many_attempts")
    assert int(locked.headers["Retry-After"]) > 0


async def test_a_connection_lost_inside_a_transaction_is_database_unavailable_and_leaks_nothing(
    client: AsyncClient, settings: Settings
) -> None:
    # More times than the pool has connections: a connection not given back would leave the pool empty.
    for _ in range(settings.db_pool_max_size + 2):
        with pytest.raises(DatabaseUnavailable):
            async with db.anonymous_tx():
                await db.fetch("select pg_terminate_backend(pg_backend_pid())")
    async with db.anonymous_tx():
        assert await db.fetch("select 1 as one") == [{"one": 1}]
