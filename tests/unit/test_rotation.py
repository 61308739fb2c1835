"""JWT key rotation planned as a pure function, and a token signer that follows rotations (no OpenBao)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from controlplane.core.auth.tokens import InvalidToken, ReloadingTokenSigner, TokenSigner
from controlplane.ops.rotation import JwtRotation, new_jwt_key, parse_what, plan_jwt_rotation

T0 = datetime(2025, 1, 6, 4, 11, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _key_set(kid: str = "k0") -> dict[str, str]:
    _, pem = new_jwt_key(T0)
    return {"active_kid": kid, "keys": json.dumps({kid: pem})}


def _rotate(
    secret: Mapping[str, Any], kid: str, now: datetime, overlap: timedelta
) -> tuple[dict[str, str], JwtRotation]:
    _, pem = new_jwt_key(now)
    return plan_jwt_rotation(secret, kid, pem, now=now, overlap=overlap, written_at=T0)


def _verifies(secret: Mapping[str, Any], token: str) -> bool:
    try:
        TokenSigner.from_secret(secret, issuer="controlplane", ttl_seconds=900).verify(token)
    except InvalidToken:
        return False
    return True


def test_a_rotation_adds_an_active_key_and_the_old_one_keeps_verifying() -> None:
    before = _key_set("k0")
    old_token = TokenSigner.from_secret(before, issuer="controlplane", ttl_seconds=900).issue(uuid.uuid4())

    after, rotation = _rotate(before, "k1", T0 + HOUR, HOUR)

    assert rotation == JwtRotation("k1", "k0", (), ("k0", "k1"))
    assert json.loads(after["retired"]) == {"k0": (T0 + HOUR).isoformat()}
    assert _verifies(after, old_token)
    new_token = TokenSigner.from_secret(after, issuer="controlplane", ttl_seconds=900).issue(uuid.uuid4())
    assert jwt.get_unverified_header(new_token)["kid"] == "k1"


def test_keys_retired_longer_ago_than_the_overlap_are_dropped_but_never_the_previous_one() -> None:
    secret, _ = _rotate(_key_set("k0"), "k1", T0 + HOUR, HOUR)
    # Twice in a row: k0 stopped signing only just now, so it stays.
    secret, rotation = _rotate(secret, "k2", T0 + HOUR, HOUR)
    assert rotation.kept == ("k0", "k1", "k2") and rotation.dropped == ()
    # A week later k0 and k1 both stopped signing long ago; k1 was active until now, so only k0 goes.
    secret, rotation = _rotate(secret, "k3", T0 + timedelta(days=7), HOUR)
    assert rotation == JwtRotation("k3", "k2", ("k0", "k1"), ("k2", "k3"))
    assert set(json.loads(secret["keys"])) == {"k2", "k3"}
    assert set(json.loads(secret["retired"])) == {"k2"}


def test_a_key_with_no_retirement_time_counts_as_retired_when_the_secret_was_written() -> None:
    _, pem0 = new_jwt_key(T0)
    _, pem1 = new_jwt_key(T0)
    # Two keys, no `retired` field (written by hand at T0): kx is not the previous key.
    secret = {"active_kid": "k1", "keys": json.dumps({"kx": pem0, "k1": pem1})}
    _, soon = plan_jwt_rotation(secret, "k2", pem0, now=T0 + timedelta(minutes=5), overlap=HOUR, written_at=T0)
    assert soon.dropped == ()
    _, later = plan_jwt_rotation(secret, "k2", pem0, now=T0 + 2 * HOUR, overlap=HOUR, written_at=T0)
    assert later.dropped == ("kx",)


def test_a_kid_that_exists_is_refused() -> None:
    with pytest.raises(ValueError, match="already exists"):
        _rotate(_key_set("k0"), "k0", T0, HOUR)


def test_what_to_rotate() -> None:
    assert parse_what("all") == ("jwt", "license", "pii", "db")
    assert parse_what("jwt") == ("jwt",)
    with pytest.raises(ValueError, match="cannot rotate"):
        parse_what("stripe")


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Loader:
    def __init__(self, secret: Mapping[str, Any]) -> None:
        self.secret = secret
        self.calls = 0
        self.fail = False

    def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("OpenBao is down")
        return self.secret


def _reloading(secret: Mapping[str, Any], loader: _Loader, clock: _Clock) -> ReloadingTokenSigner:
    return ReloadingTokenSigner(
        secret, loader, issuer="controlplane", ttl_seconds=900, refresh_seconds=300, retry_seconds=10, clock=clock
    )


async def test_a_token_with_an_unknown_kid_reloads_the_keys_at_most_once_per_interval() -> None:
    before = _key_set("k0")
    after, _ = _rotate(before, "k1", T0, HOUR)
    clock, loader = _Clock(), _Loader(after)
    signer = _reloading(before, loader, clock)
    rotated_token = TokenSigner.from_secret(after, issuer="controlplane", ttl_seconds=900).issue(uuid.uuid4())
    forged = jwt.encode({"sub": "x"}, "s" * 32, algorithm="HS256", headers={"kid": "nobody"})

    # Just loaded at start-up: an unknown kid does not read again yet.
    with pytest.raises(InvalidToken):
        await signer.verify_fresh(rotated_token)
    assert loader.calls == 0

    clock.now += 11
    user = (await signer.verify_fresh(rotated_token)).user_id
    assert loader.calls == 1 and isinstance(user, uuid.UUID)
    assert signer.current.active_kid == "k1"

    # A stream of unknown kids reads once per interval, not once per request.
    for _ in range(5):
        with pytest.raises(InvalidToken):
            await signer.verify_fresh(forged)
    assert loader.calls == 1
    clock.now += 11
    with pytest.raises(InvalidToken):
        await signer.verify_fresh(forged)
    assert loader.calls == 2


async def test_the_keys_are_reread_when_stale_and_kept_when_openbao_fails() -> None:
    before = _key_set("k0")
    after, _ = _rotate(before, "k1", T0, HOUR)
    clock, loader = _Clock(), _Loader(after)
    signer = _reloading(before, loader, clock)
    old_token = signer.issue(uuid.uuid4())

    loader.fail = True
    clock.now += 301
    await signer.refresh_if_stale()
    assert loader.calls == 1 and signer.current.active_kid == "k0"  # kept serving
    assert (await signer.verify_fresh(old_token)).user_id

    loader.fail = False
    clock.now += 301
    await signer.refresh_if_stale()
    assert signer.current.active_kid == "k1"
    assert jwt.get_unverified_header(signer.issue(uuid.uuid4()))["kid"] == "k1"
    assert (await signer.verify_fresh(old_token)).user_id  # the previous key still verifies
