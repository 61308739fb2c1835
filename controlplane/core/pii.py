"""Tenant personal data encrypted at rest by envelope encryption under OpenBao transit (key `tenant-pii`, never
leaving OpenBao).

Each tenant has a data key (AES-256), made by transit's `datakey` and stored only wrapped by `tenant-pii`
(`vault:v<N>:…`, its version kept beside it, so a rotation rewraps the data keys, not the rows). Unwrapped, a
data key (`DataKey`) encrypts and decrypts locally with AES-GCM: a value reads `dk:v1:<base64 of nonce and
ciphertext>`, a random 96-bit nonce each, the tenant's id as associated data. `tenant-pii` is derived: every
transit call names the tenant as its context, so neither a wrapped key nor a value copied into another
tenant's row opens there.

Values written before the data keys are transit ciphertexts themselves (`vault:v<N>:…`): they still decrypt
through transit until the next PII rewrap moves them to their tenant's data key.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hvac
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from controlplane.core.secrets import openbao_errors

TRANSIT_MOUNT = "transit"
KEY_NAME = "tenant-pii"
# OpenBao refuses a request body with too many JSON strings ("high complexity"); 100 items stay well under.
REQUEST_ITEMS = 100
_VERSION = re.compile(r"^vault:v(\d+):")
# A value sealed locally with its tenant's data key; the version names this format (AES-256-GCM, 96-bit nonce
# first, the tenant's id as associated data), distinct from transit's `vault:v<N>:`.
SEALED_PREFIX = "dk:v1:"
NONCE_BYTES = 12


class PersonalDataUnreadable(ValueError):
    """A sealed value that does not open: its tenant's data key is gone (the tenant was erased), or the value
    was not sealed for this tenant."""


@dataclass(frozen=True, slots=True)
class PiiRotation:
    version: int  # the key version every wrapped data key is now under, and the oldest that decrypts
    rewrapped: int  # data keys rewrapped to it
    moved: int = 0  # rows moved from transit ciphertext (or plaintext) to their tenant's data key

    def describe(self) -> str:
        return (
            f"{KEY_NAME} version {self.version}; {self.rewrapped} data keys rewrapped; "
            f"{self.moved} rows moved to data keys; older versions retired"
        )


def key_version(ciphertext: str) -> int:
    match = _VERSION.match(ciphertext)
    if match is None:
        raise ValueError("not a transit ciphertext")
    return int(match.group(1))


def is_sealed_locally(text: str) -> bool:
    return text.startswith(SEALED_PREFIX)


def _context(tenant_id: uuid.UUID) -> str:
    return base64.b64encode(tenant_id.bytes).decode()


class DataKey:
    """A tenant's unwrapped data key, for that tenant's values only. Kept in process memory, never shown: its
    repr names the tenant, not the key."""

    __slots__ = ("_aead", "tenant_id")

    def __init__(self, tenant_id: uuid.UUID, key: bytes) -> None:
        self.tenant_id = tenant_id
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return f"DataKey(tenant_id={self.tenant_id})"

    def seal(self, text: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, text.encode(), self.tenant_id.bytes)
        return SEALED_PREFIX + base64.b64encode(nonce + sealed).decode()

    def open(self, text: str) -> str:
        if not is_sealed_locally(text):
            raise PersonalDataUnreadable("not a value sealed with a data key")
        try:
            raw = base64.b64decode(text[len(SEALED_PREFIX) :], validate=True)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self.tenant_id.bytes).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise PersonalDataUnreadable("the value was not sealed with this tenant's data key") from exc


class PiiCipher:
    def __init__(self, client: hvac.Client, *, key_name: str = KEY_NAME) -> None:
        self._transit = client.secrets.transit
        self.key_name = key_name

    def ensure_key(self) -> None:
        """Create the derived AES-GCM key if it is missing; safe to repeat."""
        with openbao_errors():
            self._transit.create_key(self.key_name, key_type="aes256-gcm96", derived=True, mount_point=TRANSIT_MOUNT)

    def _batched(self, operation: str, field: str, items: Sequence[tuple[uuid.UUID, str]]) -> list[dict[str, Any]]:
        """One transit batch operation over (tenant, text) pairs, a request per REQUEST_ITEMS; a failed item
        fails the whole call."""
        call = {"decrypt": self._transit.decrypt_data, "rewrap": self._transit.rewrap_data}[operation]
        results: list[dict[str, Any]] = []
        for start in range(0, len(items), REQUEST_ITEMS):
            batch = [
                {field: text, "context": _context(tenant)} for tenant, text in items[start : start + REQUEST_ITEMS]
            ]
            with openbao_errors():
                response = call(self.key_name, "", batch_input=batch, mount_point=TRANSIT_MOUNT)
            results += response["data"]["batch_results"]
        errors = [item["error"] for item in results if item.get("error")]
        if errors:
            raise ValueError(f"{len(errors)} items could not be {operation}ed: {errors[0]}")
        return results

    def decrypt_many(self, items: Sequence[tuple[uuid.UUID, str]]) -> list[str]:
        """Values stored before the data keys (each transit ciphertext), decrypted."""
        return [base64.b64decode(item["plaintext"]).decode() for item in self._batched("decrypt", "ciphertext", items)]

    def decrypt(self, tenant_id: uuid.UUID, ciphertexts: Sequence[str]) -> list[str]:
        return self.decrypt_many([(tenant_id, text) for text in ciphertexts])

    def new_data_key(self, tenant_id: uuid.UUID) -> tuple[bytes, str]:
        """A fresh 256-bit data key for the tenant: the key itself, and it wrapped (`vault:v<N>:…`) to store.
        Transit's `plaintext` type answers both in one call (`wrapped` would answer only the second)."""
        with openbao_errors():
            response = self._transit.generate_data_key(
                self.key_name, key_type="plaintext", context=_context(tenant_id), mount_point=TRANSIT_MOUNT
            )
        data = response["data"]
        return base64.b64decode(data["plaintext"]), str(data["ciphertext"])

    def unwrap_data_keys(self, items: Sequence[tuple[uuid.UUID, str]]) -> list[bytes]:
        """Each (tenant, wrapped data key) unwrapped, in one call per REQUEST_ITEMS."""
        return [base64.b64decode(item["plaintext"]) for item in self._batched("decrypt", "ciphertext", items)]

    def rewrap(self, items: Sequence[tuple[uuid.UUID, str]]) -> list[str]:
        """Each ciphertext (a wrapped data key, or a value from before them) re-encrypted under the key's latest
        version, without OpenBao showing us what it holds."""
        return [str(item["ciphertext"]) for item in self._batched("rewrap", "ciphertext", items)]

    def latest_version(self) -> int:
        with openbao_errors():
            return int(self._transit.read_key(self.key_name, mount_point=TRANSIT_MOUNT)["data"]["latest_version"])

    def min_decryption_version(self) -> int:
        with openbao_errors():
            data = self._transit.read_key(self.key_name, mount_point=TRANSIT_MOUNT)["data"]
        return int(data["min_decryption_version"])

    def rotate(self) -> int:
        """A new key version encrypts from now on; the new version."""
        with openbao_errors():
            self._transit.rotate_key(self.key_name, mount_point=TRANSIT_MOUNT)
        return self.latest_version()

    def retire_versions_before(self, version: int) -> None:
        """Older versions stop decrypting: only once nothing stored uses them."""
        with openbao_errors():
            self._transit.update_key_configuration(
                self.key_name, min_decryption_version=version, mount_point=TRANSIT_MOUNT
            )
