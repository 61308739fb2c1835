"""A person's repeated requests: their token is verified once and their user row read once, yet a token stops
working at once when its key is rotated out, when it expires, and when its user is disabled or erased."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from httpx import AsyncClient
from jwt.algorithms import OKPAlgorithm
from litestar import Litestar

from controlplane.core.auth import tokens
from controlplane.core.auth.tokens import LEEWAY_SECONDS, ReloadingTokenSigner
from controlplane.core.secrets import JWT_KEYS_PATH, SecretStore
from controlplane.core.settings import Settings
from controlplane.devstack.platform_secrets import new_jwt_signing_keys
from controlplane.ops import rotation
from tenants import repository, service
from tests.api._helpers import assert_problem, bearer
from tests.api._notifications import heard_once, published
from tests.conftest import connect_as_inspector
from tests.factories import PASSWORD, Factory


class Calls:
    count = 0


@pytest.fixture
def ed25519_verifications(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every Ed25519 signature check PyJWT makes (EdDSA tokens go through OKPAlgorithm.verify)."""
    calls, verify = Calls(), OKPAlgorithm.verify

    def counted(self: OKPAlgorithm, *args: Any) -> bool:
        calls.count += 1
        return verify(self, *args)

    monkeypatch.setattr(OKPAlgorithm, "verify", counted)
    return calls


@pytest.fixture
def user_reads(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every read of a user's row by id (what a person's principal is made from)."""
    calls, get_user = Calls(), repository.get_user

    async def counted(user_id: uuid.UUID) -> dict[str, Any] | None:
        calls.count += 1
        return await get_user(user_id)

    monkeypatch.setattr(repository, "get_user", counted)
    return calls


@pytest.fixture
def store(settings: Settings) -> SecretStore:
    return SecretStore.connect(settings)


@pytest.fixture
def jwt_path(store: SecretStore) -> Iterator[str]:
    """A key set of this test's own, so the session's `platform/jwt` stays as it is."""
    path = f"platform/test-jwt-{uuid.uuid4().hex[:12]}"
    store.write(path, new_jwt_signing_keys(), cas=0)
    yield path
    store.client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point="secret")


class WallClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wall_clock() -> WallClock:
    return WallClock()


@pytest.fixture
def signer(
    app: Litestar, settings: Settings, store: SecretStore, wall_clock: WallClock, monkeypatch: pytest.MonkeyPatch
) -> ReloadingTokenSigner:
    """The API's signer on the session's key set, remembering nothing yet, on this test's wall clock."""
    fresh = ReloadingTokenSigner(
        store.read(JWT_KEYS_PATH),
        lambda: store.read(JWT_KEYS_PATH),
        issuer=settings.jwt_issuer,
        ttl_seconds=60,
        wall_clock=wall_clock,
    )
    monkeypatch.setattr(app.state, "token_signer", fresh)
    return fresh


