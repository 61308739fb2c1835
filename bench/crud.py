"""CRUD latency as a tenant admin sees it: `wrk` at 50 connections on each route, next to the bare handler.

The routes of issue 20, each loaded for the same time with the same `wrk` settings as the bare Litestar handler
(served alike, by the same number of API processes): requests/s, their ratio to the bare handler's, and the
p50, p95 and p99 latency `wrk` measured. A tenant admin's bearer token reads its tenant (with a billing email),
its members and its invoices; the tenant's API key checks an entitlement.

`wrk` is Debian's (`make bench` installs it where missing): a load generator in C, so the figures are the
server's, not a Python client's.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.entitlements import PLUGIN_SLUG, install_plugin
from bench.stack import ApiProcess, Broken, Catalogue, Stack, _ok, create_user

TARGET_RATIO = 0.15  # of the bare handler's requests/s
TARGET_P95_MS = 25.0
ADMIN_PASSWORD = "bench admin password, local only"  # noqa: S105 - a throwaway user of a throwaway stack
MEMBERS = 10

# Printed by wrk when a run ends: the figures as one JSON line (latencies in microseconds).
_REPORT_SCRIPT = """
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "seconds": %.6f, "errors": %d, "p50": %d, "p95": %d, "p99": %d}\\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Load:
    per_second: float
    p50_ms: float
    p95_ms: float
    p99_ms: float


@dataclass(frozen=True)
class RouteResult:
    route: str
    load: Load
    bare: Load

    @property
    def ratio(self) -> float:
        return self.load.per_second / self.bare.per_second

    @property
    def met(self) -> bool:
        return self.ratio >= TARGET_RATIO and self.load.p95_ms < TARGET_P95_MS


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise Broken("wrk is not installed: `make bench` installs Debian's wrk where missing")
    return found


def _wrk(script: Path, url: str, headers: dict[str, str], connections: int, seconds: float) -> Load:
    command = [wrk_path(), "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "-s", str(script), url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    ran = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60, check=False)  # noqa: S603
    report = next((line for line in ran.stdout.splitlines() if line.startswith("{")), None)
    if ran.returncode != 0 or report is None:
        raise Broken(f"wrk failed on {url}: {ran.stdout[-1000:]} {ran.stderr[-1000:]}")
    figures = json.loads(report)
    if figures["errors"]:
        raise Broken(f"{figures['errors']} of {figures['requests']} requests to {url} failed or were refused")
    return Load(
        figures["requests"] / figures["seconds"], figures["p50"] / 1000, figures["p95"] / 1000, figures["p99"] / 1000
    )


def _tenant_admin(stack: Stack, api: ApiProcess, catalogue: Catalogue) -> dict[str, str]:
    """A tenant admin of the catalogue's tenant (with a billing email and members), and its bearer token."""
    tenant_id = catalogue.tenant_id
    email = "bench-admin@example.com"
    asyncio.run(create_user(stack, email, ADMIN_PASSWORD, tenant_id=tenant_id, role="tenant_admin"))
    for number in range(MEMBERS):
        member = f"member-{number}@example.com"
        asyncio.run(create_user(stack, member, ADMIN_PASSWORD, tenant_id=tenant_id, role="tenant_member"))
    with httpx.Client(base_url=api.url, timeout=30) as client:
        billing_email = {"billing_email": "billing@example.com"}
        _ok(client.patch(f"/v1/tenants/{tenant_id}", json=billing_email, headers=catalogue.staff_headers))
        token = _ok(client.post("/v1/auth/token", json={"email": email, "password": ADMIN_PASSWORD}))
    return {"Authorization": f"Bearer {token['access_token']}"}


def run(
    stack: Stack, api: ApiProcess, bare: ApiProcess, catalogue: Catalogue, *, connections: int = 50, seconds: float = 10
) -> list[RouteResult]:
    admin = _tenant_admin(stack, api, catalogue)
    install_plugin(api, catalogue)
    tenant = f"/v1/tenants/{catalogue.tenant_id}"
    routes = {
        "GET /v1/tenants/{id}": (tenant, admin),
        "GET /v1/tenants/{id}/members": (f"{tenant}/members", admin),
        "GET /v1/tenants/{id}/invoices": (f"{tenant}/invoices", admin),
        "GET /v1/entitlements/check": (
            f"/v1/entitlements/check?plugin={PLUGIN_SLUG}&feature=export",
            {"Authorization": f"Bearer {catalogue.api_key}"},
        ),
    }
    with httpx.Client(base_url=api.url, timeout=30) as client:  # each answers 200 before it is loaded
        for path, headers in routes.values():
            _ok(client.get(path, headers=headers))
    script = stack.root / "wrk-report.lua"
    script.write_text(_REPORT_SCRIPT)
    print(f"\n== CRUD latency: wrk -t2 -c{connections} -d{seconds:.0f}s per route, the bare handler before each ==")
    for path, headers in routes.values():  # warm: caches, connections, code paths
        _wrk(script, f"{api.url}{path}", headers, connections, 1)
    _wrk(script, f"{bare.url}/constant", {}, connections, 1)
    results = []
    for route, (path, headers) in routes.items():
        bare_load = _wrk(script, f"{bare.url}/constant", {}, connections, seconds)
        load = _wrk(script, f"{api.url}{path}", headers, connections, seconds)
        result = RouteResult(route, load, bare_load)
        results.append(result)
        print(
            f"{route:<32} {load.per_second:>8,.0f} req/s ({result.ratio:.2f} of bare {bare_load.per_second:,.0f})  "
            f"p50 {load.p50_ms:6.1f} ms  p95 {load.p95_ms:6.1f} ms  p99 {load.p99_ms:6.1f} ms",
            flush=True,
        )
    return results
