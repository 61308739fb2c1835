"""Ingestion: events/s through `POST /v1/usage` next to the raw limit of the same INSERT through asyncpg.

Both sides store the same kind of rows (fresh idempotency keys, one tenant, batches of 1,000) with the
same number of concurrent clients. The raw side runs the very statement `billing.usage.repository.insert_usage_events`
builds (captured from it, not copied), as the app role, with the tenant context set in each transaction as
`tenant_tx` does: the same row-level-security path, minus HTTP, authentication and validation.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import asyncpg
import httpx
import msgspec
import psutil
from piccolo.querystring import QueryString

from bench.stack import METRIC_CODE, ApiProcess, Broken, Stack
from billing.usage import repository as usage_repository

PROPERTIES = {"endpoint": "/v1/things", "region": "eu-west"}
# The metric as the service hands it to `insert_usage_events` (bench.stack creates it: a `count`).
BENCH_METRIC = {"code": METRIC_CODE, "aggregation": "count", "field": None}
WARM_UP_BATCHES = 2


@dataclass(frozen=True)
class Rate:
    events: int
    seconds: float
    # CPU used meanwhile, in cores (1.0 = one core busy all along): by the API process (idle on the raw side),
    # by this process (the load generator: httpx, or the asyncpg client) and by PostgreSQL (every backend).
    api_cores: float = 0.0
    bench_cores: float = 0.0
    db_cores: float = 0.0

    @property
    def per_second(self) -> float:
        return self.events / self.seconds


class CpuMeter:
    """CPU seconds (user + system) of the API process, of this process and of the PostgreSQL server."""

    def __init__(self, api_pid: int, postgres_data: Path) -> None:
        self.api = psutil.Process(api_pid)
        self.bench = psutil.Process()
        self.postgres = psutil.Process(int((postgres_data / "postmaster.pid").read_text().split()[0]))

    @staticmethod
    def _seconds(processes: list[psutil.Process]) -> float:
        total = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def read(self) -> tuple[float, float, float]:
        postgres = [self.postgres, *self.postgres.children(recursive=True)]
        return self._seconds([self.api]), self._seconds([self.bench]), self._seconds(postgres)

    @staticmethod
    def rate(events: int, seconds: float, before: tuple[float, ...], after: tuple[float, ...]) -> Rate:
        api, bench, db = ((end - start) / seconds for start, end in zip(before, after, strict=True))
        return Rate(events, seconds, api, bench, db)


def _events(prefix: str, batch: int, size: int, when: datetime) -> list[dict[str, Any]]:
    stamp = when.isoformat().replace("+00:00", "Z")
    return [
        {
            "idempotency_key": f"{prefix}-{batch:05d}-{index:04d}",
            "metric_code": METRIC_CODE,
            "timestamp": stamp,
            "value": 1,
            "properties": PROPERTIES,
        }
        for index in range(size)
    ]


def _rows(prefix: str, batch: int, size: int, when: datetime) -> list[tuple[Any, ...]]:
    """What the service hands `insert_usage_events` for the same events: (key, code, time, value, properties)."""
    properties = msgspec.json.encode(PROPERTIES).decode()
    events = _events(prefix, batch, size, when)
    return [(event["idempotency_key"], METRIC_CODE, when, Decimal(1), properties) for event in events]


def _drain(items: Sequence[Any]) -> Iterator[Any]:
    # One iterator shared by every client task: each item is taken exactly once (single-threaded loop).
    return iter(items)


async def measure_api(
    base_url: str, api_key: str, batches: int, size: int, clients: int, round_: int, meter: CpuMeter
) -> Rate:
    """`batches` request bodies (encoded beforehand) posted by `clients` concurrent connections."""
    when = datetime.now(UTC) - timedelta(minutes=1)
    encode = msgspec.json.encode
    warm = [encode({"events": _events(f"api{round_}-warm", b, size, when)}) for b in range(WARM_UP_BATCHES)]
    bodies = [encode({"events": _events(f"api{round_}", b, size, when)}) for b in range(batches)]
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=120, limits=limits) as client:

        async def post(body: bytes) -> None:
            response = await client.post("/v1/usage", content=body)
            if response.status_code != 200:
                raise Broken(f"POST /v1/usage answered {response.status_code}: {response.text[:2000]}")
            reply = response.json()
            if reply["accepted"] != size:
                raise Broken(f"POST /v1/usage accepted {reply['accepted']} of {size}: {str(reply)[:2000]}")

        async def client_task(queue: Iterator[bytes]) -> None:
            for body in queue:
                await post(body)

        await asyncio.gather(*(post(body) for body in warm))  # connections, pool and caches warmed up
        queue = _drain(bodies)
        cpu, started = meter.read(), time.perf_counter()
        await asyncio.gather(*(client_task(queue) for _ in range(clients)))
        return meter.rate(batches * size, time.perf_counter() - started, cpu, meter.read())


async def insert_statement(tenant_id: uuid.UUID, rows: Sequence[tuple[Any, ...]]) -> tuple[str, list[Any]]:
    """The SQL and arguments `billing.usage.repository.insert_usage_events` runs for `rows`, compiled for asyncpg
    exactly as Piccolo compiles it for the product."""
    captured: list[QueryString] = []

    async def capture(sql: str, *args: Any) -> list[dict[str, Any]]:
        captured.append(QueryString(sql, *args))
        raise _Captured

    with mock.patch.object(usage_repository, "fetch", capture), contextlib.suppress(_Captured):
        await usage_repository.insert_usage_events(tenant_id, rows, [BENCH_METRIC])
    return captured[0].compile_string(engine_type="postgres")


class _Captured(Exception):
    """Stops `insert_usage_events` once its statement is captured."""


async def measure_raw(
    database_url: str, tenant_id: uuid.UUID, batches: int, size: int, clients: int, round_: int, meter: CpuMeter
) -> Rate:
    """The same number of rows, fresh keys, each statement in its own transaction with the tenant context
    set first, `clients` connections at once."""
    when = datetime.now(UTC) - timedelta(minutes=1)
    prefixes = [(f"raw{round_}-warm", b) for b in range(WARM_UP_BATCHES)]
    prefixes += [(f"raw{round_}", b) for b in range(batches)]
    statements = [await insert_statement(tenant_id, _rows(prefix, b, size, when)) for prefix, b in prefixes]
    pool = await asyncpg.create_pool(database_url, min_size=clients, max_size=clients)
    context = "select set_config('app.tenant_id', $1, true), set_config('app.scope', 'tenant', true)"

    async def insert(connection: asyncpg.Connection, sql: str, args: list[Any]) -> None:
        async with connection.transaction():
            await connection.fetch(context, str(tenant_id))
            rows = await connection.fetch(sql, *args)
        if rows[0]["n"] != size:
            raise Broken(f"the raw INSERT stored {rows[0]['n']} of {size} rows")

    async def client_task(queue: Iterator[tuple[str, list[Any]]]) -> None:
        async with pool.acquire() as connection:
            for sql, args in queue:
                await insert(connection, sql, args)

    try:
        warm, timed = statements[:WARM_UP_BATCHES], statements[WARM_UP_BATCHES:]
        await asyncio.gather(*(client_task(_drain([statement])) for statement in warm))
        queue = _drain(timed)
        cpu, started = meter.read(), time.perf_counter()
        await asyncio.gather(*(client_task(queue) for _ in range(clients)))
        return meter.rate(len(timed) * size, time.perf_counter() - started, cpu, meter.read())
    finally:
        await pool.close()


def _median(rates: Sequence[Rate]) -> Rate:
    return sorted(rates, key=lambda rate: rate.per_second)[len(rates) // 2]


@dataclass(frozen=True)
class IngestionResult:
    api_rounds: list[Rate]
    raw_rounds: list[Rate]

    @property
    def api(self) -> Rate:
        return _median(self.api_rounds)

    @property
    def raw(self) -> Rate:
        return _median(self.raw_rounds)

    @property
    def ratio(self) -> float:
        return self.api.per_second / self.raw.per_second


def run(
    api: ApiProcess,
    stack: Stack,
    tenant_id: uuid.UUID,
    api_key: str,
    *,
    batches: int,
    size: int,
    clients: int,
    rounds: int,
) -> IngestionResult:
    """`rounds` rounds, API then raw in each, so drift (a growing table, a busy machine) hits both alike;
    the medians are compared."""
    print(
        f"\n== ingestion: {batches} batches of {size:,} events per side and round, {clients} concurrent clients, "
        f"{rounds} rounds; {os.cpu_count()} CPU cores ==",
        flush=True,
    )
    postgres_data = stack.root / "postgres" / "data"
    meter = CpuMeter(api.pid, postgres_data)
    result = IngestionResult([], [])
    for round_ in range(1, rounds + 1):
        api_rate = asyncio.run(measure_api(api.url, api_key, batches, size, clients, round_, meter))
        raw = asyncio.run(measure_raw(stack.env["DATABASE_URL"], tenant_id, batches, size, clients, round_, meter))
        result.api_rounds.append(api_rate)
        result.raw_rounds.append(raw)
        print(
            f"  round {round_}: API {api_rate.per_second:>8,.0f} events/s in {api_rate.seconds:.2f} s "
            f"[cores: API {api_rate.api_cores:.2f}, httpx {api_rate.bench_cores:.2f}, PG {api_rate.db_cores:.2f}]   "
            f"raw {raw.per_second:>8,.0f} events/s in {raw.seconds:.2f} s "
            f"[cores: asyncpg {raw.bench_cores:.2f}, PG {raw.db_cores:.2f}]   "
            f"API/raw {api_rate.per_second / raw.per_second:.2f}",
            flush=True,
        )
    print(
        f"  median: API (POST /v1/usage, 1 API process) {result.api.per_second:,.0f} events/s, "
        f"raw (the same INSERT via asyncpg) {result.raw.per_second:,.0f} events/s, API/raw {result.ratio:.2f}",
        flush=True,
    )
    return result
