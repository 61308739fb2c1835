"""Short-lived JWTs for people, signed with Ed25519 keys kept in OpenBao.

The key set is a mapping kid -> private key; the active kid signs, every kid verifies, so a rotation
can keep the previous key verifying until its tokens expire.

A signer remembers the tokens it verified until they expire, so a client's repeated requests cost one
Ed25519 verification, not one each. The memory belongs to one key set: a reload that changes the keys
makes a new signer, which remembers nothing, so no answer outlives the key that signed it. Whether the
token's user may still act is not the token's business: that is read for every request
(`tenants.service.principal_for_user`), and is how a token is revoked (its user disabled or erased, or their
session generation, which the token carries as `gen`, moved on: a password change, "sign out everywhere").
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from controlplane.core.errors import Unauthenticated

ALGORITHM = "EdDSA"
# Tolerated clock drift between the process that issued a token and the one verifying it.
LEEWAY_SECONDS = 5
# Verified tokens remembered per key set; when full it starts again (costing one verification per token).
MAX_VERIFIED_TOKENS = 50_000
log = logging.getLogger("controlplane.auth.tokens")


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    title = "The bearer token is not valid"


class ExpiredToken(Unauthenticated):
    code = "token_expired"
    title = "The bearer token has expired"


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: uuid.UUID
    issued_at: int
    expires_at: int
    generation: int = 0  # the user's session generation when it was issued


class TokenSigner:
    def __init__(
        self,
        private_keys: Mapping[str, Ed25519PrivateKey],
        active_kid: str,
        *,
        issuer: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if active_kid not in private_keys:
            raise ValueError("the active kid has no key")
        self._signing_key = private_keys[active_kid]
        self._active_kid = active_kid
        self._public_keys: dict[str, Ed25519PublicKey] = {kid: key.public_key() for kid, key in private_keys.items()}
        self._issuer = issuer
        self._ttl = ttl_seconds
        # The one clock for expiry: both when a remembered token stops answering and when verification refuses.
        self._clock = clock
        self._verified: dict[str, TokenClaims] = {}
        self._private_keys = dict(private_keys)
        self._derived: dict[bytes, tuple[bytes, ...]] = {}

    @classmethod
    def from_secret(
        cls, secret: Mapping[str, Any], *, issuer: str, ttl_seconds: int, clock: Callable[[], float] = time.time
    ) -> TokenSigner:
        """From the KV secret `platform/jwt`: `active_kid`, and `keys` (JSON: kid -> PEM)."""
        pems = json.loads(secret["keys"]) if isinstance(secret["keys"], str) else secret["keys"]
        keys = {}
        for kid, pem in pems.items():
            key = load_pem_private_key(pem.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"JWT key {kid} is not Ed25519")
            keys[kid] = key
        return cls(keys, secret["active_kid"], issuer=issuer, ttl_seconds=ttl_seconds, clock=clock)

    def issue(self, user_id: uuid.UUID, *, generation: int = 0, now: int | None = None) -> str:
        issued = int(self._clock()) if now is None else now
        claims = {
            "sub": str(user_id),
            "gen": generation,
            "iss": self._issuer,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._signing_key, algorithm=ALGORITHM, headers={"kid": self._active_kid})

    def remembered(self, token: str) -> TokenClaims | None:
        """The claims of a token this signer verified, until it expires; None when it must be verified."""
        claims = self._verified.get(token)
        if claims is None:
            return None
        if self._clock() >= claims.expires_at:
            self._verified.pop(token, None)
            return None
        return claims

    def verify(self, token: str) -> TokenClaims:
        claims = self.remembered(token)
        if claims is not None:
            return claims
        claims = self._verify_signature(token)
        now = self._clock()
        if claims.expires_at <= now - LEEWAY_SECONDS:
            raise ExpiredToken()
        if now < claims.expires_at:  # not one inside the leeway: it is re-verified until refused
            if len(self._verified) >= MAX_VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = claims
        return claims

    def _verify_signature(self, token: str) -> TokenClaims:
        """The claims, checked but for expiry (which `verify` checks on this signer's clock)."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self._public_keys.get(kid) if isinstance(kid, str) else None
            if key is None:
                raise InvalidToken("the token was not signed by a known key")
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={"require": ["sub", "exp", "iat", "iss"], "verify_exp": False},
                leeway=LEEWAY_SECONDS,
            )
            generation = claims.get("gen", 0)  # a token from before generations: 0
            if not isinstance(generation, int) or isinstance(generation, bool):
                raise InvalidToken("the token's generation is not a number")
            return TokenClaims(uuid.UUID(claims["sub"]), int(claims["iat"]), int(claims["exp"]), generation)
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    def derived_keys(self, purpose: bytes) -> tuple[bytes, ...]:
        """Symmetric keys for `purpose` (HKDF-SHA256 of each private key, the purpose and kid as its info): the
        active key's first, to sign with, then the others', which still verify. Another purpose's keys, or the
        signatures of the key itself, tell nothing about these; a rotation of the key set rotates them too."""
        keys = self._derived.get(purpose)
        if keys is None:
            kids = [self._active_kid, *sorted(kid for kid in self._private_keys if kid != self._active_kid)]
            keys = tuple(
                HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose + b"\0" + kid.encode()).derive(
                    self._private_keys[kid].private_bytes_raw()
                )
                for kid in kids
            )
            self._derived[purpose] = keys
        return keys

    @property
    def active_kid(self) -> str:
        return self._active_kid

    @property
    def kids(self) -> frozenset[str]:
        """Every kid whose tokens verify."""
        return frozenset(self._public_keys)


