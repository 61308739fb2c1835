"""POST /v1/auth/token and bearer authentication of people (JWTs)."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from httpx import AsyncClient
from litestar import Litestar

from controlplane.core.auth.tokens import TokenSigner
from tenants import service
from tests.api._helpers import add_member, assert_problem, bearer
from tests.factories import PASSWORD, Actor, Factory


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _unb64(segment: str) -> dict[str, object]:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _signer(app: Litestar) -> TokenSigner:
    return app.state.token_signer  # type: ignore[no-any-return]


async def test_the_right_password_gives_a_working_token(client: AsyncClient, factory: Factory, app: Litestar) -> None:
    user = await factory.user()
    # Emails are matched case-insensitively and without surrounding spaces.
    response = await client.post("/v1/auth/token", json={"email": f" {user.email.upper()} ", "password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == _signer(app).ttl_seconds
    assert jwt.decode(body["access_token"], options={"verify_signature": False})["sub"] == str(user.user_id)

    listed = await client.get("/v1/tenants", headers=bearer(body["access_token"]))
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize("wrong", ["password", "email"])
async def test_wrong_password_or_unknown_email_is_401_and_indistinguishable(
    client: AsyncClient, factory: Factory, wrong: str
) -> None:
    user = await factory.user()
    attempt = {
        "password": {"email": user.email, "password": PASSWORD + "!"},
        "email": {"email": "nobody-" + user.email, "password": PASSWORD},
    }[wrong]
    response = await client.post("/v1/auth/token", json=attempt)
    body = assert_problem(response, 401, "invalid_credentials")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "access_token" not in body
    # The answer does not tell whether the email exists.
    other = await client.post("/v1/auth/token", json={"email": "ghost@example.com", "password": "x" * 12})
    assert other.json() == body


async def test_an_invited_user_without_a_password_cannot_sign_in(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    await add_member(client, tenant["id"], "invited@example.com", "tenant_member", staff.headers)
    for password in ("", "not-a-real-password", PASSWORD):
        response = await client.post("/v1/auth/token", json={"email": "invited@example.com", "password": password})
        assert response.status_code in (400, 401), response.text
        assert_problem(response, response.status_code)
        assert "access_token" not in response.text


def _expired(app: Litestar, user: Actor, staff: Actor) -> str:
    signer = _signer(app)
    return signer.issue(user.user_id, now=int(time.time()) - signer.ttl_seconds - 60)


def _flipped_signature(app: Litestar, user: Actor, staff: Actor) -> str:
    header, payload, signature = user.token.split(".")
    # A character in the middle: the last one may only carry padding bits that decoding ignores.
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"


def _payload_swapped_for_staff(app: Litestar, user: Actor, staff: Actor) -> str:
    # Privilege escalation attempt: the user's signature over a payload naming the staff user.
    header, payload, signature = user.token.split(".")
    claims = _unb64(payload) | {"sub": str(staff.user_id)}
    return f"{header}.{_b64(claims)}.{signature}"


def _flipped_payload_char(app: Litestar, user: Actor, staff: Actor) -> str:
    header, payload, signature = user.token.split(".")
    middle = len(payload) // 2
    flipped = "A" if payload[middle] != "A" else "B"
    return f"{header}.{payload[:middle]}{flipped}{payload[middle + 1 :]}.{signature}"


def _foreign_key_same_kid(app: Litestar, user: Actor, staff: Actor) -> str:
    kid = jwt.get_unverified_header(user.token)["kid"]
    claims = jwt.decode(user.token, options={"verify_signature": False})
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid})


def _unknown_kid(app: Litestar, user: Actor, staff: Actor) -> str:
    claims = jwt.decode(user.token, options={"verify_signature": False})
    return jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "attacker"})


def _alg_none(app: Litestar, user: Actor, staff: Actor) -> str:
    header, payload, _ = user.token.split(".")
    unsigned_header = _unb64(header) | {"alg": "none"}
    return f"{_b64(unsigned_header)}.{payload}."


def _alg_hs256(app: Litestar, user: Actor, staff: Actor) -> str:
    kid = jwt.get_unverified_header(user.token)["kid"]
    claims = jwt.decode(user.token, options={"verify_signature": False})
    return jwt.encode(claims, "a-shared-secret-of-at-least-32-bytes!!", algorithm="HS256", headers={"kid": kid})


def _not_a_jwt(app: Litestar, user: Actor, staff: Actor) -> str:
    return "definitely-not-a-jwt"


BAD_TOKENS: dict[str, tuple[Callable[[Litestar, Actor, Actor], str], str]] = {
    "expired": (_expired, "token_expired"),
    "flipped signature": (_flipped_signature, "invalid_token"),
    "payload swapped for another user": (_payload_swapped_for_staff, "invalid_token"),
    "flipped payload character": (_flipped_payload_char, "invalid_token"),
    "signed by an unknown key with our kid": (_foreign_key_same_kid, "invalid_token"),
    "unknown kid": (_unknown_kid, "invalid_token"),
    "alg none": (_alg_none, "invalid_token"),
    "alg HS256": (_alg_hs256, "invalid_token"),
    "not a JWT": (_not_a_jwt, "invalid_token"),
}


@pytest.mark.parametrize("case", list(BAD_TOKENS))
async def test_bad_tokens_are_401(client: AsyncClient, factory: Factory, app: Litestar, case: str) -> None:
    staff = await factory.staff()
    await factory.tenant(staff)
    user = await factory.user()
    build, code = BAD_TOKENS[case]
    token = build(app, user, staff)
    assert token != user.token

    response = await client.get("/v1/tenants", headers=bearer(token))
    assert_problem(response, 401, code)
    assert response.headers["www-authenticate"] == "Bearer"
    # The genuine token still works, so the refusal is about the token and nothing else.
    assert (await client.get("/v1/tenants", headers=user.headers)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": ""},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer   "},
        {"Authorization": "Basic dTpw"},
    ],
    ids=["absent", "empty", "scheme only", "blank credentials", "basic"],
)
async def test_missing_credentials_are_401(client: AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/v1/tenants", headers=headers)
    assert_problem(response, 401, "missing_credentials")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_password_change_or_signing_out_everywhere_revokes_the_tokens_issued_before(
    client: AsyncClient, factory: Factory
) -> None:
    user = await factory.user()
    assert (await client.get("/v1/tenants", headers=user.headers)).status_code == 200
    await service.create_or_update_user(user.email, "a brand new passphrase", staff=False)  # the CLI's reset
    assert_problem(await client.get("/v1/tenants", headers=user.headers), 401, "invalid_token")
    signed_in = await client.post("/v1/auth/token", json={"email": user.email, "password": "a brand new passphrase"})
    fresh = bearer(signed_in.json()["access_token"])
    assert (await client.get("/v1/tenants", headers=fresh)).status_code == 200
    await service.end_sessions(user.user_id)  # "Sign out everywhere" in the console
    assert_problem(await client.get("/v1/tenants", headers=fresh), 401, "invalid_token")


async def test_a_token_for_a_user_that_does_not_exist_is_401(client: AsyncClient, app: Litestar) -> None:
    response = await client.get("/v1/tenants", headers=bearer(_signer(app).issue(uuid.uuid4())))
    assert_problem(response, 401, "invalid_credentials")


async def test_the_token_endpoint_rejects_unknown_fields_and_missing_fields(
    client: AsyncClient, factory: Factory
) -> None:
    user = await factory.user()
    extra = await client.post("/v1/auth/token", json={"email": user.email, "password": PASSWORD, "staff": True})
    assert_problem(extra, 400, "validation_error")
    missing = await client.post("/v1/auth/token", json={"email": user.email})
    assert_problem(missing, 400, "validation_error")


async def test_repeated_failures_lock_the_account_for_a_while(client: AsyncClient, factory: Factory) -> None:
    victim = await factory.user()
    other = await factory.user()
    for _ in range(10):
        wrong = await client.post("/v1/auth/token", json={"email": victim.email, "password": "not-the-password"})
        assert_problem(wrong, 401, "invalid_credentials")
    # Now even the right password waits: the attacker cannot tell when they guessed it.
    locked = await client.post("/v1/auth/token", json={"email": victim.email, "password": PASSWORD})
    body = assert_problem(locked, 429, "too_many_attempts")
    assert 0 < int(locked.headers["Retry-After"]) <= 900
    assert body["retry_after_seconds"] == int(locked.headers["Retry-After"])
    # Another account from the same address is not affected by these ten failures.
    fine = await client.post("/v1/auth/token", json={"email": other.email, "password": PASSWORD})
    assert fine.status_code == 200, fine.text
    # The email's case does not open a second counter.
    shouted = await client.post("/v1/auth/token", json={"email": victim.email.upper(), "password": PASSWORD})
    assert_problem(shouted, 429, "too_many_attempts")


async def test_one_address_guessing_across_many_accounts_is_slowed_down(client: AsyncClient, factory: Factory) -> None:
    user = await factory.user()
    for n in range(50):
        guess = await client.post("/v1/auth/token", json={"email": f"guess{n}@example.com", "password": "x"})
        assert_problem(guess, 401, "invalid_credentials")
    blocked = await client.post("/v1/auth/token", json={"email": user.email, "password": PASSWORD})
    assert_problem(blocked, 429, "too_many_attempts")


async def test_parallel_guesses_cannot_pass_the_limit_together(client: AsyncClient, factory: Factory) -> None:
    import asyncio

    victim = await factory.user()
    guesses = [client.post("/v1/auth/token", json={"email": victim.email, "password": f"guess-{n}"}) for n in range(25)]
    statuses = sorted(response.status_code for response in await asyncio.gather(*guesses))
    assert statuses.count(401) == 10, statuses
    assert statuses.count(429) == 15, statuses


async def test_a_reservation_given_back_after_its_window_ended_leaves_no_counter_without_a_window(
    app: Litestar, stack_env: dict[str, str]
) -> None:
    import redis.asyncio as aioredis

    from controlplane.core.auth.throttle import SignInThrottle

    redis_client = aioredis.from_url(stack_env["REDIS_URL"])
    try:
        throttle = SignInThrottle(redis_client, window_seconds=60)
        email, address = f"late-{uuid.uuid4().hex}@example.com", "198.51.100.7"
        await throttle.reserve(email, address)
        keys = [key async for key in redis_client.scan_iter(match="controlplane:throttle:signin:*")]
        assert len(keys) >= 2
        await redis_client.delete(*keys)  # the window ended while the password was checked
        await throttle.succeeded(email, address)
        # No counter at -1 with no expiry, which would then count failures forever.
        assert [key async for key in redis_client.scan_iter(match="controlplane:throttle:signin:*")] == []
    finally:
        await redis_client.aclose()
