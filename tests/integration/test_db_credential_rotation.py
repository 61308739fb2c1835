"""The app role's database password rotated by OpenBao's database secrets engine, against the real stack.

The session's app connects as `controlplane_app` with the password in DATABASE_URL, so these tests rotate a
throwaway login role of their own (`rotation_probe_<random>`) through a static role on a mount of their own
(`database-test-<random>`); both are removed at the end. OpenBao's admin connection is the stack's superuser.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import os
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import hvac
import pytest
from asgi_lifespan import LifespanManager

from controlplane.app import create_app
from controlplane.core import db
from controlplane.core.db_credentials import (
    StaticRolePassword,
    configure_static_role,
    last_rotated,
    read_static_credentials,
    rotate_static_role,
)
from controlplane.core.errors import SecretsUnavailable, StaticRoleMismatch
from controlplane.core.settings import Settings
from controlplane.ops import backups

ROTATIONS = 3
WORKERS = 3
PERIOD_SECONDS = 3600  # no rotation by OpenBao's own schedule during the test


@dataclass(frozen=True)
class Probe:
    mount: str
    role: str  # the OpenBao static role
    username: str  # the PostgreSQL login role
    initial_password: str  # the one it had before OpenBao took it over
    dsn: str  # without a password
    admin_url: str


@pytest.fixture(scope="module")
def admin_url(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test stack's superuser, found in the stack's own folder (as tests/e2e/test_backups.py does)."""
    roots = (
        [Path(os.environ["CONTROLPLANE_TEST_DEVSTACK_DIR"])] if os.environ.get("CONTROLPLANE_TEST_DEVSTACK_DIR") else []
    )
    roots += sorted(tmp_path_factory.getbasetemp().glob("devstack*"))
    for root in roots:
        url = backups.devstack_admin_url(root, stack_env["DATABASE_OWNER_URL"])
        if url is not None:
            return url
    pytest.fail(f"no dev stack folder among {roots} runs {stack_env['DATABASE_OWNER_URL'].split('@')[-1]}")


@pytest.fixture
def bao(stack_env: dict[str, str]) -> hvac.Client:
    return hvac.Client(url=stack_env["BAO_ADDR"], token=stack_env["BAO_TOKEN"], timeout=5)


@pytest.fixture
async def probe(stack_env: dict[str, str], admin_url: str, bao: hvac.Client) -> AsyncIterator[Probe]:
    suffix = secrets.token_hex(4)
    username = f"rotation_probe_{suffix}"
    initial = secrets.token_hex(16)
    app = urlsplit(stack_env["DATABASE_URL"])
    database = app.path.lstrip("/")
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f"create role {username} login nosuperuser nobypassrls password '{initial}'")
        await admin.execute(f"grant connect on database {database} to {username}")
    finally:
        await admin.close()
    probe = Probe(
        mount=f"database-test-{suffix}",
        role=f"probe-{suffix}",
        username=username,
        initial_password=initial,
        dsn=urlunsplit(app._replace(netloc=f"{username}@{app.hostname}:{app.port}")),
        admin_url=admin_url,
    )
    try:
        yield probe
    finally:
        # The mount first, so OpenBao stops managing the role before it goes.
        if f"{probe.mount}/" in bao.sys.list_mounted_secrets_engines()["data"]:
            bao.sys.disable_secrets_engine(probe.mount)
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = $1", username)
            await admin.execute(f"revoke connect on database {database} from {username}")
            await admin.execute(f"drop role {username}")
        finally:
            await admin.close()


def _configure(bao: hvac.Client, probe: Probe) -> None:
    configure_static_role(
        bao,
        mount=probe.mount,
        connection_name="controlplane",
        admin_dsn=probe.admin_url,
        app_username=probe.username,
        role=probe.role,
        rotation_period_seconds=PERIOD_SECONDS,
    )


