"""License tokens, signed here with a local Ed25519 key the way transit signs them, verified offline."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from plugins_registry.errors import TokenInvalid
from plugins_registry.license_token import assemble, b64url_decode, b64url_encode, jwk, signing_input, verify
from plugins_registry.signer import jwks_from_read_key, raw_signature

NOW = 1_800_000_000
EXP = NOW + 3600
CLAIMS = {"sub": "lic_123", "plugin": "acme-reports", "seats": 5, "exp": EXP}


def _raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def _token(key: Ed25519PrivateKey, kid: str = "1", claims: dict[str, Any] | None = None, alg: str = "EdDSA") -> str:
    data = signing_input({"alg": alg, "typ": "JWT", "kid": kid}, CLAIMS if claims is None else claims)
    return assemble(data, key.sign(data))


def _reason(token: str, jwks: dict[str, Any], now: int = NOW) -> str:
    with pytest.raises(TokenInvalid) as caught:
        verify(token, jwks, now=now)
    return caught.value.reason


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def jwks(key: Ed25519PrivateKey) -> dict[str, Any]:
    return {"keys": [jwk("1", _raw(key))]}


def test_a_signed_token_verifies_and_returns_its_claims(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    assert verify(_token(key), jwks, now=NOW) == CLAIMS


def test_the_signing_input_is_compact_sorted_json() -> None:
    header, claims = signing_input({"typ": "JWT", "alg": "EdDSA"}, {"b": 1, "a": "é"}).split(b".")
    assert b64url_decode(header.decode()) == b'{"alg":"EdDSA","typ":"JWT"}'
    assert json.loads(b64url_decode(claims.decode())) == {"a": "é", "b": 1}
    assert b"=" not in header + claims


def test_the_jwk_is_an_ed25519_okp_key(key: Ed25519PrivateKey) -> None:
    assert jwk("7", _raw(key)) == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url_encode(_raw(key)),
        "kid": "7",
        "alg": "EdDSA",
        "use": "sig",
    }


def _replace_part(token: str, index: int, part: str) -> str:
    parts = token.split(".")
    parts[index] = part
    return ".".join(parts)


def test_a_tampered_payload_is_rejected(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    forged = b64url_encode(json.dumps({**CLAIMS, "seats": 500}, separators=(",", ":"), sort_keys=True).encode())
    assert _reason(_replace_part(_token(key), 1, forged), jwks) == "bad signature"


def test_a_tampered_header_is_rejected(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    # Same alg and kid, one more header field: the signature no longer covers what is sent.
    header = b64url_encode(b'{"alg":"EdDSA","kid":"1","typ":"JWT","x":1}')
    assert _reason(_replace_part(_token(key), 0, header), jwks) == "bad signature"


def test_a_tampered_signature_is_rejected(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    token = _token(key)
    signature = bytearray(b64url_decode(token.split(".")[2]))
    signature[0] ^= 0x01
    assert _reason(_replace_part(token, 2, b64url_encode(bytes(signature))), jwks) == "bad signature"


def test_a_signature_by_another_key_is_rejected(jwks: dict[str, Any]) -> None:
    assert _reason(_token(Ed25519PrivateKey.generate()), jwks) == "bad signature"


def test_an_unknown_kid_is_rejected(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    assert _reason(_token(key, kid="2"), jwks) == "unknown kid '2'"


def test_another_alg_is_rejected(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    assert _reason(_token(key, alg="none"), jwks).startswith("wrong alg")
    assert _reason(_token(key, alg="HS256"), jwks).startswith("wrong alg")


def test_an_expired_token_is_rejected(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    token = _token(key)
    assert verify(token, jwks, now=EXP - 1) == CLAIMS
    assert _reason(token, jwks, now=EXP) == "expired"


def test_a_token_without_exp_does_not_expire(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    assert verify(_token(key, claims={"sub": "lic_1"}), jwks) == {"sub": "lic_1"}


@pytest.mark.parametrize(
    "token",
    [
        "",
        "a.b",
        "a.b.c.d",
        "!!!.e30.AA",  # not base64url
        "e30=.e30.AA",  # padded
        f"{b64url_encode(b'not json')}.e30.AA",
        f"{b64url_encode(b'[1]')}.e30.AA",  # JSON, but not an object
    ],
)
def test_a_malformed_token_is_rejected(token: str, jwks: dict[str, Any]) -> None:
    assert _reason(token, jwks).startswith("malformed")


def test_a_non_canonical_signature_spelling_is_rejected(key: Ed25519PrivateKey, jwks: dict[str, Any]) -> None:
    token = _token(key)
    signature = token.split(".")[2]  # 64 bytes: 86 characters, the last carries 4 unused bits
    other = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = signature[:-1] + other[other.index(signature[-1]) ^ 1]
    assert b64url_decode(signature) == base64.urlsafe_b64decode(twin + "==")
    assert _reason(_replace_part(token, 2, twin), jwks).startswith("malformed")


def _read_key_answer(keys: dict[int, Ed25519PrivateKey], min_decryption_version: int = 1) -> dict[str, Any]:
    """What transit's `read_key` answers for an ed25519 key (public keys in standard base64)."""
    return {
        "data": {
            "name": "license-signing",
            "type": "ed25519",
            "latest_version": max(keys),
            "min_decryption_version": min_decryption_version,
            "keys": {
                str(version): {"name": "ed25519", "public_key": base64.b64encode(_raw(key)).decode()}
                for version, key in keys.items()
            },
        }
    }


def test_the_jwks_of_a_transit_key_lists_every_live_version() -> None:
    keys = {version: Ed25519PrivateKey.generate() for version in (1, 2, 3, 10)}
    jwks = jwks_from_read_key(_read_key_answer(keys, min_decryption_version=2))
    assert [entry["kid"] for entry in jwks["keys"]] == ["2", "3", "10"]
    assert verify(_token(keys[10], kid="10"), jwks, now=NOW) == CLAIMS
    assert verify(_token(keys[2], kid="2"), jwks, now=NOW) == CLAIMS
    assert _reason(_token(keys[1], kid="1"), jwks) == "unknown kid '1'"


def test_a_transit_signature_is_parsed_to_its_raw_bytes(key: Ed25519PrivateKey) -> None:
    signature = key.sign(b"data")
    assert raw_signature(f"vault:v3:{base64.b64encode(signature).decode()}", 3) == signature
