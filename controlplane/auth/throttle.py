"""Sign-in throttling: failed password attempts are counted in Redis per account and per client address.

Fixed windows; every attempt reserves a count before the password is checked and a right password gives it
back, so only failures remain counted. Account keys hold a hash of the email, never the email.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from controlplane.exceptions import RateLimited

KEY_PREFIX = "controlplane:throttle:signin:"
log = logging.getLogger("controlplane.auth.throttle")


class TooManyAttempts(RateLimited):
    code = "too_many_attempts"
    title = "Too many failed sign-in attempts"


@dataclass(frozen=True, slots=True)
class SignInThrottle:
    redis: aioredis.Redis
    per_account: int = 10
    per_address: int = 50
    window_seconds: int = 900

    def _keys(self, email: str, address: str) -> tuple[str, str]:
        account = hashlib.sha256(email.strip().lower().encode()).hexdigest()
        return f"{KEY_PREFIX}account:{account}", f"{KEY_PREFIX}address:{address}"

    async def reserve(self, email: str, address: str) -> None:
        """Count this attempt as a failure before the password is checked; raise `TooManyAttempts` over a limit.

        Counting first (one atomic INCR per key) means parallel guesses cannot slip past the limit together;
        `succeeded` gives the reservation back when the password was right.
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
            if account <= self.per_account and by_address <= self.per_address:
                return
            await self._give_back(keys)  # a refused attempt is not another failure
        except redis.exceptions.RedisError:
            # Redis down: sign-in stays available (readiness reports the outage).
            log.warning("sign-in throttle: Redis unavailable, not counting", exc_info=True)
            return
        wait = max(account_ttl, address_ttl, 1)
        raise TooManyAttempts(f"Too many failed attempts; try again in {wait} seconds", retry_after_seconds=wait)

    async def succeeded(self, email: str, address: str) -> None:
        try:
            await self._give_back(self._keys(email, address))
        except redis.exceptions.RedisError:
            log.warning("sign-in throttle: could not release a reservation", exc_info=True)

    async def _give_back(self, keys: tuple[str, str]) -> None:
        async with self.redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.decr(key)
            await pipe.execute()
