"""Signing a license's current state into its token (OpenBao transit, off the event loop)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from plugins_registry import licensing, repository


class Signer(Protocol):
    def sign(self, claims: dict[str, Any]) -> tuple[str, int]: ...

    def jwks(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Licensing:
    """What issuing a license needs: the signer, and how long a paid license outlives its period (the
    dunning window, so a payment made late within it renews the license before it lapses)."""

    signer: Signer
    renewal_grace: timedelta


@dataclass(frozen=True, slots=True)
class PublicKeyView:
    """One JSON Web Key (RFC 8037) that verifies license tokens: an Ed25519 key version, `kid` its number."""

    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


@dataclass(frozen=True, slots=True)
class KeySetView:
    """The JWKS: every live key version, so tokens signed before a rotation still verify."""

    keys: tuple[PublicKeyView, ...]


def _key_set(jwks: dict[str, Any]) -> KeySetView:
    return KeySetView(
        tuple(
            PublicKeyView(key["kty"], key["crv"], key["x"], key["kid"], key["alg"], key["use"]) for key in jwks["keys"]
        )
    )


async def token_for(signer: Signer, license_row: dict[str, Any]) -> tuple[str, int, datetime]:
    issued_at = datetime.now(UTC).replace(microsecond=0)
    token, key_version = await asyncio.to_thread(signer.sign, licensing.claims(license_row, issued_at))
    return token, key_version, issued_at


async def resign(signer: Signer, license_row: dict[str, Any]) -> dict[str, Any]:
    """Inside the caller's transaction: a new token for the license as it is now."""
    token, key_version, issued_at = await token_for(signer, license_row)
    return await repository.update_license(
        license_row["id"], {"token": token, "key_version": key_version, "issued_at": issued_at, "token_stale": False}
    )


async def fresh(signer: Signer, license_row: dict[str, Any]) -> dict[str, Any]:
    """An active license whose state changed since its token was signed is signed again before it is shown."""
    if license_row["token_stale"] and license_row["status"] == "active":
        return await resign(signer, license_row)
    return license_row


_jwks: tuple[float, KeySetView] | None = None
# The JWKS is public and unauthenticated: a short cache keeps its callers off OpenBao. After a rotation
# elsewhere a process may serve the old set for these seconds; a verifier that meets an unknown `kid` fetches
# the set again.
JWKS_CACHE_SECONDS = 5.0


async def public_keys(issuer: Licensing) -> KeySetView:
    global _jwks
    now = time.monotonic()
    if _jwks is None or now - _jwks[0] > JWKS_CACHE_SECONDS:
        _jwks = (now, _key_set(await asyncio.to_thread(issuer.signer.jwks)))
    return _jwks[1]
