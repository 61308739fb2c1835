"""The shared budgets: GCRA buckets in Redis, one atomic script per round trip, shared by every API process.

Each bucket is one key holding its theoretical arrival time (TAT, in microseconds of Redis's own clock, so
processes on different machines agree). A request of cost `c` on a bucket of interval `T` and burst `b` is
allowed when `max(TAT, now) + c·T - now <= b·T`; then TAT moves to that sum. A request spending several buckets
is allowed only if every one allows it, and then spends all of them; a refused request spends nothing.

Checks arriving together are sent together: while one script call is in flight, the next checks queue and go
in the following call, in arrival order, evaluated one after another inside Redis. So the limiter costs about
one round trip per batch rather than per request, and stays exact: no bucket is ever spent past its burst.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from controlplane.core.ratelimit.policy import Buckets, BucketState, Cost, Verdict, costs

KEY_PREFIX = "controlplane:ratelimit:"

# KEYS: every bucket of every request, in order. ARGV[1]: 1 to report without spending. ARGV[2]: per request,
# its bucket count, then per bucket the units it spends and its interval and burst in µs of budget, all
# comma-separated (one string, so that neither side encodes or parses a number at a time). Returns one
# comma-separated string: per request, allowed (1/0) and the wait in µs before it could pass (0 if allowed),
# then per bucket what is left (units) and the µs until it is full.
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local peek = ARGV[1] == '1'
local spec = {}
for number in string.gmatch(ARGV[2], '%d+') do spec[#spec + 1] = tonumber(number) end
local out = {}
local k, a = 1, 1
while a <= #spec do
    local count = spec[a]
    a = a + 1
    local tats, wait = {}, 0
    for i = 0, count - 1 do
        local tat = tonumber(redis.call('GET', KEYS[k + i]) or now)
        if tat < now then tat = now end
        tats[i] = tat
        local over = tat + spec[a + 3 * i] * spec[a + 3 * i + 1] - now - spec[a + 3 * i + 2]
        if over > wait then wait = over end
    end
    local allowed = wait == 0 and not peek
    out[#out + 1] = allowed and '1' or '0'
    out[#out + 1] = string.format('%d', wait)
    for i = 0, count - 1 do
        local cost, interval, tau, tat = spec[a + 3 * i], spec[a + 3 * i + 1], spec[a + 3 * i + 2], tats[i]
        if allowed and cost > 0 then
            tat = tat + cost * interval
            redis.call('SET', KEYS[k + i], string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
        end
        out[#out + 1] = string.format('%d', math.max(0, math.floor((tau - (tat - now)) / interval)))
        out[#out + 1] = string.format('%d', tat - now)
    end
    k, a = k + count, a + 3 * count
end
return table.concat(out, ',')
"""


class LimiterUnavailable(Exception):
    """Redis did not answer the check (down, slow or refusing); the caller decides to fail open or closed."""


@dataclass(frozen=True, slots=True)
class _Check:
    buckets: Buckets
    cost: Cost
    future: asyncio.Future[Verdict]


class GcraStore:
    """Checks budgets in Redis, batching the checks that arrive while a call is in flight.

    A failed call fails the checks queued behind it too, and then checks fail at once (`LimiterUnavailable`)
    for `pause_seconds`, so an outage (or a Redis that stopped answering) costs requests one timeout at most,
    never a timeout per batch; then the next check tries Redis again.
    """

    def __init__(self, client: aioredis.Redis, *, pause_seconds: float = 1.0, max_batch: int = 256) -> None:
        self._client = client
        self._script = client.register_script(_GCRA)
        self._pause_seconds = pause_seconds
        self._max_batch = max_batch
        self._queue: list[_Check] = []
        self._sending = False
        self._down_until = 0.0
        self._in_flight: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak references to tasks

    async def spend(self, buckets: Buckets, cost: Cost = 1) -> Verdict:
        """Spend `cost` units of every bucket (or each its own), or nothing if one cannot afford it."""
        if time.monotonic() < self._down_until:
            raise LimiterUnavailable("paused after a failure")
        check = _Check(buckets, cost, asyncio.get_running_loop().create_future())
        self._queue.append(check)
        if not self._sending:
            self._sending = True
            asyncio.get_running_loop().call_soon(self._start)
        return await check.future

    async def peek(self, buckets: Buckets) -> Verdict:
        """What is left in each bucket, spending nothing (never batched: rare); paused after a failure too."""
        if time.monotonic() < self._down_until:
            raise LimiterUnavailable("paused after a failure")
        try:
            reply = await self._script(keys=[b.key for b in buckets.items], args=[1, _spec([(buckets, 0)])])
        except (redis.exceptions.RedisError, OSError) as error:
            self._down_until = time.monotonic() + self._pause_seconds
            raise LimiterUnavailable(str(error)) from error
        return _verdicts(reply, [buckets])[0]

    def _start(self) -> None:
        batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def _send(self, batch: list[_Check]) -> None:
        try:
            reply = await self._script(
                keys=[b.key for check in batch for b in check.buckets.items],
                args=[0, _spec([(check.buckets, check.cost) for check in batch])],
            )
            verdicts = _verdicts(reply, [check.buckets for check in batch])
        except (redis.exceptions.RedisError, OSError) as error:
            self._down_until = time.monotonic() + self._pause_seconds
            # The checks queued meanwhile fail with it, as they would had they come a moment later: sent on,
            # each batch would wait out its own timeout in the same silence, one after another.
            failed, self._queue = [*batch, *self._queue], []
            for check in failed:
                if not check.future.done():
                    check.future.set_exception(LimiterUnavailable(str(error)))
        except BaseException as error:  # never leave a request waiting on its verdict
            for check in batch:
                if not check.future.done():
                    check.future.set_exception(error)
            raise
        else:
            for check, verdict in zip(batch, verdicts, strict=True):
                if not check.future.done():  # its request may have been cancelled meanwhile
                    check.future.set_result(verdict)
        finally:
            if self._queue:
                self._start()
            else:
                self._sending = False


def _spec(requests: Sequence[tuple[Buckets, Cost]]) -> str:
    parts = []
    for buckets, cost in requests:
        parts.append(str(len(buckets.specs)))
        parts.extend(f"{units},{spec}" for units, spec in zip(costs(buckets, cost), buckets.specs, strict=True))
    return ",".join(parts)


def _verdicts(reply: bytes, requests: Sequence[Buckets]) -> list[Verdict]:
    numbers = [int(number) for number in reply.split(b",")]
    verdicts, at = [], 0
    for buckets in requests:
        allowed, wait = numbers[at], numbers[at + 1]
        at += 2
        states = []
        for _ in buckets.items:
            states.append(BucketState(numbers[at], numbers[at + 1] / 1e6))
            at += 2
        verdicts.append(Verdict(allowed == 1, wait / 1e6, states))
    return verdicts