def _kid_of(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


class ReloadingTokenSigner:
    """A `TokenSigner` that follows rotations of the key set it was read from (`platform/jwt`).

    The API reads the key set at start-up. It reads it again every `refresh_seconds` (so it signs with a
    newly rotated active key, and stops accepting dropped ones, within that time), and as soon as a token
    carries a kid it does not know, at most once every `retry_seconds` (so a token signed by another API
    process that already follows a rotation verifies here too, and unknown kids cannot make it hammer
    OpenBao). Reads run in a thread; if one fails, the keys already loaded keep serving. A read that finds
    the key set unchanged keeps the signer, and with it the tokens it remembers.
    """

    def __init__(
        self,
        secret: Mapping[str, Any],
        load: Callable[[], Mapping[str, Any]],
        *,
        issuer: str,
        ttl_seconds: int,
        refresh_seconds: float = 300.0,
        retry_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._load = load
        self._issuer = issuer
        self._ttl = ttl_seconds
        self._refresh = refresh_seconds
        self._retry = retry_seconds
        self._clock = clock
        self._wall_clock = wall_clock
        self._secret = dict(secret)
        self._signer = self._signer_of(secret)
        self._loaded_at = clock()

    def _signer_of(self, secret: Mapping[str, Any]) -> TokenSigner:
        return TokenSigner.from_secret(secret, issuer=self._issuer, ttl_seconds=self._ttl, clock=self._wall_clock)

    @property
    def current(self) -> TokenSigner:
        return self._signer

    @property
    def ttl_seconds(self) -> int:
        return self._ttl

    def issue(self, user_id: uuid.UUID, *, generation: int = 0, now: int | None = None) -> str:
        return self._signer.issue(user_id, generation=generation, now=now)

    async def derived_keys(self, purpose: bytes) -> tuple[bytes, ...]:
        """`TokenSigner.derived_keys` of the key set loaded now, re-read first when stale (as for a token)."""
        await self.refresh_if_stale()
        return self._signer.derived_keys(purpose)

    def verify(self, token: str) -> TokenClaims:
        """Verify with the keys loaded now (no reload); `verify_fresh` is what requests use."""
        return self._signer.verify(token)

    async def verify_fresh(self, token: str) -> TokenClaims:
        await self.refresh_if_stale()
        remembered = self._signer.remembered(token)
        if remembered is not None:
            return remembered
        kid = _kid_of(token)
        if kid is not None and kid not in self._signer.kids:
            await self._reload_after(self._retry)
        return self._signer.verify(token)

    async def refresh_if_stale(self) -> None:
        await self._reload_after(self._refresh)

    async def _reload_after(self, seconds: float) -> None:
        now = self._clock()
        if now - self._loaded_at < seconds:
            return
        # Claimed before the read, so concurrent requests do not all read at once.
        self._loaded_at = now
        try:
            secret = dict(await asyncio.to_thread(self._load))
            if secret == self._secret:
                return
            signer = self._signer_of(secret)
        except Exception as exc:  # OpenBao down or a bad key set: keep serving with the keys already loaded
            log.warning("JWT keys not reloaded, keeping the loaded ones: %s", type(exc).__name__)
            return
        self._secret, self._signer = secret, signer
        log.info("JWT keys reloaded: active %s, %d verifying", self._signer.active_kid, len(self._signer.kids))