@pytest.fixture
def lent_engine() -> Iterator[None]:
    """The engine for this test alone: the session app's pool (if any) is set aside and put back after."""
    saved_pool, saved_config = db.ENGINE.pool, dict(db.ENGINE.config)
    db.ENGINE.pool = None
    try:
        yield
    finally:
        assert db.ENGINE.pool is None, "the test must stop its own pool"
        db.ENGINE.pool, db.ENGINE.config = saved_pool, saved_config


async def _refused(dsn: str, password: str) -> bool:
    try:
        connection = await asyncpg.connect(dsn, password=password)
    except asyncpg.InvalidPasswordError:
        return True
    await connection.close()
    return False


async def test_rotations_under_load_drop_no_query(
    bao: hvac.Client,
    probe: Probe,
    lent_engine: None,
    caplog: pytest.LogCaptureFixture,
    report: Any,
) -> None:
    await asyncio.to_thread(_configure, bao, probe)
    # Creating the static role rotated at once: the password the role had is gone.
    first = read_static_credentials(bao, mount=probe.mount, role=probe.role)
    assert first.username == probe.username and first.last_rotated is not None
    assert await _refused(probe.dsn, probe.initial_password)
    # Configuring again changes nothing (an update of the role does not rotate).
    await asyncio.to_thread(_configure, bao, probe)
    assert read_static_credentials(bao, mount=probe.mount, role=probe.role).password == first.password
    admin = await asyncpg.connect(probe.admin_url)
    try:
        stored = await admin.fetchval("select rolpassword from pg_authid where rolname = $1", probe.username)
    finally:
        await admin.close()
    assert stored.startswith("SCRAM-SHA-256$")  # hashed by OpenBao, never sent in the clear

    provider = StaticRolePassword(bao, mount=probe.mount, role=probe.role, username=probe.username)
    await db.start_pool(probe.dsn, min_size=0, max_size=WORKERS + 1, password=provider)
    pool = db.ENGINE.pool
    assert pool is not None
    held = await pool.acquire()  # one session opened before every rotation, used after each
    started_at: list[float] = []  # start time of each successful query
    failures: list[str] = []
    stop = asyncio.Event()
    answered = asyncio.Event()

    async def queries() -> None:
        while not stop.is_set():
            # Every query on a new connection: the pool logs in again, asking the provider.
            await pool.expire_connections()
            started = time.monotonic()
            try:
                async with db.anonymous_tx():
                    rows = await db.fetch("select current_user as who")
                assert rows == [{"who": probe.username}]
                started_at.append(started)
                answered.set()
            except Exception as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0)

    async def wait_for_a_query_after(moment: float) -> None:
        async with asyncio.timeout(5):
            while not any(started > moment for started in started_at):
                answered.clear()
                await answered.wait()

    caplog.set_level(logging.INFO, logger="controlplane.db")
    passwords = [first.password]
    rotations = []
    boundaries = []  # (rotation began, rotation answered)
    loops = [asyncio.create_task(queries()) for _ in range(WORKERS)]
    try:
        await asyncio.sleep(0.2)
        for _ in range(ROTATIONS):
            began = time.monotonic()
            rotation = await asyncio.to_thread(rotate_static_role, bao, mount=probe.mount, role=probe.role)
            boundaries.append((began, time.monotonic()))
            rotations.append(rotation)
            passwords.append(read_static_credentials(bao, mount=probe.mount, role=probe.role).password)
            assert await held.fetchval("select 1") == 1  # the session opened before still works
            await wait_for_a_query_after(boundaries[-1][1])
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        ended = time.monotonic()
        await asyncio.gather(*loops)
        await pool.release(held)
        await db.stop_pool()

    assert failures == [], failures[:5]
    # Queries begun (on new connections) after each rotation answered and before the next one began.
    ends = [began for began, _ in boundaries[1:]] + [ended]
    after_each = [
        sum(done < started < end for started in started_at) for (_, done), end in zip(boundaries, ends, strict=True)
    ]
    during = sum(any(began <= started <= done for began, done in boundaries) for started in started_at)
    assert all(count > 0 for count in after_each), after_each
    assert len(set(passwords)) == ROTATIONS + 1  # each rotation set a new password
    # Every password before the current one is refused; the current one works.
    for old in passwords[:-1]:
        assert await _refused(probe.dsn, old)
    assert not await _refused(probe.dsn, passwords[-1])
    # OpenBao's last rotation time moved forward at each rotation.
    times = [first.last_rotated] + [rotation.rotated_at for rotation in rotations]
    assert all(earlier < later for earlier, later in itertools.pairwise(times)), times
    assert rotations[0].previous == first.last_rotated
    assert last_rotated(bao, mount=probe.mount, role=probe.role) == rotations[-1].rotated_at
    retried = sum("password refused" in record.getMessage() for record in caplog.records)
    report(
        f"db credential rotation: {ROTATIONS} rotations under {WORKERS} query loops, {len(started_at)} queries "
        f"each on a new connection, {len(failures)} failed; begun during a rotation {during}, after each "
        f"{after_each}; "
        f"{provider.reads} password reads from OpenBao, {retried} logins retried after a refused password; "
        f"last: {rotations[-1].describe()}"
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_provider_falls_back_to_the_last_password(
    stack_env: dict[str, str], probe: Probe, bao: hvac.Client, report: Any
) -> None:
    await asyncio.to_thread(_configure, bao, probe)
    current = read_static_credentials(bao, mount=probe.mount, role=probe.role).password
    client = hvac.Client(url=stack_env["BAO_ADDR"], token=stack_env["BAO_TOKEN"], timeout=1)
    provider = StaticRolePassword(client, mount=probe.mount, role=probe.role, username=probe.username)
    assert await provider() == current

    client.url = f"http://127.0.0.1:{_closed_port()}"  # OpenBao gone
    started = time.monotonic()
    assert await provider() == current
    assert provider.fallbacks == 1
    # The fallback password still logs in (nothing rotated meanwhile).
    connection = await asyncpg.connect(probe.dsn, password=provider)
    try:
        assert await connection.fetchval("select current_user") == probe.username
    finally:
        await connection.close()
    elapsed = time.monotonic() - started

    # With nothing read before, there is nothing to fall back on.
    never_read = StaticRolePassword(client, mount=probe.mount, role=probe.role)
    with pytest.raises(SecretsUnavailable):
        await never_read()
    # A static role for another user is refused outright, not papered over.
    wrong_user = StaticRolePassword(bao, mount=probe.mount, role=probe.role, username="controlplane_app")
    with pytest.raises(StaticRoleMismatch):
        await wrong_user()
    report(f"db credential provider: {provider.fallbacks} fallbacks with OpenBao unreachable, {elapsed:.3f}s")


async def test_the_app_connects_with_openbaos_password(
    settings: Settings, probe: Probe, bao: hvac.Client, lent_engine: None
) -> None:
    """With BAO_DB_STATIC_ROLE, the API starts with no password in DATABASE_URL and stays ready through a rotation."""
    await asyncio.to_thread(_configure, bao, probe)
    configured = dataclasses.replace(
        settings, database_url=probe.dsn, bao_db_static_role=probe.role, bao_db_mount=probe.mount
    )
    app = create_app(configured)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rotation") as http,
    ):
        assert (await http.get("/health/ready")).status_code == 200
        await asyncio.to_thread(rotate_static_role, bao, mount=probe.mount, role=probe.role)
        assert db.ENGINE.pool is not None
        await db.ENGINE.pool.expire_connections()  # the next check logs in anew, with the new password
        ready = await http.get("/health/ready")
        assert ready.status_code == 200, ready.text
        async with db.anonymous_tx():
            assert await db.fetch("select current_user as who") == [{"who": probe.username}]
