"""Tenant API keys: `cpk_<tenant>_<key id>_<secret>`, stored as a SHA-256 of the secret.

The secret has 256 bits of entropy, so a fast hash is enough (argon2 is for low-entropy passwords and
would cost a slow hash on every machine request). The tenant id in the key lets authentication open the
right tenant context before it reads the key row.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

PREFIX = "cpk"
_FORMAT = re.compile(r"^cpk_([0-9a-f]{32})_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class ParsedApiKey:
    tenant_id: uuid.UUID
    key_id: uuid.UUID
    secret: str


def generate(tenant_id: uuid.UUID, key_id: uuid.UUID) -> tuple[str, bytes]:
    """A new key's full text (shown once) and the hash to store."""
    secret = secrets.token_urlsafe(32)
    return f"{PREFIX}_{tenant_id.hex}_{key_id.hex}_{secret}", hash_secret(secret)


def parse(text: str) -> ParsedApiKey | None:
    match = _FORMAT.match(text)
    if match is None:
        return None
    return ParsedApiKey(uuid.UUID(match[1]), uuid.UUID(match[2]), match[3])


def looks_like_api_key(text: str) -> bool:
    return text.startswith(PREFIX + "_")


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), bytes(stored_hash))
