"""Tenant personal data encrypted at rest by OpenBao transit (key `tenant-pii`, never leaving OpenBao).

The key is derived: every encryption names the tenant as its context, so a ciphertext copied into another
tenant's row does not decrypt there. A ciphertext reads `vault:v<N>:…`; its version is kept beside it in the
row, so rewrapping after a rotation finds the rows still on older versions by an index, in batches.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import hvac

from controlplane.core.secrets import openbao_errors

TRANSIT_MOUNT = "transit"
KEY_NAME = "tenant-pii"
# OpenBao refuses a request body with too many JSON strings ("high complexity"); 100 items stay well under.
REQUEST_ITEMS = 100
_VERSION = re.compile(r"^vault:v(\d+):")


@dataclass(frozen=True, slots=True)
class PiiRotation:
    version: int  # the key version every stored ciphertext is now under, and the oldest that decrypts
    rewrapped: int  # rows moved to it

    def describe(self) -> str:
        return f"{KEY_NAME} version {self.version}; {self.rewrapped} rows rewrapped; older versions retired"


def key_version(ciphertext: str) -> int:
    match = _VERSION.match(ciphertext)
    if match is None:
        raise ValueError("not a transit ciphertext")
    return int(match.group(1))


def _context(tenant_id: uuid.UUID) -> str:
    return base64.b64encode(tenant_id.bytes).decode()


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
        call = {
            "encrypt": self._transit.encrypt_data,
            "decrypt": self._transit.decrypt_data,
            "rewrap": self._transit.rewrap_data,
        }[operation]
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

    def encrypt_many(self, items: Sequence[tuple[uuid.UUID, str]]) -> list[str]:
        encoded = [(tenant, base64.b64encode(text.encode()).decode()) for tenant, text in items]
        return [str(item["ciphertext"]) for item in self._batched("encrypt", "plaintext", encoded)]

    def decrypt_many(self, items: Sequence[tuple[uuid.UUID, str]]) -> list[str]:
        return [base64.b64decode(item["plaintext"]).decode() for item in self._batched("decrypt", "ciphertext", items)]

    def encrypt(self, tenant_id: uuid.UUID, plaintexts: Sequence[str]) -> list[str]:
        return self.encrypt_many([(tenant_id, text) for text in plaintexts])

    def decrypt(self, tenant_id: uuid.UUID, ciphertexts: Sequence[str]) -> list[str]:
        return self.decrypt_many([(tenant_id, text) for text in ciphertexts])

    def rewrap(self, items: Sequence[tuple[uuid.UUID, str]]) -> list[str]:
        """Each ciphertext re-encrypted under the key's latest version, without OpenBao showing us the data."""
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
