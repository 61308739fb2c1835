"""Short-lived JWTs for people, signed with Ed25519 keys kept in OpenBao.

The key set is a mapping kid -> private key; the active kid signs, every kid verifies, so a rotation
can keep the previous key verifying until its tokens expire.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from controlplane.exceptions import Unauthenticated

ALGORITHM = "EdDSA"


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


class TokenSigner:
    def __init__(
        self, private_keys: Mapping[str, Ed25519PrivateKey], active_kid: str, *, issuer: str, ttl_seconds: int
    ) -> None:
        if active_kid not in private_keys:
            raise ValueError("the active kid has no key")
        self._signing_key = private_keys[active_kid]
        self._active_kid = active_kid
        self._public_keys: dict[str, Ed25519PublicKey] = {kid: key.public_key() for kid, key in private_keys.items()}
        self._issuer = issuer
        self._ttl = ttl_seconds

    @classmethod
    def from_secret(cls, secret: Mapping[str, Any], *, issuer: str, ttl_seconds: int) -> TokenSigner:
        """From the KV secret `platform/jwt`: `active_kid`, and `keys` (JSON: kid -> PEM)."""
        pems = json.loads(secret["keys"]) if isinstance(secret["keys"], str) else secret["keys"]
        keys = {}
        for kid, pem in pems.items():
            key = load_pem_private_key(pem.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"JWT key {kid} is not Ed25519")
            keys[kid] = key
        return cls(keys, secret["active_kid"], issuer=issuer, ttl_seconds=ttl_seconds)

    def issue(self, user_id: uuid.UUID, *, now: int | None = None) -> str:
        issued = int(time.time()) if now is None else now
        claims = {
            "sub": str(user_id),
            "iss": self._issuer,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self._ttl,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._signing_key, algorithm=ALGORITHM, headers={"kid": self._active_kid})

    def verify(self, token: str) -> TokenClaims:
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
                options={"require": ["sub", "exp", "iat", "iss"]},
                leeway=5,
            )
            return TokenClaims(uuid.UUID(claims["sub"]), int(claims["iat"]), int(claims["exp"]))
        except jwt.ExpiredSignatureError as exc:
            raise ExpiredToken() from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise InvalidToken() from exc

    @property
    def ttl_seconds(self) -> int:
        return self._ttl
