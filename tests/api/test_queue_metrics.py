"""The Celery backlog is read from the broker when the API is scraped."""

from __future__ import annotations

import redis.asyncio as aioredis
from httpx import AsyncClient

from controlplane.core.metrics import CELERY_QUEUES

MARKER = b"not-a-task: queue length probe"


async def test_the_scrape_reports_the_brokers_queue_length(client: AsyncClient, stack_env: dict[str, str]) -> None:
    broker = aioredis.from_url(stack_env["REDIS_URL"])
    queue = CELERY_QUEUES[0]
    try:
        before = await broker.llen(queue)
        await broker.rpush(queue, MARKER, MARKER, MARKER)
        scraped = (await client.get("/metrics")).text
        assert f'controlplane_celery_queue_messages{{queue="{queue}"}} {float(before + 3)}' in scraped
    finally:
        await broker.lrem(queue, 0, MARKER)
        await broker.aclose()
