"""Sign-in throttling: failed password attempts are counted in Redis per account and per client address.

Fixed windows; every attempt reserves a count before the password is checked and a right password gives it
back, so only failures remain counted. Account keys hold a hash of the email, never the email.

While Redis is unavailable, the same limits are counted in this process's memory instead (`LocalWindows`), so
sign-in is never unthrottled: with several API processes an attacker gets at most the limit once per process.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
import redis.exceptions

from controlplane.core import metrics
from controlplane.core.errors import RateLimited
from controlplane.core.ratelimit.limiter import address_key

KEY_PREFIX = "controlplane:throttle:signin:"
log = logging.getLogger("controlplane.auth.throttle")

# Gives a reservation back only while its window lasts: a DECR of an expired (missing) key would leave a
# counter without a window, which would then never expire.
_GIVE_BACK = """
for _, key in ipairs(KEYS) do
    if redis.call('exists', key) == 1 then redis.call('decr', key) end
end
return 0
"""


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    title = "Too many failed sign-in attempts"


class LocalWindows:
    """Fixed-window counters in this process's memory: the throttle's fallback while Redis is unavailable.

    Single event loop, no awaits inside: each call is atomic. Bounded to `max_keys` counters (expired ones are
    dropped first, then the oldest), so a flood of addresses cannot exhaust memory.
    """

    def __init__(self, max_keys: int = 100_000) -> None:
        self.max_keys = max_keys
        self._windows: dict[str, tuple[int, float]] = {}  # key -> (count, monotonic end of its window)

    def count(self, keys: tuple[str, ...], window_seconds: int) -> list[tuple[int, int]]:
        """Add one to each key's count; each key's (count, seconds left in its window)."""
        now = time.monotonic()
        counted = []
        for key in keys:
            count, ends = self._windows.get(key, (0, 0.0))
            if ends <= now:
                count, ends = 0, now + window_seconds
                self._windows.pop(key, None)  # re-inserted last: the oldest stay first for eviction
            self._windows[key] = (count + 1, ends)
            counted.append((count + 1, max(int(ends - now), 1)))
        if len(self._windows) > self.max_keys:
            self._evict(now)
        return counted

    def give_back(self, keys: tuple[str, ...]) -> None:
        now = time.monotonic()
        for key in keys:
            count, ends = self._windows.get(key, (0, 0.0))
            if count > 0 and ends > now:
                self._windows[key] = (count - 1, ends)

    def _evict(self, now: float) -> None:
        for key in [key for key, (_, ends) in self._windows.items() if ends <= now]:
            del self._windows[key]
        while len(self._windows) > self.max_keys:
            del self._windows[next(iter(self._windows))]


@dataclass(frozen=True, slots=True)
class SignInThrottle:
    redis: aioredis.Redis
    per_account: int = 10
    per_address: int = 50
    window_seconds: int = 900
    # Per process: counts while Redis is unavailable.
    fallback: LocalWindows = field(default_factory=LocalWindows, compare=False, repr=False)

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        # An IPv6 client by its /64, as the rate limits count it: one subscriber holds a whole /64.
        return f"{KEY_PREFIX}account:{account}", f"{KEY_PREFIX}address:{address_key(address)}"

    def _within(self, account: int, by_address: int) -> bool:
        return account <= self.per_account and by_address <= self.per_address

    async def reserve(self, email: str, address: str) -> None:
        """Count this attempt as a failure before the password is checked; raise `TooManyAttempts` over a limit.

        Counting first (one atomic INCR per key) means parallel guesses cannot slip past the limit together;
        `succeeded` gives the reservation back when the password was right. Without Redis, counted in this
        process (`LocalWindows`): sign-in stays available and throttled (readiness reports the outage).
        """
        keys = self._keys(email, address)
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in keys:
                    # The window starts at the first failure (SET NX EX works on Redis 6 too, EXPIRE NX not).
                    pipe.set(key, 0, ex=self.window_seconds, nx=True)
                    pipe.incr(key)
                    pipe.ttl(key)
                _, account, account_ttl, _, by_address, address_ttl = await pipe.execute()
            if self._within(account, by_address):
                return
            await self._give_back(keys)  # a refused attempt is not another failure
        except redis.exceptions.RedisError:
            log.warning("sign-in throttle: Redis unavailable, counting in this process", exc_info=True)
            metrics.THROTTLE_FALLBACK_TOTAL.inc()
            (account, account_ttl), (by_address, address_ttl) = self.fallback.count(keys, self.window_seconds)
            if self._within(account, by_address):
                return
            self.fallback.give_back(keys)
        wait = max(account_ttl, address_ttl, 1)
        raise TooManyAttempts(f"Too many failed attempts; try again in {wait} seconds", retry_after_seconds=wait)

    async def succeeded(self, email: str, address: str) -> None:
        keys = self._keys(email, address)
        self.fallback.give_back(keys)  # a no-op unless this attempt was counted here
        try:
            await self._give_back(keys)
        except redis.exceptions.RedisError:
            log.warning("sign-in throttle: could not release a reservation", exc_info=True)

    async def _give_back(self, keys: tuple[str, str]) -> None:
        await self.redis.eval(_GIVE_BACK, len(keys), *keys)
