"""Run a service coroutine from a Celery task: a fresh event loop and a small pool per run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from controlplane import db
from controlplane.settings import Settings

T = TypeVar("T")


def run_async(settings: Settings, work: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        await db.start_pool(settings.database_url, min_size=1, max_size=2)
        try:
            return await work()
        finally:
            await db.stop_pool()

    return asyncio.run(main())
