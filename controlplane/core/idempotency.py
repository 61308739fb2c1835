"""Idempotency keys: the same POST with the same `Idempotency-Key` replays the first response.

Keys are scoped per tenant (from the path) and principal. The first request claims the key in its own
short transaction, runs, and stores its response if it succeeded (2xx); any other outcome releases the
claim, so a failed request leaves nothing behind and can be retried. A reused key with another body is
refused (422); a key whose first request is still running answers 409.
"""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from controlplane.core.db import SystemReason, fetch, system_tx, tenant_tx

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")
# A claim whose request never finished (the process died) is abandoned after this long, so the key
# does not answer "in progress" for a whole day. Far longer than any request may run.
IN_PROGRESS_LEASE = timedelta(minutes=5)


class ClaimOutcome(enum.Enum):
    CLAIMED = "claimed"
    REPLAY = "replay"
    MISMATCH = "mismatch"
    IN_PROGRESS = "in_progress"
    UNSCOPED = "unscoped"  # the tenant in the path does not exist: let the handler answer


@dataclass(frozen=True, slots=True)
class Claim:
    outcome: ClaimOutcome
    row_id: uuid.UUID | None = None
    status: int | None = None
    body: bytes | None = None
    content_type: str | None = None


def request_fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _tx(tenant_id: uuid.UUID | None) -> Any:
    return tenant_tx(tenant_id) if tenant_id else system_tx(SystemReason.IDEMPOTENCY)


async def claim(
    tenant_id: uuid.UUID | None,
    principal: str,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    ttl: timedelta,
) -> Claim:
    now = datetime.now(UTC)
    try:
        async with _tx(tenant_id):
            await fetch(
                "delete from idempotency_keys where tenant_id is not distinct from {} and principal = {} "
                "and key = {} and (expires_at < {} or (state = 'in_progress' and created_at < {}))",
                tenant_id,
                principal,
                key,
                now,
                now - IN_PROGRESS_LEASE,
            )
            inserted = await fetch(
                "insert into idempotency_keys (id, tenant_id, principal, key, method, path, request_hash, "
                "state, expires_at) values ({}, {}, {}, {}, {}, {}, {}, 'in_progress', {}) "
                "on conflict (tenant_id, principal, key) do nothing returning id",
                uuid.uuid4(),
                tenant_id,
                principal,
                key,
                method,
                path,
                fingerprint,
                now + ttl,
            )
            if inserted:
                return Claim(ClaimOutcome.CLAIMED, row_id=inserted[0]["id"])
            rows = await fetch(
                "select request_hash, state, response_status, response_body, response_content_type "
                "from idempotency_keys where tenant_id is not distinct from {} and principal = {} and key = {}",
                tenant_id,
                principal,
                key,
            )
    except asyncpg.ForeignKeyViolationError:
        return Claim(ClaimOutcome.UNSCOPED)
    if not rows:  # released by a concurrent failure between our insert and select
        return Claim(ClaimOutcome.IN_PROGRESS)
    row = rows[0]
    if row["request_hash"] != fingerprint:
        return Claim(ClaimOutcome.MISMATCH)
    if row["state"] != "completed":
        return Claim(ClaimOutcome.IN_PROGRESS)
    return Claim(
        ClaimOutcome.REPLAY,
        status=row["response_status"],
        body=bytes(row["response_body"] or b""),
        content_type=row["response_content_type"],
    )


async def complete(tenant_id: uuid.UUID | None, row_id: uuid.UUID, status: int, body: bytes, content_type: str) -> None:
    async with _tx(tenant_id):
        await fetch(
            "update idempotency_keys set state = 'completed', response_status = {}, response_body = {}, "
            "response_content_type = {} where id = {}",
            status,
            body,
            content_type,
            row_id,
        )


async def release(tenant_id: uuid.UUID | None, row_id: uuid.UUID) -> None:
    async with _tx(tenant_id):
        await fetch("delete from idempotency_keys where id = {}", row_id)


async def forget_tenant(tenant_id: uuid.UUID) -> None:
    """For an erasure, inside the caller's system transaction: drop the tenant's stored requests and
    responses (they hold member emails, the billing contact), including the staff request that created
    the tenant, which is stored outside any tenant and found by the tenant id in its response."""
    await fetch(
        "delete from idempotency_keys where tenant_id = {} "
        "or (tenant_id is null and position(convert_to({}, 'UTF8') in response_body) > 0)",
        tenant_id,
        str(tenant_id),
    )
