"""Idempotency-Key on POST: replays, mismatches, failures that release the key, per-principal scope."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from tests.api._helpers import (
    add_member,
    all_items,
    assert_problem,
    audit_actions,
    bearer,
    create_api_key,
    members,
    tenant_ids,
)
from tests.api.billing._support import metric, plan, stamp, subscribe, utcnow
from tests.api.billing.test_payments import GOOD_CARD, card, stripe_client
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, shared
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


async def test_concurrent_retries_create_one_tenant(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    headers = {**staff.headers, "Idempotency-Key": "racing"}
    responses = await asyncio.gather(*(client.post("/v1/tenants", json=BODY, headers=headers) for _ in range(5)))
    originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(originals) == 1, [r.text for r in responses]
    for response in responses:
        if response.status_code == 201:
            assert response.json()["id"] == originals[0].json()["id"]
        else:  # the first is still running: retry later
            assert_problem(response, 409, "idempotency_request_in_progress")
    assert await tenant_ids(client, staff.headers) == {originals[0].json()["id"]}


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
    copied = await client.post(
        "/v1/tenants", json={**BODY, "slug": "alice"}, headers={**bob.headers, "Idempotency-Key": "k2"}
    )
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
    "key",
    ["x" * 256, "y" * 300, "has space", "tab\tinside", "ünïcode".encode()],
    ids=["256", "300", "space", "tab", "unicode"],
)
async def test_an_invalid_key_header_is_400_and_nothing_is_created(
    client: AsyncClient, factory: Factory, key: str | bytes
) -> None:
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


async def test_an_erased_tenant_replays_nothing(client: AsyncClient, factory: Factory) -> None:
    """Stored responses hold personal data (member emails, key secrets): erasure forgets them too."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    other = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    # Also a member elsewhere, so the account survives the erasure.
    await add_member(client, other["id"], admin.email, "tenant_member", staff.headers)
    url = f"/v1/tenants/{tenant['id']}/members"
    headers = {**admin.headers, "Idempotency-Key": "invite-pii"}
    body = {"email": "pii@example.com", "role": "tenant_member"}
    assert (await client.post(url, json=body, headers=headers)).status_code == 201
    keyed = {**admin.headers, "Idempotency-Key": "key-pii"}
    assert (
        await client.post(f"/v1/tenants/{tenant['id']}/api-keys", json={"name": "k"}, headers=keyed)
    ).status_code == 201

    assert (await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).status_code == 202

    again = await client.post(url, json=body, headers=headers)
    assert "idempotent-replayed" not in again.headers
    assert_problem(again, 404, "tenant_not_found")
    assert "pii@example.com" not in again.text
    key_again = await client.post(f"/v1/tenants/{tenant['id']}/api-keys", json={"name": "k"}, headers=keyed)
    assert "idempotent-replayed" not in key_again.headers
    assert_problem(key_again, 404, "tenant_not_found")


