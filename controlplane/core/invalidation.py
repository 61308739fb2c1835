"""In-process caches with explicit invalidation across processes, through PostgreSQL NOTIFY.

A change calls `await publish(topic, key)` inside its own transaction. PostgreSQL delivers a notification
to every listening process when, and only if, that transaction commits. Each API process listens on one
dedicated connection and evicts the key from its caches. The publishing process evicts at once as well,
so its own next read after the change never sees the old answer.

A fill that raced with an eviction is dropped (each cache counts its evictions), so a value read before a
change cannot be stored after it. While the listener is not connected, caches serve nothing; a time limit
on every entry bounds how long any mistake could last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import asyncpg

from controlplane.core.db import fetch

CHANNEL = "controlplane_invalidation"
log = logging.getLogger("controlplane.invalidation")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_handlers: dict[str, list[Callable[[str], None]]] = {}
# Listeners connected in this process (tests may run more than one app); caches serve only while one is.
_connected: set[int] = set()


def subscribe(topic: str, evict: Callable[[str], None]) -> None:
    _handlers.setdefault(topic, []).append(evict)


def _dispatch(topic: str, key: str) -> None:
    for evict in _handlers.get(topic, ()):
        evict(key)


async def publish(topic: str, key: object) -> None:
    """Inside the changing transaction: evict `key` here now, and in every process once it commits."""
    text = str(key)
    await fetch("select pg_notify({}, {})", CHANNEL, f"{topic}:{text}")
    _dispatch(topic, text)


class Cache(Generic[K, V]):
    """A dictionary of values that expire after `ttl_seconds` and are evicted by `publish(topic, …)`.

    `key_of` turns the published text back into this cache's key type. `also_on` names further topics whose
    keys evict the same way (a value that depends on another domain's state, keyed alike).
    """

    def __init__(
        self,
        topic: str,
        key_of: Callable[[str], K],
        *,
        ttl_seconds: float,
        max_entries: int = 100_000,
        also_on: tuple[str, ...] = (),
    ):
        self._entries: dict[K, tuple[float, V]] = {}
        self._evictions = 0
        self._ttl = ttl_seconds
        self._max = max_entries
        self._key_of = key_of
        for each in (topic, *also_on):
            subscribe(each, self._evict_text)
        _all_caches.append(self)

    def get(self, key: K) -> V | None:
        if not _connected:
            return None
        entry = self._entries.get(key)
        if entry is None or time.monotonic() - entry[0] > self._ttl:
            return None
        return entry[1]

    def generation(self) -> int:
        """Taken before reading the value from the database; `put` refuses it if anything was evicted since."""
        return self._evictions

    def put(self, key: K, value: V, generation: int) -> None:
        if generation != self._evictions or not _connected:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (time.monotonic(), value)

    def evict(self, key: K) -> None:
        self._evictions += 1
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._evictions += 1
        self._entries.clear()

    def _evict_text(self, text: str) -> None:
        try:
            key = self._key_of(text)
        except ValueError:
            self.clear()
            return
        self.evict(key)


_all_caches: list[Cache[Any, Any]] = []


def clear_all() -> None:
    """Empty every cache of this process (on reconnecting, and for tests that empty the tables)."""
    for cache in _all_caches:
        cache.clear()


class Listener:
    """The one LISTEN connection of an API process; reconnects, and caches stay off while it is down."""

    def __init__(
        self, dsn: str, *, password: Callable[[], Awaitable[str]] | None = None, retry_seconds: float = 1.0
    ) -> None:
        self._dsn = dsn
        self._password = password  # asyncpg's password callable: read again at each reconnect
        self._retry = retry_seconds
        self._connection: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._keep_connected(), name="invalidation-listener")

    async def stop(self) -> None:
        _connected.discard(id(self))
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None and not self._connection.is_closed():
            await self._connection.close()
        clear_all()

    async def _connect(self) -> None:
        connection = await asyncpg.connect(self._dsn, password=self._password)
        connection.add_termination_listener(lambda _: self._on_lost())
        await connection.add_listener(CHANNEL, self._on_notification)
        self._connection = connection
        self._lost.clear()
        # Anything cached before this moment may have missed a notification.
        clear_all()
        _connected.add(id(self))

    def _on_lost(self) -> None:
        _connected.discard(id(self))
        clear_all()
        self._lost.set()

    async def _keep_connected(self) -> None:
        while True:
            await self._lost.wait()
            log.warning("invalidation listener lost its connection; caches are off until it is back")
            while True:
                try:
                    await self._connect()
                    break
                except (OSError, asyncpg.PostgresError):
                    await asyncio.sleep(self._retry)

    @staticmethod
    def _on_notification(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        topic, _, key = payload.partition(":")
        _dispatch(topic, key)