async def test_a_token_is_verified_once_and_its_user_read_once(
    client: AsyncClient, factory: Factory, ed25519_verifications: Calls, user_reads: Calls
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    member = await factory.member(tenant["id"], "tenant_member")
    url = f"/v1/tenants/{tenant['id']}/members"
    verified, read = ed25519_verifications.count, user_reads.count

    for _ in range(5):
        assert (await client.get(url, headers=admin.headers)).status_code == 200
    assert ed25519_verifications.count == verified + 1
    assert user_reads.count == read + 1
    # Another person's token is verified (and their row read) on its own.
    assert (await client.get(url, headers=member.headers)).status_code == 200
    assert (ed25519_verifications.count, user_reads.count) == (verified + 2, read + 2)


async def test_a_remembered_token_whose_key_was_rotated_out_is_refused_once_the_keys_are_reread(
    client: AsyncClient,
    factory: Factory,
    app: Litestar,
    settings: Settings,
    store: SecretStore,
    jwt_path: str,
    monkeypatch: pytest.MonkeyPatch,
    ed25519_verifications: Calls,
) -> None:
    # Reads the key set on every request, as a process does every few minutes.
    rotating = ReloadingTokenSigner(
        store.read(jwt_path),
        lambda: store.read(jwt_path),
        issuer=settings.jwt_issuer,
        ttl_seconds=settings.jwt_ttl_seconds,
        refresh_seconds=0,
    )
    monkeypatch.setattr(app.state, "token_signer", rotating)
    user = await factory.user()
    old_token = rotating.issue(user.user_id)
    verified = ed25519_verifications.count
    for _ in range(3):
        assert (await client.get("/v1/tenants", headers=bearer(old_token))).status_code == 200
    # Re-reading an unchanged key set keeps what was verified.
    assert ed25519_verifications.count == verified + 1

    # Twice with no overlap: the first rotation keeps the old key as the previous one, the second drops it.
    rotation.rotate_jwt_keys(store, overlap=timedelta(0), path=jwt_path)
    assert (await client.get("/v1/tenants", headers=bearer(old_token))).status_code == 200
    dropped = rotation.rotate_jwt_keys(store, overlap=timedelta(0), path=jwt_path)
    assert dropped.dropped == (jwt.get_unverified_header(old_token)["kid"],)

    assert_problem(await client.get("/v1/tenants", headers=bearer(old_token)), 401, "invalid_token")
    new_token = rotating.issue(user.user_id)
    assert (await client.get("/v1/tenants", headers=bearer(new_token))).status_code == 200


async def test_a_remembered_token_is_refused_once_it_expires(
    client: AsyncClient,
    factory: Factory,
    signer: ReloadingTokenSigner,
    wall_clock: WallClock,
    ed25519_verifications: Calls,
) -> None:
    user = await factory.user()
    token = signer.issue(user.user_id)
    expires_at = int(wall_clock.now) + 60
    verified = ed25519_verifications.count

    assert (await client.get("/v1/tenants", headers=bearer(token))).status_code == 200
    wall_clock.now = expires_at - 1
    assert (await client.get("/v1/tenants", headers=bearer(token))).status_code == 200
    assert ed25519_verifications.count == verified + 1  # remembered until its expiry
    # From its expiry on it is verified again each time (and accepted within the clock drift tolerated)...
    wall_clock.now = expires_at
    assert (await client.get("/v1/tenants", headers=bearer(token))).status_code == 200
    assert (await client.get("/v1/tenants", headers=bearer(token))).status_code == 200
    assert ed25519_verifications.count == verified + 3
    # ... until it is refused.
    wall_clock.now = expires_at + LEEWAY_SECONDS
    assert_problem(await client.get("/v1/tenants", headers=bearer(token)), 401, "token_expired")


async def test_remembered_tokens_are_bounded(
    client: AsyncClient,
    factory: Factory,
    signer: ReloadingTokenSigner,
    monkeypatch: pytest.MonkeyPatch,
    ed25519_verifications: Calls,
) -> None:
    monkeypatch.setattr(tokens, "MAX_VERIFIED_TOKENS", 3)
    first, second, third, fourth = [await factory.user() for _ in range(4)]
    for person in (first, second, third, first):
        assert (await client.get("/v1/tenants", headers=person.headers)).status_code == 200
    verified = ed25519_verifications.count
    assert (await client.get("/v1/tenants", headers=first.headers)).status_code == 200
    assert ed25519_verifications.count == verified  # three fit
    # A fourth does not: what was remembered is let go, and each is verified again when it comes back.
    assert (await client.get("/v1/tenants", headers=fourth.headers)).status_code == 200
    assert (await client.get("/v1/tenants", headers=first.headers)).status_code == 200
    assert ed25519_verifications.count == verified + 2


async def test_a_user_disabled_by_another_process_is_refused_at_once(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], user_reads: Calls
) -> None:
    """An operator disabling a user in SQL: the database publishes it, and every API process forgets the user."""
    user = await factory.user()
    for _ in range(3):
        assert (await client.get("/v1/tenants", headers=user.headers)).status_code == 200
    read = user_reads.count

    inspector = await connect_as_inspector(stack_env)
    try:
        async with published(stack_env) as heard:
            await inspector.execute("update users set status = 'disabled' where id = $1", user.user_id)
            await heard_once(heard, f"user:{user.user_id}")
    finally:
        await inspector.close()
    # This process hears it on its own connection: give its loop a turn to read the notification.
    for _ in range(200):
        response = await client.get("/v1/tenants", headers=user.headers)
        if response.status_code == 401:
            break
    else:
        raise AssertionError("the disabled user's token was still accepted")
    assert_problem(response, 401, "invalid_credentials")
    assert user_reads.count > read


async def test_an_erased_user_is_refused_at_once(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    member = await factory.member(tenant["id"], "tenant_member")
    url = f"/v1/tenants/{tenant['id']}"
    for person in (admin, member):
        assert (await client.get(url, headers=person.headers)).status_code == 200

    assert (await client.delete(url, headers=admin.headers)).status_code == 202
    # The very next request, with no turn of the loop for a notification: the erasure itself evicted them here.
    for person in (admin, member):
        assert_problem(await client.get("/v1/tenants", headers=person.headers), 401, "invalid_credentials")


async def test_a_user_made_staff_acts_as_staff_at_once(client: AsyncClient, factory: Factory) -> None:
    user = await factory.user()
    assert_problem(await client.get("/v1/disputes", headers=user.headers), 403, "staff_only")

    await service.create_or_update_user(user.email, PASSWORD, staff=True)  # as `controlplane users create` does
    assert (await client.get("/v1/disputes", headers=user.headers)).status_code == 200
