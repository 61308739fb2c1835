"""Sign-in throttling: failed password attempts are counted in Redis per account and per client address.

Fixed windows keep it to one INCR per failure. Account keys hold a hash of the email, never the email.
Only failures count, so a person who types their password right is never slowed down by others' traffic
from a shared address until that address has failed `per_address` times.
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

    async def check(self, email: str, address: str) -> None:
        """Raise `TooManyAttempts` while either counter is at its limit."""
        account_key, address_key = self._keys(email, address)
        try:
            account, by_address = await self.redis.mget(account_key, address_key)
            if int(account or 0) < self.per_account and int(by_address or 0) < self.per_address:
                return
            ttl = max(await self.redis.ttl(account_key), await self.redis.ttl(address_key), 1)
        except redis.exceptions.RedisError:
            # Redis down: sign-in stays available (readiness reports the outage).
            log.warning("sign-in throttle: Redis unavailable, not checking", exc_info=True)
            return
        raise TooManyAttempts(f"Too many failed attempts; try again in {ttl} seconds", retry_after_seconds=int(ttl))

    async def record_failure(self, email: str, address: str) -> None:
        try:
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in self._keys(email, address):
                    # The window starts at the first failure (SET NX EX works on Redis 6 too, EXPIRE NX not).
                    pipe.set(key, 0, ex=self.window_seconds, nx=True)
                    pipe.incr(key)
                await pipe.execute()
        except redis.exceptions.RedisError:
            log.warning("sign-in throttle: could not record a failure", exc_info=True)
