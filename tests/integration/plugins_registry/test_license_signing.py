"""License signing through the dev stack's real OpenBao transit engine, checked independently here.

The independent check parses the compact JWS by hand and verifies it with `cryptography` alone, using the
public key that `jwks()` publishes: it shares no code with `plugins_registry.license_token`.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from typing import Any

import hvac
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from plugins_registry.errors import SigningUnavailable, TokenInvalid
from plugins_registry.license_token import verify
from plugins_registry.signer import KEY_NAME, LicenseSigner


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def independent_claims(token: str, jwks: dict[str, Any]) -> dict[str, Any]:
    """Verify an EdDSA compact JWS with `cryptography` only; raise InvalidSignature if it does not verify."""
    header_part, claims_part, signature_part = token.split(".")
    header = json.loads(_unb64url(header_part))
    assert header["alg"] == "EdDSA"
    (key,) = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    assert (key["kty"], key["crv"]) == ("OKP", "Ed25519")
    public_key = Ed25519PublicKey.from_public_bytes(_unb64url(key["x"]))
    public_key.verify(_unb64url(signature_part), f"{header_part}.{claims_part}".encode())
    claims: dict[str, Any] = json.loads(_unb64url(claims_part))
    return claims


def _claims() -> dict[str, Any]:
    return {"sub": f"lic_{uuid.uuid4().hex}", "plugin": "acme-reports", "seats": 3, "exp": int(time.time()) + 3600}


@pytest.fixture(scope="module")
def store(settings: Settings) -> SecretStore:
    return SecretStore.connect(settings)


@pytest.fixture
def scratch_signer(store: SecretStore) -> LicenseSigner:
    """A signer on a key of its own, so rotating it leaves the dev stack's `license-signing` key alone."""
    signer = LicenseSigner(store.client, key_name=f"license-signing-test-{uuid.uuid4().hex[:12]}")
    signer.ensure_key()
    return signer


def test_the_dev_stack_has_the_ed25519_license_key(store: SecretStore) -> None:
    data = store.client.secrets.transit.read_key(KEY_NAME, mount_point="transit")["data"]
    assert data["type"] == "ed25519"
    assert data["exportable"] is False  # the private key never leaves OpenBao
    signer = LicenseSigner(store.client)
    signer.ensure_key()  # idempotent: the existing key is kept
    assert store.client.secrets.transit.read_key(KEY_NAME, mount_point="transit")["data"]["keys"] == data["keys"]


def test_a_token_signed_through_transit_verifies_independently(store: SecretStore) -> None:
    signer = LicenseSigner(store.client)
    claims = _claims()
    token, version = signer.sign(claims)
    jwks = signer.jwks()
    assert json.loads(_unb64url(token.split(".")[0])) == {"alg": "EdDSA", "typ": "JWT", "kid": str(version)}
    assert independent_claims(token, jwks) == claims
    assert verify(token, jwks) == claims


def test_a_tampered_token_is_rejected(store: SecretStore) -> None:
    signer = LicenseSigner(store.client)
    token, _ = signer.sign(_claims())
    jwks = signer.jwks()
    header_part, claims_part, signature_part = token.split(".")
    forged_claims = json.loads(_unb64url(claims_part)) | {"seats": 1000}
    forged_part = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=").decode()
    forged = f"{header_part}.{forged_part}.{signature_part}"
    with pytest.raises(InvalidSignature):
        independent_claims(forged, jwks)
    with pytest.raises(TokenInvalid, match="bad signature"):
        verify(forged, jwks)


def test_tokens_signed_before_a_rotation_still_verify_and_new_ones_carry_the_new_kid(
    scratch_signer: LicenseSigner,
) -> None:
    old_claims = _claims()
    old_token, old_version = scratch_signer.sign(old_claims)

    new_version = scratch_signer.rotate()
    assert new_version == old_version + 1
    assert scratch_signer.current_version() == new_version  # no waiting out the version cache

    new_claims = _claims()
    new_token, signed_with = scratch_signer.sign(new_claims)
    assert signed_with == new_version
    assert json.loads(_unb64url(new_token.split(".")[0]))["kid"] == str(new_version)

    jwks = scratch_signer.jwks()
    assert {key["kid"] for key in jwks["keys"]} == {str(old_version), str(new_version)}
    assert independent_claims(old_token, jwks) == old_claims
    assert independent_claims(new_token, jwks) == new_claims
    assert verify(old_token, jwks) == old_claims
    assert verify(new_token, jwks) == new_claims


def test_signing_without_openbao_is_signing_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    store = SecretStore(hvac.Client(url=f"http://127.0.0.1:{port}", token="unused", timeout=2))
    signer = LicenseSigner(store.client)
    with pytest.raises(SigningUnavailable):
        signer.sign(_claims())
    with pytest.raises(SigningUnavailable):
        signer.jwks()
