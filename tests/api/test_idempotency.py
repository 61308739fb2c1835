"""Idempotency-Key on POST: replays, mismatches, failures that release the key, per-principal scope."""

from __future__ import annotations

import pytest
from httpx import AsyncClient

from tests.api._helpers import all_items, assert_problem, audit_actions, members, tenant_ids
from tests.factories import Factory

BODY = {"name": "Once", "slug": "once", "currency": "EUR"}


async def test_the_same_key_and_body_replays_the_first_response(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    headers = {**staff.headers, "Idempotency-Key": "create-once"}
    first = await client.post("/v1/tenants", json=BODY, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers

    for _ in range(2):
        again = await client.post("/v1/tenants", json=BODY, headers=headers)
        assert again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.headers["content-type"].startswith("application/json")
        assert again.json() == first.json()

    assert await tenant_ids(client, staff.headers) == {first.json()["id"]}
    assert await audit_actions(client, staff, first.json()["id"]) == ["tenant.created"]


async def test_the_same_key_with_another_body_is_422(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    headers = {**staff.headers, "Idempotency-Key": "k-1"}
    first = await client.post("/v1/tenants", json=BODY, headers=headers)
    assert first.status_code == 201
    other = await client.post("/v1/tenants", json={**BODY, "slug": "twice"}, headers=headers)
    assert_problem(other, 422, "idempotency_key_reused")
    assert "idempotent-replayed" not in other.headers
    assert await tenant_ids(client, staff.headers) == {first.json()["id"]}
    # The first request is still replayable.
    assert (await client.post("/v1/tenants", json=BODY, headers=headers)).json() == first.json()


async def test_a_failed_request_does_not_consume_the_key(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    existing = await factory.tenant(staff, slug="taken")
    headers = {**staff.headers, "Idempotency-Key": "retry-me"}

    failed = await client.post("/v1/tenants", json={**BODY, "slug": "taken"}, headers=headers)
    assert_problem(failed, 409, "tenant_slug_taken")
    # The same request again runs again (it is not a replay of the failure).
    again = await client.post("/v1/tenants", json={**BODY, "slug": "taken"}, headers=headers)
    assert_problem(again, 409, "tenant_slug_taken")
    assert "idempotent-replayed" not in again.headers
    invalid = await client.post("/v1/tenants", json={**BODY, "slug": "Not Valid"}, headers=headers)
    assert_problem(invalid, 400)

    # A corrected request may use the same key.
    fixed = await client.post("/v1/tenants", json=BODY, headers=headers)
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    assert await tenant_ids(client, staff.headers) == {existing["id"], fixed.json()["id"]}
    replay = await client.post("/v1/tenants", json=BODY, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == fixed.json()["id"]


async def test_keys_are_scoped_per_principal(client: AsyncClient, factory: Factory) -> None:
    alice = await factory.staff()
    bob = await factory.staff()
    key = {"Idempotency-Key": "shared-key"}
    by_alice = await client.post("/v1/tenants", json={**BODY, "slug": "alice"}, headers={**alice.headers, **key})
    by_bob = await client.post("/v1/tenants", json={**BODY, "slug": "bob"}, headers={**bob.headers, **key})
    assert (by_alice.status_code, by_bob.status_code) == (201, 201), by_bob.text
    assert "idempotent-replayed" not in by_bob.headers
    assert by_alice.json()["id"] != by_bob.json()["id"]
    assert {t["slug"] for t in await all_items(client, "/v1/tenants", alice.headers)} == {"alice", "bob"}

    # Bob repeating Alice's exact request runs it (and meets her slug) instead of seeing her response.
    copied = await client.post("/v1/tenants", json={**BODY, "slug": "alice"}, headers={**bob.headers, "Idempotency-Key": "k2"})
    assert_problem(copied, 409, "tenant_slug_taken")


async def test_tenant_scoped_posts_replay_too(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}/members"
    headers = {**admin.headers, "Idempotency-Key": "invite-1"}
    body = {"email": "invitee@example.com", "role": "tenant_member"}

    first = await client.post(url, json=body, headers=headers)
    again = await client.post(url, json=body, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert len(await members(client, staff, tenant["id"])) == 2
    assert (await audit_actions(client, staff, tenant["id"])).count("member.added") == 2  # the admin and the invitee

    keyed = {**admin.headers, "Idempotency-Key": "key-1"}
    key = await client.post(f"/v1/tenants/{tenant['id']}/api-keys", json={"name": "k"}, headers=keyed)
    replayed = await client.post(f"/v1/tenants/{tenant['id']}/api-keys", json={"name": "k"}, headers=keyed)
    assert replayed.json()["id"] == key.json()["id"]
    assert len(await all_items(client, f"/v1/tenants/{tenant['id']}/api-keys", staff.headers)) == 1


@pytest.mark.parametrize(
    "key", ["x" * 256, "y" * 300, "has space", "tab\tinside", "ünïcode".encode()], ids=["256", "300", "space", "tab", "unicode"]
)
async def test_an_invalid_key_header_is_400_and_nothing_is_created(client: AsyncClient, factory: Factory, key: str | bytes) -> None:
    staff = await factory.staff()
    headers: dict[str, str | bytes] = {**staff.headers, "Idempotency-Key": key}
    response = await client.post("/v1/tenants", json=BODY, headers=headers)
    assert_problem(response, 400, "invalid_idempotency_key")
    assert await tenant_ids(client, staff.headers) == set()


async def test_the_longest_valid_key_works(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    headers = {**staff.headers, "Idempotency-Key": "k" * 255}
    first = await client.post("/v1/tenants", json=BODY, headers=headers)
    again = await client.post("/v1/tenants", json=BODY, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
