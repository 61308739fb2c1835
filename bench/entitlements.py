"""The entitlement check at 16 concurrent connections, next to a bare Litestar handler in the same setup.

The servers are one uvicorn process each, started alike (`bench.stack.api_process`): the bare handler, the
control plane with its rate limiter on (as in production: every check spends the key's and the tenant's
budgets in Redis) and, for comparison, the same without the limiter. The load comes from
keep-alive HTTP/1.1 connections written by hand on asyncio streams (an HTTP client library would cost
more CPU than the servers on a 2-core machine). Rounds alternate bare, check, unlimited check …; the figures
are medians. Target: the rate-limited check reaches at least 0.45 of the bare handler's requests/s.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from bench.stack import ApiProcess, Broken, Catalogue, _ok

PLUGIN_SLUG = "bench-reports"
_LENGTH = re.compile(rb"content-length: *(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    latencies: Sequence[float]  # seconds, one per request

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: int) -> float:
        """Milliseconds."""
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1000


def install_plugin(api: ApiProcess, catalogue: Catalogue) -> None:
    """Through the API: a publisher, a free plugin with one version, installed in the benchmark tenant."""
    with httpx.Client(base_url=api.url, timeout=30, headers=catalogue.staff_headers) as client:
        publisher = _ok(client.post("/v1/publishers", json={"name": "Bench", "email": "bench@example.com"}))
        _ok(
            client.post(
                "/v1/plugins",
                json={
                    "slug": PLUGIN_SLUG,
                    "name": "Bench reports",
                    "publisher_id": publisher["id"],
                    "pricing": {"model": "free"},
                    "entitlements": {"features": ["export"], "limits": {"reports": 100}, "seats": 5},
                },
            )
        )
        version = {"version": "1.0.0", "min_platform_version": "1.0.0", "artifact_sha256": "0" * 64}
        _ok(client.post(f"/v1/plugins/{PLUGIN_SLUG}/versions", json=version))
        _ok(client.post(f"/v1/tenants/{catalogue.tenant_id}/plugins", json={"slug": PLUGIN_SLUG}))


def _request(url: str, path: str, api_key: str | None) -> bytes:
    host = urlsplit(url).netloc
    auth = f"authorization: Bearer {api_key}\r\n" if api_key else ""
    return f"GET {path} HTTP/1.1\r\nhost: {host}\r\n{auth}\r\n".encode()


async def _connection(url: str, request: bytes, until: float, latencies: list[float], bodies: set[bytes]) -> int:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    done = 0
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            if not head.startswith(b"HTTP/1.1 200") or length is None:
                raise Broken(f"unexpected answer: {head[:200]!r}")
            body = await reader.readexactly(int(length[1]))
            latencies.append(time.perf_counter() - started)
            bodies.add(body)
            done += 1
    finally:
        writer.close()
    return done


async def _load(url: str, request: bytes, connections: int, seconds: float) -> tuple[Load, set[bytes]]:
    latencies: list[float] = []
    bodies: set[bytes] = set()
    started = time.perf_counter()
    counts = await asyncio.gather(
        *(_connection(url, request, started + seconds, latencies, bodies) for _ in range(connections))
    )
    return Load(sum(counts), time.perf_counter() - started, latencies), bodies


@dataclass(frozen=True)
class EntitlementResult:
    bare: Load
    check: Load  # the rate limiter on
    unlimited: Load  # the same check without the rate limiter

    @property
    def ratio(self) -> float:
        return self.check.per_second / self.bare.per_second

    @property
    def unlimited_ratio(self) -> float:
        return self.unlimited.per_second / self.bare.per_second


def _median(loads: Sequence[Load]) -> Load:
    return sorted(loads, key=lambda load: load.per_second)[len(loads) // 2]


def run(
    api: ApiProcess,
    unlimited: ApiProcess,
    bare: ApiProcess,
    catalogue: Catalogue,
    *,
    connections: int = 16,
    seconds: float = 5.0,
    rounds: int = 3,
) -> EntitlementResult:
    install_plugin(api, catalogue)
    path = f"/v1/entitlements/check?plugin={PLUGIN_SLUG}&feature=export"
    sides = {
        "bare": (bare.url, _request(bare.url, "/constant", None)),
        "check": (api.url, _request(api.url, path, catalogue.api_key)),
        "unlimited": (unlimited.url, _request(unlimited.url, path, catalogue.api_key)),
    }
    print(f"\n== entitlement check: {connections} connections, {rounds} rounds of {seconds:.0f} s each side ==")
    for url, request in sides.values():  # warm: caches, connections, code paths
        asyncio.run(_load(url, request, connections, 1.0))
    loads: dict[str, list[Load]] = {side: [] for side in sides}
    for number in range(1, rounds + 1):
        for side, (url, request) in sides.items():
            load, bodies = asyncio.run(_load(url, request, connections, seconds))
            if side != "bare" and any(b'"allowed":true' not in body for body in bodies):
                raise Broken(f"the entitlement check did not grant the installed plugin: {sorted(bodies)[:2]}")
            loads[side].append(load)
        print(
            f"round {number}: "
            + ", ".join(
                f"{side} {loads[side][-1].per_second:,.0f} req/s (p50 {loads[side][-1].percentile(50):.2f} ms, "
                f"p99 {loads[side][-1].percentile(99):.2f} ms)"
                for side in sides
            ),
            flush=True,
        )
    return EntitlementResult(_median(loads["bare"]), _median(loads["check"]), _median(loads["unlimited"]))
