"""Each tenant's data key for its personal data (envelope encryption, `controlplane.core.pii`): made by OpenBao
transit on the tenant's first sealed value, stored only wrapped (`tenant_data_keys`), and kept unwrapped in this
process's memory only, for at most `TTL_SECONDS`, so a warm read costs no OpenBao call.

The memory is an invalidation cache: erasing a tenant destroys its key (the row, and, through `publish`, the
copy in every API process once the erasure commits). Without the invalidation listener (workers, the CLI) nothing
is kept: every use unwraps again. Keys are cached only from a transaction of their own that has read committed
rows: a key made inside a caller's transaction that then rolls back must not seal anything later.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from controlplane.core import invalidation
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pii import DataKey, PiiCipher, key_version
from tenants import pii_repository as repository

TOPIC = "tenant_data_key"
# Long enough that a busy tenant's reads rarely unwrap; short enough to bound a key's life in memory (a missed
# eviction included). A process keeps at most MAX_ENTRIES keys (the cache empties when full).
TTL_SECONDS = 300.0
MAX_ENTRIES = 10_000

_cache: invalidation.Cache[uuid.UUID, DataKey] = invalidation.Cache(
    TOPIC, uuid.UUID, ttl_seconds=TTL_SECONDS, max_entries=MAX_ENTRIES
)


async def _load(cipher: PiiCipher, tenant_ids: Sequence[uuid.UUID], *, create: bool) -> dict[uuid.UUID, DataKey]:
    """Inside the caller's transaction: the tenants' keys, unwrapped in one OpenBao call; with `create`, a key
    made for each tenant without one (a call each). A tenant with none (and not `create`) is left out."""
    await repository.share_key_lock()
    stored = {row["tenant_id"]: row["wrapped_key"] for row in await repository.data_keys(tenant_ids)}
    made: dict[uuid.UUID, DataKey] = {}
    for tenant_id in tenant_ids if create else ():
        if tenant_id in stored:
            continue
        plaintext, wrapped = await asyncio.to_thread(cipher.new_data_key, tenant_id)
        if await repository.insert_data_key(tenant_id, wrapped, key_version(wrapped)):
            made[tenant_id] = DataKey(tenant_id, plaintext)
        else:  # another transaction made one first (and committed): that one is the tenant's
            (row,) = await repository.data_keys([tenant_id])
            stored[tenant_id] = row["wrapped_key"]
    wrapped_keys = list(stored.items())
    plain = await asyncio.to_thread(cipher.unwrap_data_keys, wrapped_keys) if wrapped_keys else []
    return made | {tenant_id: DataKey(tenant_id, key) for (tenant_id, _), key in zip(wrapped_keys, plain, strict=True)}


async def for_sealing(cipher: PiiCipher, tenant_id: uuid.UUID) -> DataKey:
    """Inside the caller's transaction: the tenant's key, made now if it has none. Not cached from here (the
    transaction may still roll back); the next read in a transaction of its own caches it."""
    if (cached := _cache.get(tenant_id)) is not None:
        return cached
    return (await _load(cipher, [tenant_id], create=True))[tenant_id]


async def for_jobs(cipher: PiiCipher, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, DataKey]:
    """Inside the caller's (system) transaction: every tenant's key, made where missing. Not cached."""
    return await _load(cipher, list(dict.fromkeys(tenant_ids)), create=True)


def _transaction_for(tenant_ids: Sequence[uuid.UUID]) -> AbstractAsyncContextManager[Any]:
    return tenant_tx(tenant_ids[0]) if len(tenant_ids) == 1 else system_tx(SystemReason.DATA_KEYS)


async def for_reading(cipher: PiiCipher, tenant_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, DataKey]:
    """Outside any transaction: the keys of the tenants that have one, from memory, else read and unwrapped
    (one transaction, one OpenBao call for them all) and kept. A tenant without a key is left out."""
    found: dict[uuid.UUID, DataKey] = {}
    missing: list[uuid.UUID] = []
    for tenant_id in dict.fromkeys(tenant_ids):
        if (cached := _cache.get(tenant_id)) is not None:
            found[tenant_id] = cached
        else:
            missing.append(tenant_id)
    if missing:
        generation = _cache.generation()  # a key destroyed meanwhile is not kept
        async with _transaction_for(missing):
            loaded = await _load(cipher, missing, create=False)
        for tenant_id, key in loaded.items():
            _cache.put(tenant_id, key, generation)
        found |= loaded
    return found


async def destroy(tenant_id: uuid.UUID) -> None:
    """Inside the erasure's transaction: the tenant's key is deleted, and forgotten by every process once the
    transaction commits, so whatever was sealed with it (copies and backups included) no longer opens."""
    await repository.delete_data_key(tenant_id)
    await invalidation.publish(TOPIC, tenant_id)


async def rewrap_older_than(cipher: PiiCipher, version: int, limit: int) -> int:
    """Inside the caller's (system) transaction: a batch of wrapped keys under versions before `version`
    rewrapped to the latest (the keys themselves, and so every value sealed with them, unchanged); how many."""
    rows = await repository.data_keys_older_than(version, limit)
    if not rows:
        return 0
    fresh = await asyncio.to_thread(cipher.rewrap, [(row["tenant_id"], row["wrapped_key"]) for row in rows])
    for row, wrapped in zip(rows, fresh, strict=True):
        await repository.rewrapped_data_key(row["tenant_id"], wrapped, key_version(wrapped))
    return len(rows)
