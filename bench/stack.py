"""A throwaway dev stack for the benchmarks: started in a temporary folder, migrated, stopped at the end.

Also the real API processes (uvicorn, as `controlplane run` starts them) and the catalogue, tenant and
API key the ingestion benchmark reports usage with, all created through the HTTP API.
"""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from controlplane.devstack import DevStack
from controlplane.ops.migrations import run_migrations

METRIC_CODE = "bench_calls"
PLAN_CODE = "bench"
CURRENCY = "EUR"
FLAT_MINOR = 1000  # per period, billed in advance
UNIT_MINOR = "0.5"  # per event, billed in arrears
STAFF_PASSWORD = "bench staff password, local only"  # noqa: S105 - a throwaway user of a throwaway stack


# The limiter is on, as in production, with budgets the load never reaches: the figures are its cost, not its
# refusals (`RATE_LIMIT_ENABLED=false` gives the same process without it, for comparison).
UNREACHED_LIMITS = {
    f"RATE_LIMIT_{scope}{limit_class}": "1000000/100000000"
    for scope in ("", "TENANT_")
    for limit_class in ("INGESTION", "ENTITLEMENTS", "READS", "WRITES", "UNAUTHENTICATED")
}


class Broken(Exception):
    """Something is wrong (not merely slow): the benchmark's figures would mean nothing."""


@dataclass
class Stack:
    root: Path
    env: dict[str, str]  # the dev stack's env: DATABASE_URL, DATABASE_OWNER_URL, REDIS_URL, BAO_*, …

    @property
    def process_env(self) -> dict[str, str]:
        """The environment for a child process of the control plane (API, CLI) on this stack only."""
        return {
            **os.environ,
            **self.env,
            **UNREACHED_LIMITS,
            "CONTROLPLANE_DEVSTACK_DIR": str(self.root),
            "PYTHONUNBUFFERED": "1",
        }

    async def owner(self) -> asyncpg.Connection:
        """The owner role in the platform scope (it is subject to the forced RLS policies too)."""
        return await asyncpg.connect(self.env["DATABASE_OWNER_URL"], server_settings={"app.scope": "system"})


@contextmanager
def dev_stack(keep: bool = False) -> Iterator[Stack]:
    """A migrated dev stack in a fresh temporary folder; stopped (and the folder removed) on exit."""
    root = Path(tempfile.mkdtemp(prefix="controlplane-bench-"))
    stack = DevStack(root, api_port=0)
    try:
        started = time.perf_counter()
        env = stack.up(configured={})
        chatter = io.StringIO()  # Piccolo's progress report; shown only if the migrations fail
        try:
            with redirect_stdout(chatter):
                asyncio.run(run_migrations(env["DATABASE_OWNER_URL"], env["DATABASE_URL"]))
        except Exception:
            print(chatter.getvalue())
            raise
        print(f"dev stack up and migrated in {time.perf_counter() - started:.1f} s ({root})", flush=True)
        yield Stack(root, env)
    finally:
        stack.down()
        if keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class ApiProcess:
    url: str
    pid: int


@contextmanager
def api_process(
    stack: Stack,
    app: str = "controlplane.app:create_app_from_env",
    ready_path: str = "/health/ready",
    *,
    rate_limited: bool = True,
    workers: int = 1,
) -> Iterator[ApiProcess]:
    """The API, launched the way `controlplane run` launches it (uvicorn), by one process or `workers`.

    `app` is an app factory; another (e.g. a bare Litestar app to compare with) runs in the same setup.
    """
    port = free_port()
    name = app.partition(":")[0].rsplit(".", 1)[-1] + ("" if rate_limited else "-unlimited")
    log_path = stack.root / f"{name}.log"
    env = {**stack.process_env, "RATE_LIMIT_ENABLED": "true" if rate_limited else "false"}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        app,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--workers",
        str(workers),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base_url}{ready_path}", process, log_path)
        yield ApiProcess(base_url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise Broken(f"the API process exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise Broken(f"the API was not ready within {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")


def _ok(response: httpx.Response, *statuses: int) -> Any:
    if response.status_code not in (statuses or (200, 201)):
        raise Broken(f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}")
    return response.json()


@dataclass
class Catalogue:
    staff_headers: dict[str, str]
    plan_id: uuid.UUID
    tenant_id: uuid.UUID  # the tenant that reports usage in the ingestion benchmark
    api_key: str  # that tenant's API key (role tenant_member)


async def create_user(
    stack: Stack,
    email: str,
    password: str,
    *,
    staff: bool = False,
    tenant_id: uuid.UUID | None = None,
    role: str | None = None,
) -> None:
    """A user, as `controlplane users create` makes one: platform staff, or a member of a tenant (a role)."""
    from controlplane.core import db
    from tenants import service

    await db.start_pool(stack.env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        await service.create_or_update_user(email, password, staff=staff, tenant_id=tenant_id, role=role)
    finally:
        await db.stop_pool()


def set_up_catalogue(stack: Stack, base_url: str) -> Catalogue:
    """Through the API: a staff token, the metric, a flat + metered plan, a tenant subscribed to it now,
    and a tenant API key."""
    email = "bench-staff@example.com"
    asyncio.run(create_user(stack, email, STAFF_PASSWORD, staff=True))
    with httpx.Client(base_url=base_url, timeout=30) as client:
        token = _ok(client.post("/v1/auth/token", json={"email": email, "password": STAFF_PASSWORD}))
        staff = {"Authorization": f"Bearer {token['access_token']}"}
        _ok(
            client.post(
                "/v1/metrics",
                json={"code": METRIC_CODE, "name": "Bench calls", "aggregation": "count"},
                headers=staff,
            )
        )
        plan = _ok(
            client.post(
                "/v1/plans",
                json={
                    "code": PLAN_CODE,
                    "name": "Bench",
                    "currency": CURRENCY,
                    "interval": "month",
                    "charges": [
                        {"type": "flat", "amount_minor": FLAT_MINOR},
                        {
                            "type": "metered",
                            "metric_code": METRIC_CODE,
                            "model": "per_unit",
                            "unit_amount_minor": UNIT_MINOR,
                        },
                    ],
                },
                headers=staff,
            )
        )
        tenant = _ok(
            client.post(
                "/v1/tenants",
                json={"name": "Ingestion bench", "slug": "ingest-bench", "currency": CURRENCY},
                headers=staff,
            )
        )
        _ok(client.post(f"/v1/tenants/{tenant['id']}/subscriptions", json={"plan_code": PLAN_CODE}, headers=staff))
        key = _ok(
            client.post(
                f"/v1/tenants/{tenant['id']}/api-keys", json={"name": "bench", "role": "tenant_member"}, headers=staff
            )
        )
    return Catalogue(staff, uuid.UUID(plan["id"]), uuid.UUID(tenant["id"]), key["secret"])