async def test_a_replayed_api_key_creation_never_shows_the_secret_again(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    url = f"/v1/tenants/{tenant['id']}/api-keys"
    headers = {**admin.headers, "Idempotency-Key": "key-once"}
    first = await client.post(url, json={"name": "ci"}, headers=headers)
    assert first.status_code == 201 and first.json()["secret"].startswith("cpk_")

    again = await client.post(url, json={"name": "ci"}, headers=headers)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert "secret" not in again.json()
    assert again.json()["id"] == first.json()["id"]
    assert len(await all_items(client, url, admin.headers)) == 1

    owner = await connect_as_inspector(stack_env)
    try:
        stored = await owner.fetch("select response_body from idempotency_keys")
    finally:
        await owner.close()
    secret_part = first.json()["secret"][-43:]  # the secret itself (token_urlsafe may hold "_" too)
    assert stored and all(secret_part.encode() not in bytes(row["response_body"]) for row in stored)


async def test_a_removed_member_cannot_replay_into_the_tenant(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    await factory.member(tenant["id"])  # stays, so the leaving admin is not the last one
    leaving = await factory.member(tenant["id"])
    url = f"/v1/tenants/{tenant['id']}/members"
    headers = {**leaving.headers, "Idempotency-Key": "invite-1"}
    first = await client.post(url, json={"email": "new@example.com", "role": "tenant_member"}, headers=headers)
    assert first.status_code == 201, first.text

    removed = await client.delete(f"{url}/{leaving.user_id}", headers=staff.headers)
    assert removed.status_code == 204, removed.text
    replay = await client.post(url, json={"email": "new@example.com", "role": "tenant_member"}, headers=headers)
    assert_problem(replay, 404, "tenant_not_found")
    assert "idempotent-replayed" not in replay.headers


async def test_staff_add_nothing_to_a_tenant_being_erased_but_may_retry_the_erasure(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    url = f"/v1/tenants/{tenant['id']}"
    assert (await client.delete(url, headers=staff.headers)).status_code == 202
    refused = await client.post(
        f"{url}/members", json={"email": "late@example.com", "role": "tenant_member"}, headers=staff.headers
    )
    assert_problem(refused, 403, "tenant_not_active")
    assert_problem(
        await client.patch(url, json={"billing_email": "x@example.com"}, headers=staff.headers),
        403,
        "tenant_not_active",
    )
    retried = await client.delete(url, headers=staff.headers)
    assert retried.status_code == 202 and retried.json()["status"] == "pending_deletion"
    assert await members(client, staff, tenant["id"]) == {}


async def test_erasure_forgets_the_stored_creation_of_the_tenant(client: AsyncClient, factory: Factory) -> None:
    """The staff request that created the tenant is stored outside any tenant, with the billing contact."""
    staff = await factory.staff()
    headers = {**staff.headers, "Idempotency-Key": "create-with-contact"}
    body = {**BODY, "billing_email": "contact@acme.example"}
    created = await client.post("/v1/tenants", json=body, headers=headers)
    assert created.status_code == 201
    other_headers = {**staff.headers, "Idempotency-Key": "create-other"}
    other_body = {**BODY, "slug": "other"}
    assert (await client.post("/v1/tenants", json=other_body, headers=other_headers)).status_code == 201

    assert (await client.delete(f"/v1/tenants/{created.json()['id']}", headers=staff.headers)).status_code == 202
    again = await client.post("/v1/tenants", json=body, headers=headers)
    assert "idempotent-replayed" not in again.headers
    assert "contact@acme.example" not in again.text
    assert_problem(again, 409, "tenant_slug_taken")
    # Another tenant's stored creation is untouched.
    other_again = await client.post("/v1/tenants", json=other_body, headers=other_headers)
    assert other_again.headers["idempotent-replayed"] == "true"


async def test_every_authenticated_post_honours_the_key_even_outside_a_tenant_path(
    client: AsyncClient, factory: Factory
) -> None:
    """A person (not staff) signing up a partner: no tenant in the path, scoped to that person."""
    person = await factory.user()
    other = await factory.user()
    body = {"name": "Northwind Resale", "email": "sales@northwind.test", "subtype": "standard"}
    headers = {**person.headers, "Idempotency-Key": "sign-up-once"}

    first = await client.post("/v1/resellers", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post("/v1/resellers", json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]
    assert_problem(
        await client.post("/v1/resellers", json={**body, "name": "Other"}, headers=headers),
        422,
        "idempotency_key_reused",
    )
    # Another person with the same key runs their own request.
    theirs = await client.post("/v1/resellers", json=body, headers={**other.headers, "Idempotency-Key": "sign-up-once"})
    assert theirs.status_code == 201, theirs.text
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["id"] != first.json()["id"]


async def test_an_api_keys_post_outside_a_tenant_path_is_kept_in_its_own_tenant(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """`/v1/usage` names no tenant in its path; the API key's tenant scopes the stored request (so an erasure
    of that tenant forgets it)."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    await metric(client, staff.headers, "idem_calls")
    charge = {"type": "metered", "metric_code": "idem_calls", "model": "per_unit", "unit_amount_minor": "1"}
    await plan(client, staff.headers, "idem-plan", [charge])
    await subscribe(client, staff.headers, tenant["id"], "idem-plan")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    headers = {**bearer(key), "Idempotency-Key": "usage-batch-1"}
    events = [{"idempotency_key": "u1", "metric_code": "idem_calls", "timestamp": stamp(utcnow())}]

    first = await client.post("/v1/usage", json={"events": events}, headers=headers)
    assert first.status_code == 200, first.text
    again = await client.post("/v1/usage", json={"events": events}, headers=headers)
    assert again.status_code == 200, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()

    owner = await connect_as_inspector(stack_env)
    try:
        stored = await owner.fetch("select tenant_id from idempotency_keys where key = 'usage-batch-1'")
    finally:
        await owner.close()
    assert [str(row["tenant_id"]) for row in stored] == [tenant["id"]]


async def test_a_tenant_suspended_for_non_payment_still_gets_idempotent_billing_posts(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], stripe_client: Any
) -> None:
    """Settling a debt is exactly when a retry must not act twice: the member may still act there."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    owner = await connect_as_inspector(stack_env)
    try:
        await owner.execute("update tenants set billing_suspended_at = now() where id = $1", uuid.UUID(tenant["id"]))
    finally:
        await owner.close()
    url = f"/v1/tenants/{tenant['id']}/payment-methods"
    body = {"stripe_payment_method_id": card(stripe_client, GOOD_CARD)}
    headers = {**admin.headers, "Idempotency-Key": "card-once"}

    first = await client.post(url, json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = await client.post(url, json=body, headers=headers)
    assert again.status_code == 201, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
