"""License tokens: compact JWS (RFC 7515) signed with EdDSA over Ed25519, verified offline against a JWKS.

Pure (the standard library, `cryptography` and `TokenInvalid` of `plugins_registry.errors` only), so a plugin
author can copy this file, define `TokenInvalid` in place of that one import, and call `verify(token, jwks)`.
The control plane signs through OpenBao (`plugins_registry.signer`); this module only builds what is signed,
assembles the token and checks it.

    header.claims.signature    each part base64url without padding; the signature covers "header.claims"
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from plugins_registry.errors import TokenInvalid

ALG = "EdDSA"


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict: only the canonical unpadded encoding is accepted, so one token has one spelling."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise TokenInvalid("malformed: not base64url") from exc
    if b64url_encode(data) != text:
        raise TokenInvalid("malformed: not canonical base64url")
    return data


def _json(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    """The bytes the signature covers: base64url(header) "." base64url(claims), compact JSON, sorted keys."""
    return f"{_json(header)}.{_json(claims)}".encode("ascii")


def assemble(signing_input: bytes, signature: bytes) -> str:
    return f"{signing_input.decode('ascii')}.{b64url_encode(signature)}"


def jwk(kid: str, public_key_raw: bytes) -> dict[str, str]:
    """The JSON Web Key (RFC 8037) of a raw 32-byte Ed25519 public key."""
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(public_key_raw), "kid": kid, "alg": ALG, "use": "sig"}


def _public_key(jwks: dict[str, Any], kid: Any) -> Ed25519PublicKey:
    for key in jwks.get("keys", []):
        if key.get("kid") == kid and key.get("kty") == "OKP" and key.get("crv") == "Ed25519":
            try:
                return Ed25519PublicKey.from_public_bytes(b64url_decode(key["x"]))
            except (KeyError, ValueError) as exc:
                raise TokenInvalid(f"the JWKS key {kid!r} is not a valid Ed25519 key") from exc
    raise TokenInvalid(f"unknown kid {kid!r}")


def verify(token: str, jwks: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
    """The token's claims, if it is signed by a key of `jwks` and not expired; else `TokenInvalid`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenInvalid("malformed: a compact JWS has three parts")
    header_part, claims_part, signature_part = parts
    try:
        header = json.loads(b64url_decode(header_part))
        claims = json.loads(b64url_decode(claims_part))
    except ValueError as exc:  # bad JSON or bad UTF-8
        raise TokenInvalid("malformed: header or claims are not JSON") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise TokenInvalid("malformed: header and claims must be JSON objects")
    if header.get("alg") != ALG:
        raise TokenInvalid(f"wrong alg {header.get('alg')!r}, expected {ALG!r}")
    if "crit" in header:
        raise TokenInvalid("unsupported critical header parameters")
    key = _public_key(jwks, header.get("kid"))
    try:
        key.verify(b64url_decode(signature_part), f"{header_part}.{claims_part}".encode("ascii"))
    except InvalidSignature as exc:
        raise TokenInvalid("bad signature") from exc
    expires = claims.get("exp")
    if expires is not None:
        if isinstance(expires, bool) or not isinstance(expires, int | float):
            raise TokenInvalid("malformed: exp is not a number")
        if (time.time() if now is None else now) >= expires:
            raise TokenInvalid("expired")
    return claims
