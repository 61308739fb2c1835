"""What the control plane publishes for other processes' caches (`controlplane.core.invalidation`), heard as
another process hears it: on its own connection, only once the publishing transaction commits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from controlplane.core.invalidation import CHANNEL
from tests.conftest import connect_as_inspector


@asynccontextmanager
async def published(stack_env: dict[str, str]) -> AsyncIterator[list[str]]:
    """Every `topic:key` published while the block runs, in order."""
    connection = await connect_as_inspector(stack_env)
    heard: list[str] = []

    def on_notification(_connection: Any, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)

    await connection.add_listener(CHANNEL, on_notification)
    try:
        yield heard
    finally:
        await connection.close()


async def heard_once(heard: list[str], payload: str) -> None:
    """Wait (a second at most) until `payload` has been heard; notifications arrive asynchronously."""
    for _ in range(200):
        if payload in heard:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{payload!r} was not published; heard {heard}")
