"""The tenant's billing email (its billing contact), stored as transit ciphertext and shown decrypted.

Repository reads return the ciphertext; the services that hand a tenant to a caller pass it through
`reveal`, and writes go through `seal`, which encrypts inside the caller's transaction under the lock the
PII rewrap takes before it retires a key version (see `tenants.pii_repository`).

The cipher is the API process's (set at startup, `use`); a service called outside it fails loudly rather
than storing or showing plaintext.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from controlplane.core.pii import PiiCipher, key_version
from tenants import pii_repository

_cipher: PiiCipher | None = None


def use(cipher: PiiCipher) -> None:
    global _cipher
    _cipher = cipher


def cipher() -> PiiCipher:
    if _cipher is None:
        raise RuntimeError("no PII cipher: tenants.billing_contact.use() is called at startup")
    return _cipher


async def seal(tenant_id: uuid.UUID, email: str | None) -> dict[str, Any]:
    """The columns to store for `email`, inside the caller's transaction."""
    if email is None:
        return {"billing_email": None, "billing_email_key_version": None}
    await pii_repository.share_key_lock()
    (sealed,) = await asyncio.to_thread(cipher().encrypt, tenant_id, [email])
    return {"billing_email": sealed, "billing_email_key_version": key_version(sealed)}


async def reveal(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their billing emails decrypted (one OpenBao call for the lot). A row written before the
    column was encrypted holds plaintext until the next PII rotation seals it, and is shown as it is."""
    sealed = [(row["id"], row["billing_email"]) for row in rows if str(row.get("billing_email")).startswith("vault:v")]
    if not sealed:
        return list(rows)
    plain = await asyncio.to_thread(cipher().decrypt_many, sealed)
    opened = dict(zip((tenant for tenant, _text in sealed), plain, strict=True))
    return [{**row, "billing_email": opened[row["id"]]} if row["id"] in opened else row for row in rows]
