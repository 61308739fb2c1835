"""Console sessions: a random id in an HttpOnly cookie, the session itself in Redis.

A visitor who opens the sign-in page gets a session without a user, whose CSRF token protects the sign-in form
itself. It is stored nowhere: its cookie is `v1.<start>.<random nonce>` and its CSRF token an HMAC of that cookie
under a server key (derived from the JWT key set, `VISITOR_KEY_PURPOSE`), so a flood of cookieless requests writes
nothing, and a token is good only with the cookie it was made for. Signing in starts a new session (a new id: a
session id known before sign-in is worth nothing after). A session ends when its user signs out, after
`IDLE_SECONDS` without a request, and `MAX_SECONDS` after it began whatever its use. Redis holds each signed-in
session under the SHA-256 of its id, so its keys (a dump, a `KEYS *`) do not give away a live cookie.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from controlplane.core.errors import ServiceUnavailable

COOKIE = "cp_console"  # over http (development), scoped to /console
# Over https: a browser takes a `__Host-` cookie only Secure, from this very host and for Path=/, so no sibling
# subdomain can plant or shadow a session (or a visitor's, whose CSRF token it would then know).
SECURE_COOKIE = "__Host-cp_console"
KEY_PREFIX = "controlplane:console:session:"
IDLE_SECONDS = 2 * 3600
MAX_SECONDS = 12 * 3600
_ID_BYTES = 32
T = TypeVar("T")
VISITOR_KEY_PURPOSE = b"controlplane console visitor csrf v1"
_VISITOR = "v1."  # no session id has a dot (URL-safe base64)
_VISITOR_LEEWAY_SECONDS = 60  # a visitor cookie made by a process whose clock runs ahead
# The server's visitor keys: the first signs, every one verifies (a key rotated out a moment ago still does).
VisitorKeys = Callable[[], Awaitable[tuple[bytes, ...]]]


@dataclass(frozen=True, slots=True)
class CookieShape:
    name: str
    path: str
    secure: bool


@functools.lru_cache(maxsize=8)
def cookie_shape(env: str, public_url: str) -> CookieShape:
    """The session cookie's name, path and Secure flag: `SECURE_COOKIE` over https, and always in production."""
    if env == "production" or public_url.startswith("https://"):
        return CookieShape(SECURE_COOKIE, "/", secure=True)
    return CookieShape(COOKIE, "/console", secure=False)


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
    # A visitor's tokens under the server's other keys, still accepted (a form shown before a key rotation).
    other_csrf_tokens: tuple[str, ...] = ()

    @property
    def expires_at(self) -> float:
        return self.started_at + MAX_SECONDS

    @property
    def is_visitor(self) -> bool:
        return self.user_id is None

    def accepts_csrf(self, sent: str) -> bool:
        # Compared as bytes: compare_digest refuses str with anything but ASCII (a TypeError, a 500).
        return any(
            hmac.compare_digest(sent.encode(), token.encode()) for token in (self.csrf_token, *self.other_csrf_tokens)
        )


def _key(session_id: str) -> str:
    return KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest()


def _visitor_token(key: bytes, cookie: str) -> str:
    digest = hmac.new(key, cookie.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class SessionStore:
    def __init__(self, client: aioredis.Redis, visitor_keys: VisitorKeys) -> None:
        self._client = client
        self._visitor_keys = visitor_keys

    async def start_visitor(self) -> ConsoleSession:
        """A visitor's session: nothing stored, its cookie and CSRF token bound by the server's key."""
        started = int(time.time())
        return await self._visitor(f"{_VISITOR}{started}.{secrets.token_urlsafe(_ID_BYTES)}", started)

    async def _find_visitor(self, cookie: str) -> ConsoleSession | None:
        _, started, nonce = cookie.split(".", 2) if cookie.count(".") == 2 else ("", "", "")
        if not (started.isascii() and started.isdigit() and len(started) <= 12 and len(nonce) == 43):
            return None
        age = time.time() - int(started)
        if not -_VISITOR_LEEWAY_SECONDS <= age < MAX_SECONDS:
            return None
        return await self._visitor(cookie, int(started))

    async def _visitor(self, cookie: str, started: int) -> ConsoleSession:
        tokens = [_visitor_token(key, cookie) for key in await self._visitor_keys()]
        return ConsoleSession(
            id=cookie,
            user_id=None,
            csrf_token=tokens[0],
            started_at=float(started),
            other_csrf_tokens=tuple(tokens[1:]),
        )

    async def start(self, user_id: uuid.UUID, generation: int = 0) -> ConsoleSession:
        session = ConsoleSession(
            id=secrets.token_urlsafe(_ID_BYTES),
            user_id=user_id,
            csrf_token=secrets.token_urlsafe(_ID_BYTES),
            started_at=time.time(),
            generation=generation,
        )
        value = json.dumps(
            {
                "user_id": str(user_id),
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
        if session_id.startswith(_VISITOR):
            return await self._find_visitor(session_id)
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
        if not session_id.startswith(_VISITOR):  # a visitor's is stored nowhere
            await redis_call(self._client.delete(_key(session_id)))


async def redis_call(command: Awaitable[T]) -> T:
    """A Redis command of the console's (sessions, sign-up links): an outage is a named 503, never a 500."""
    try:
        return await command
    except (redis.exceptions.RedisError, OSError) as error:
        raise SessionStoreUnavailable("The console cannot reach its sessions now; retry shortly") from error
