"""The tenant's billing email (its billing contact), stored sealed with the tenant's data key and shown opened.

Repository reads return the sealed text; the services that hand a tenant to a caller pass it through `reveal`,
and writes go through `seal`, inside the caller's transaction. Once the tenant's data key is in memory
(`tenants.data_keys`), neither calls OpenBao.

The cipher is the process's (set at startup, `use`); a service called outside it fails loudly rather than
storing or showing plaintext.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from controlplane.core.pii import PersonalDataUnreadable, PiiCipher, is_sealed_locally
from tenants import data_keys

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
    key = await data_keys.for_sealing(cipher(), tenant_id)
    return {"billing_email": key.seal(email), "billing_email_key_version": None}


async def reveal(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows with their billing emails opened: with each tenant's data key (from memory, else unwrapped in one
    OpenBao call for the lot). Outside any transaction. Rows from before the data keys hold transit ciphertext,
    decrypted by transit (one call for the lot), or, from before the column was encrypted, plaintext, shown as it
    is; the next PII rewrap moves both to the data key. A value whose tenant has no data key any more (erased) or
    that was sealed for another tenant raises `PersonalDataUnreadable`."""
    texts = {row["id"]: row["billing_email"] for row in rows if row.get("billing_email")}
    local = [tenant_id for tenant_id, text in texts.items() if is_sealed_locally(text)]
    transit = [(tenant_id, text) for tenant_id, text in texts.items() if text.startswith("vault:v")]
    opened: dict[uuid.UUID, str] = {}
    if local:
        keys = await data_keys.for_reading(cipher(), local)
        for tenant_id in local:
            if tenant_id not in keys:
                raise PersonalDataUnreadable("the tenant has no data key (erased)")
            opened[tenant_id] = keys[tenant_id].open(texts[tenant_id])
    if transit:
        plain = await asyncio.to_thread(cipher().decrypt_many, transit)
        opened |= dict(zip((tenant_id for tenant_id, _text in transit), plain, strict=True))
    return [{**row, "billing_email": opened[row["id"]]} if row["id"] in opened else row for row in rows]
