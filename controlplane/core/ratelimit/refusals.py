"""How long each tenant has been refused without a break, shared by every API process through Redis.

A tenant's streak starts at its first refusal and lasts while refusals keep coming less than `GAP_SECONDS`
apart. The gauge `controlplane_rate_limit_longest_refusal_seconds` is the longest streak going on, read at
scrape time, so an alert can say that one tenant has been refused for ten minutes without a tenant id in any
label. Each process records a tenant's refusal at most once a second: a flood of refusals costs Redis little.
"""

from __future__ import annotations

import logging
import time
import uuid

import redis.asyncio as aioredis
import redis.exceptions

from controlplane.core import metrics
from controlplane.core.ratelimit.store import KEY_PREFIX

STREAKS_KEY = KEY_PREFIX + "refusal-streaks"
GAP_SECONDS = 60
log = logging.getLogger("controlplane.ratelimit")

# ARGV: tenant id, gap in µs. The hash holds "<first µs>:<last µs>" per tenant.
_RECORD = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local held = redis.call('HGET', KEYS[1], ARGV[1])
local first = now
if held then
    local since, last = string.match(held, '(%d+):(%d+)')
    if now - tonumber(last) <= tonumber(ARGV[2]) then first = tonumber(since) end
end
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%d', first, now))
return 0
"""

# ARGV: gap in µs. Drops ended streaks; returns the longest going on, in µs.
_LONGEST = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local entries = redis.call('HGETALL', KEYS[1])
local longest = 0
for i = 1, #entries, 2 do
    local since, last = string.match(entries[i + 1], '(%d+):(%d+)')
    if now - tonumber(last) > tonumber(ARGV[1]) then
        redis.call('HDEL', KEYS[1], entries[i])
    elseif now - tonumber(since) > longest then
        longest = now - tonumber(since)
    end
end
return longest
"""


class RefusalStreaks:
    def __init__(self, client: aioredis.Redis) -> None:
        self._record = client.register_script(_RECORD)
        self._longest = client.register_script(_LONGEST)
        self._recorded: dict[uuid.UUID, float] = {}  # tenant -> when this process last recorded it

    async def refused(self, tenant_id: uuid.UUID) -> None:
        now = time.monotonic()
        if now - self._recorded.get(tenant_id, -1.0) < 1.0:
            return
        if len(self._recorded) >= 10_000:
            self._recorded.clear()
        self._recorded[tenant_id] = now
        try:
            await self._record(keys=[STREAKS_KEY], args=[str(tenant_id), GAP_SECONDS * 1_000_000])
        except (redis.exceptions.RedisError, OSError):
            log.warning("rate limit: a refusal streak was not recorded (Redis unavailable)")

    async def refresh_gauge(self) -> None:
        longest = int(await self._longest(keys=[STREAKS_KEY], args=[GAP_SECONDS * 1_000_000]))
        metrics.RATE_LIMIT_LONGEST_REFUSAL_SECONDS.set(longest / 1e6)
