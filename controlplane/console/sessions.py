"""Console sessions: a random id in an HttpOnly cookie, the session itself in Redis.

A visitor who opens the sign-in page gets a session without a user, whose CSRF token protects the sign-in form
itself; signing in ends it and starts a new session (a new id: a session id known before sign-in is worth nothing
after). A session ends when its user signs out, after `IDLE_SECONDS` without a request, and `MAX_SECONDS` after it
began whatever its use. Redis holds each session under the SHA-256 of its id, so its keys (a dump, a `KEYS *`) do
not give away a live cookie.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from controlplane.core.errors import ServiceUnavailable

COOKIE = "cp_console"
KEY_PREFIX = "controlplane:console:session:"
IDLE_SECONDS = 2 * 3600
MAX_SECONDS = 12 * 3600
_ID_BYTES = 32
T = TypeVar("T")


class SessionStoreUnavailable(ServiceUnavailable):
    code = "console_sessions_unavailable"
    title = "Console sessions are unavailable"
    dependency = "redis"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    id: str  # the cookie's value; never stored
    user_id: uuid.UUID | None  # None: a visitor, not signed in
    csrf_token: str
    started_at: float  # epoch seconds
    # The user's session generation when it started: once theirs is higher (a password change, "sign out
    # everywhere"), the session is over (`ConsoleMiddleware`).
    generation: int = 0

    @property
    def expires_at(self) -> float:
        return self.started_at + MAX_SECONDS


def _key(session_id: str) -> str:
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def start(self, user_id: uuid.UUID | None, generation: int = 0) -> ConsoleSession:
        session = ConsoleSession(
            id=secrets.token_urlsafe(_ID_BYTES),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(_ID_BYTES),
            started_at=time.time(),
            generation=generation,
        )
        value = json.dumps(
            {
                "user_id": str(user_id) if user_id else None,
                "csrf_token": session.csrf_token,
                "started_at": session.started_at,
                "generation": generation,
            }
        )
        await redis_call(self._client.set(_key(session.id), value, ex=IDLE_SECONDS))
        return session

    async def find(self, session_id: str) -> ConsoleSession | None:
        """The live session of this id, its idle time restarted; None for an unknown, ended or expired one."""
        if not session_id or len(session_id) > 128:
            return None
        key = _key(session_id)
        raw: Any = await redis_call(self._client.get(key))
        if raw is None:
            return None
        stored = json.loads(raw)
        session = ConsoleSession(
            id=session_id,
            user_id=uuid.UUID(stored["user_id"]) if stored["user_id"] else None,
            csrf_token=stored["csrf_token"],
            started_at=float(stored["started_at"]),
            generation=int(stored.get("generation", 0)),  # sessions from before generations: 0
        )
        left = session.expires_at - time.time()
        if left <= 0:
            await self.end(session_id)
            return None
        await redis_call(self._client.expire(key, int(min(IDLE_SECONDS, left)) + 1))
        return session

    async def end(self, session_id: str) -> None:
        await redis_call(self._client.delete(_key(session_id)))


async def redis_call(command: Awaitable[T]) -> T:
    """A Redis command of the console's (sessions, sign-up links): an outage is a named 503, never a 500."""
    try:
        return await command
    except (redis.exceptions.RedisError, OSError) as error:
        raise SessionStoreUnavailable("The console cannot reach its sessions now; retry shortly") from error
