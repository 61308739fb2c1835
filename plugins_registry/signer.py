"""License signing through OpenBao's transit engine: the Ed25519 private key never leaves OpenBao.

The transit key's version is the token's `kid`. A rotation adds a version and signs with it from then on;
the JWKS lists every version from the key's `min_decryption_version`, so tokens signed before a rotation
keep verifying until an operator retires their version.

Synchronous (hvac): async callers wrap the calls in `asyncio.to_thread`. hvac and requests errors are
translated here, so callers see `SigningUnavailable` and never a client library's exception.
"""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import hvac
import hvac.exceptions
import requests

from plugins_registry.errors import SigningUnavailable
from plugins_registry.license_token import ALG, assemble, jwk, signing_input

KEY_NAME = "license-signing"
TRANSIT_MOUNT = "transit"
KEY_TYPE = "ed25519"
VERSION_TTL_SECONDS = 30.0


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise SigningUnavailable(f"OpenBao transit: {type(exc).__name__}") from exc


def jwks_from_read_key(response: Mapping[str, Any]) -> dict[str, Any]:
    """The JWKS of a transit `read_key` answer: one JWK per version from `min_decryption_version` on.

    Transit gives each version's public key as standard base64 of the raw 32 bytes; the kid is the version.
    """
    data = response["data"]
    if data.get("type") != KEY_TYPE:
        raise SigningUnavailable(f"transit key {data.get('name')!r} is of type {data.get('type')!r}, not {KEY_TYPE}")
    oldest = max(int(data.get("min_decryption_version") or 1), 1)
    versions = sorted(int(version) for version in data["keys"] if int(version) >= oldest)
    keys = [jwk(str(version), base64.b64decode(data["keys"][str(version)]["public_key"])) for version in versions]
    return {"keys": keys}


def raw_signature(signature: str, version: int) -> bytes:
    """The 64 signature bytes of transit's `vault:v<version>:<standard base64>`."""
    try:
        _prefix, tag, encoded = signature.split(":")
        raw = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SigningUnavailable("transit answered a signature in an unexpected format") from exc
    if tag != f"v{version}" or len(raw) != 64:
        raise SigningUnavailable(f"transit signed with {tag}, {len(raw)} bytes; expected v{version}, 64 bytes")
    return raw


class LicenseSigner:
    """Signs license claims as compact JWS with the `license-signing` transit key; publishes its JWKS.

    `key_name` is for tests that must not rotate the shared key.
    """

    def __init__(
        self, client: hvac.Client, *, key_name: str = KEY_NAME, version_ttl: float = VERSION_TTL_SECONDS
    ) -> None:
        self._client = client
        self.key_name = key_name
        self._version_ttl = version_ttl
        self._lock = threading.Lock()
        self._version: int | None = None
        self._version_read_at = 0.0

    def _read_key(self) -> dict[str, Any]:
        with _translated():
            return dict(self._client.secrets.transit.read_key(self.key_name, mount_point=TRANSIT_MOUNT))

    def _remember(self, response: Mapping[str, Any]) -> int:
        version = int(response["data"]["latest_version"])
        with self._lock:
            self._version, self._version_read_at = version, time.monotonic()
        return version

    def ensure_key(self) -> None:
        """Create the ed25519 key if it is missing (idempotent: transit keeps an existing key as it is)."""
        transit = self._client.secrets.transit
        with _translated():
            try:
                response = transit.read_key(self.key_name, mount_point=TRANSIT_MOUNT)
            except hvac.exceptions.InvalidPath:
                transit.create_key(self.key_name, key_type=KEY_TYPE, mount_point=TRANSIT_MOUNT)
                response = transit.read_key(self.key_name, mount_point=TRANSIT_MOUNT)
        jwks_from_read_key(response)  # refuses a key of another type
        self._remember(response)

    def current_version(self) -> int:
        """The key's latest version, read from OpenBao at most every `version_ttl` seconds."""
        with self._lock:
            if self._version is not None and time.monotonic() - self._version_read_at < self._version_ttl:
                return self._version
        return self._remember(self._read_key())

    def sign(self, claims: dict[str, Any]) -> tuple[str, int]:
        """The compact JWS of `claims`, and the key version (its kid) that signed it."""
        version = self.current_version()
        data = signing_input({"alg": ALG, "typ": "JWT", "kid": str(version)}, claims)
        with _translated():
            response = self._client.secrets.transit.sign_data(
                self.key_name,
                hash_input=base64.b64encode(data).decode("ascii"),
                key_version=version,
                mount_point=TRANSIT_MOUNT,
            )
        return assemble(data, raw_signature(response["data"]["signature"], version)), version

    def jwks(self) -> dict[str, Any]:
        """The public keys that verify the tokens: `{"keys": [JWK, …]}`, one per live key version."""
        return jwks_from_read_key(self._read_key())

    def rotate(self) -> int:
        """Add a key version and sign with it from now on; returns the new version."""
        with _translated():
            self._client.secrets.transit.rotate_key(self.key_name, mount_point=TRANSIT_MOUNT)
        return self._remember(self._read_key())
