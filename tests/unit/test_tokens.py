import json
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.core.auth.tokens import ExpiredToken, InvalidToken, TokenSigner


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _signer(keys: dict[str, Ed25519PrivateKey], active: str, ttl: int = 900) -> TokenSigner:
    secret = {"active_kid": active, "keys": json.dumps({kid: _pem(key) for kid, key in keys.items()})}
    return TokenSigner.from_secret(secret, issuer="controlplane", ttl_seconds=ttl)


def test_round_trip() -> None:
    signer = _signer({"k1": Ed25519PrivateKey.generate()}, "k1")
    user = uuid.uuid4()
    assert signer.verify(signer.issue(user)).user_id == user


def test_expired_token_is_refused() -> None:
    signer = _signer({"k1": Ed25519PrivateKey.generate()}, "k1", ttl=60)
    with pytest.raises(ExpiredToken):
        signer.verify(signer.issue(uuid.uuid4(), now=1_000_000))


def test_tampered_payload_is_refused() -> None:
    signer = _signer({"k1": Ed25519PrivateKey.generate()}, "k1")
    header, _, signature = signer.issue(uuid.uuid4()).split(".")
    _, other_payload, _ = signer.issue(uuid.uuid4()).split(".")
    with pytest.raises(InvalidToken):
        signer.verify(f"{header}.{other_payload}.{signature}")


def test_token_of_an_unknown_key_is_refused() -> None:
    ours = _signer({"k1": Ed25519PrivateKey.generate()}, "k1")
    theirs = _signer({"k1": Ed25519PrivateKey.generate()}, "k1")
    with pytest.raises(InvalidToken):
        ours.verify(theirs.issue(uuid.uuid4()))


def test_rotation_keeps_old_tokens_verifying() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    before = _signer({"k1": old}, "k1")
    after = _signer({"k1": old, "k2": new}, "k2")
    user = uuid.uuid4()
    assert after.verify(before.issue(user)).user_id == user
    assert after.verify(after.issue(user)).user_id == user


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_garbage_is_refused(garbage: str) -> None:
    signer = _signer({"k1": Ed25519PrivateKey.generate()}, "k1")
    with pytest.raises(InvalidToken):
        signer.verify(garbage)


def test_derived_keys_follow_the_key_set_and_its_rotation() -> None:
    """The console's visitor keys: no constant in code; the active key's first; a rotated-out key still listed."""
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    before = _signer({"k1": old}, "k1")
    after = _signer({"k1": old, "k2": new}, "k2")
    [signing] = before.derived_keys(b"purpose")
    assert len(signing) == 32 and signing == _signer({"k1": old}, "k1").derived_keys(b"purpose")[0]
    assert after.derived_keys(b"purpose") == (after.derived_keys(b"purpose")[0], signing)
    assert after.derived_keys(b"purpose")[0] != signing
    assert before.derived_keys(b"another purpose")[0] != signing
    assert _signer({"k1": Ed25519PrivateKey.generate()}, "k1").derived_keys(b"purpose")[0] != signing


def test_a_token_carries_its_users_session_generation_and_a_strange_one_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    signer = _signer({"k1": key}, "k1")
    user = uuid.uuid4()
    assert signer.verify(signer.issue(user, generation=7)).generation == 7
    claims = jwt.decode(signer.issue(user), options={"verify_signature": False})
    for strange in ("7", 7.5, True, None, [7]):
        token = jwt.encode({**claims, "gen": strange}, key, algorithm="EdDSA", headers={"kid": "k1"})
        with pytest.raises(InvalidToken):
            signer.verify(token)
    without = jwt.encode({k: v for k, v in claims.items() if k != "gen"}, key, algorithm="EdDSA", headers={"kid": "k1"})
    assert signer.verify(without).generation == 0  # issued before generations
