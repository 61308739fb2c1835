"""Platform housekeeping jobs (run by Celery beat)."""

from __future__ import annotations

from controlplane.core.db import SystemReason, fetch, system_tx


async def purge_expired_idempotency_keys() -> int:
    async with system_tx(SystemReason.PLATFORM_JOB):
        rows = await fetch("delete from idempotency_keys where expires_at < now() returning id")
    return len(rows)
