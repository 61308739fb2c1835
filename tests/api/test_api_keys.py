"""Tenant API keys: shown once, stored as a hash, authenticate as their tenant, revocable."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from httpx import AsyncClient

from tests.api._helpers import all_items, assert_problem, audit_events, bearer, create_api_key, members, tenant_ids
from tests.factories import Factory

KEY_FIELDS = {"id", "tenant_id", "name", "role", "created_at", "last_used_at", "revoked_at"}


async def test_the_secret_is_returned_once_and_never_listed(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}/api-keys"

    response = await client.post(url, json={"name": "deploy bot", "role": "tenant_member"}, headers=admin.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == KEY_FIELDS | {"secret"}
    assert (created["name"], created["role"], created["tenant_id"]) == ("deploy bot", "tenant_member", tenant["id"])
    assert created["revoked_at"] is None
    secret = created["secret"]
    assert secret.startswith("cpk_")
    secret_part = secret.rsplit("_", 1)[1]

    for headers in (admin.headers, staff.headers):
        listed = await client.get(url, headers=headers)
        assert listed.status_code == 200
        assert [set(item) for item in listed.json()["items"]] == [KEY_FIELDS]
        assert listed.json()["items"][0]["id"] == created["id"]
        assert secret_part not in listed.text
        assert "hash" not in listed.text
    # Nor does the audit trail hold it.
    assert secret_part not in str(await audit_events(client, staff, tenant["id"]))


async def test_a_key_authenticates_as_its_tenant_only(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    own = await factory.tenant(staff)
    other = await factory.tenant(staff)
    admin = await factory.member(own["id"], "tenant_admin")
    _, key = await create_api_key(client, admin.headers, own["id"], role="tenant_member")

    response = await client.get(f"/v1/tenants/{own['id']}", headers=bearer(key))
    assert response.status_code == 200
    assert response.json()["id"] == own["id"]
    assert (await client.get(f"/v1/tenants/{own['id']}/members", headers=bearer(key))).status_code == 200
    assert await tenant_ids(client, bearer(key)) == {own["id"]}

    for url in (f"/v1/tenants/{other['id']}", f"/v1/tenants/{other['id']}/members", f"/v1/tenants/{uuid.uuid4()}"):
        foreign = await client.get(url, headers=bearer(key))
        assert_problem(foreign, 404, "tenant_not_found")
        assert other["slug"] not in foreign.text


async def test_a_key_acts_with_its_role_and_is_audited_as_itself(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    member_key_row, member_key = await create_api_key(client, admin.headers, tenant["id"], role="tenant_member")
    admin_key_row, admin_key = await create_api_key(client, admin.headers, tenant["id"], role="tenant_admin")
    url = f"/v1/tenants/{tenant['id']}"

    new_member = {"email": "robot-added@example.com", "role": "tenant_member"}
    assert_problem(
        await client.post(f"{url}/members", json=new_member, headers=bearer(member_key)), 403, "forbidden_for_role"
    )
    assert_problem(await client.patch(url, json={"name": "x"}, headers=bearer(member_key)), 403, "forbidden_for_role")
    assert_problem(await client.get(f"{url}/api-keys", headers=bearer(member_key)), 403, "forbidden_for_role")

    added = await client.post(f"{url}/members", json=new_member, headers=bearer(admin_key))
    assert added.status_code == 201, added.text
    event = [e for e in await audit_events(client, staff, tenant["id"]) if e["action"] == "member.added"][-1]
    assert (event["actor_type"], event["actor_id"]) == ("api_key", admin_key_row["id"])
    assert event["target_id"] == added.json()["user_id"]

    created = await client.post(f"{url}/api-keys", json={"name": "child"}, headers=bearer(admin_key))
    assert created.status_code == 201
    assert created.json()["role"] == "tenant_member"  # the default role
    assert member_key_row["id"] != created.json()["id"]


async def test_a_revoked_key_is_refused(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    row, key = await create_api_key(client, admin.headers, tenant["id"])
    _, kept = await create_api_key(client, admin.headers, tenant["id"])
    url = f"/v1/tenants/{tenant['id']}"
    assert (await client.get(url, headers=bearer(key))).status_code == 200

    assert (await client.delete(f"{url}/api-keys/{row['id']}", headers=admin.headers)).status_code == 204
    response = await client.get(url, headers=bearer(key))
    assert_problem(response, 401, "api_key_revoked")
    assert response.headers["www-authenticate"] == "Bearer"
    assert (await client.get(url, headers=bearer(kept))).status_code == 200

    listed = {k["id"]: k for k in await all_items(client, f"{url}/api-keys", admin.headers)}
    assert listed[row["id"]]["revoked_at"] is not None
    # Revoking again is a no-op; an unknown key is 404.
    assert (await client.delete(f"{url}/api-keys/{row['id']}", headers=admin.headers)).status_code == 204
    assert [e["action"] for e in await audit_events(client, staff, tenant["id"])].count("api_key.revoked") == 1
    assert_problem(
        await client.delete(f"{url}/api-keys/{uuid.uuid4()}", headers=admin.headers), 404, "api_key_not_found"
    )


async def test_a_key_of_another_tenant_cannot_be_revoked_through_this_one(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    victim = await factory.tenant(staff)
    attacker_tenant = await factory.tenant(staff)
    victim_admin = await factory.member(victim["id"], "tenant_admin")
    attacker = await factory.member(attacker_tenant["id"], "tenant_admin")
    victim_row, victim_key = await create_api_key(client, victim_admin.headers, victim["id"])

    response = await client.delete(
        f"/v1/tenants/{attacker_tenant['id']}/api-keys/{victim_row['id']}", headers=attacker.headers
    )
    assert_problem(response, 404, "api_key_not_found")
    assert (await client.get(f"/v1/tenants/{victim['id']}", headers=bearer(victim_key))).status_code == 200


def _with_secret_changed(key: str, other: str) -> str:
    secret = key.rsplit("_", 1)[1]
    changed = ("A" if secret[0] != "A" else "B") + secret[1:]
    return key[: -len(secret)] + changed


def _with_other_tenant(key: str, other: str) -> str:
    _, _, key_hex, secret = key.split("_", 3)
    return f"cpk_{uuid.UUID(other).hex}_{key_hex}_{secret}"


def _with_other_key_id(key: str, other: str) -> str:
    _, tenant_hex, _, secret = key.split("_", 3)
    return f"cpk_{tenant_hex}_{uuid.uuid4().hex}_{secret}"


MALFORMED: dict[str, Callable[[str, str], str]] = {
    "prefix only": lambda key, other: "cpk_",
    "garbage": lambda key, other: "cpk_not-a-key",
    "truncated": lambda key, other: key[:-1],
    "extended": lambda key, other: key + "x",
    "upper-case tenant": lambda key, other: key.upper().replace("CPK_", "cpk_", 1),
    "wrong secret": _with_secret_changed,
    "moved to another tenant": _with_other_tenant,
    "unknown key id": _with_other_key_id,
}


@pytest.mark.parametrize("case", list(MALFORMED))
async def test_malformed_or_forged_keys_are_401_and_write_nothing(
    client: AsyncClient, factory: Factory, case: str
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    other = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    row, key = await create_api_key(client, admin.headers, tenant["id"])
    url = f"/v1/tenants/{tenant['id']}"
    events = await audit_events(client, staff, tenant["id"])
    forged = MALFORMED[case](key, other["id"])
    assert forged != key

    for attempt in (
        client.get(url, headers=bearer(forged)),
        client.get(f"/v1/tenants/{other['id']}", headers=bearer(forged)),
        client.post(
            f"{url}/members", json={"email": "intruder@example.com", "role": "tenant_admin"}, headers=bearer(forged)
        ),
    ):
        assert_problem(await attempt, 401, "api_key_revoked")

    # Nothing was written: no member, no audit event, and the real key was not marked as used.
    assert await members(client, staff, tenant["id"]) == {str(admin.user_id): "tenant_admin"}
    assert await audit_events(client, staff, tenant["id"]) == events
    listed = await all_items(client, f"{url}/api-keys", staff.headers)
    assert [(k["id"], k["last_used_at"], k["revoked_at"]) for k in listed] == [(row["id"], None, None)]
    # The real key works, and its use is recorded: the check above could have seen a write.
    assert (await client.get(url, headers=bearer(key))).status_code == 200
    assert (await all_items(client, f"{url}/api-keys", staff.headers))[0]["last_used_at"] is not None


async def test_staff_creating_a_key_for_an_unknown_tenant_is_404(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    response = await client.post(f"/v1/tenants/{uuid.uuid4()}/api-keys", json={"name": "ghost"}, headers=staff.headers)
    assert_problem(response, 404, "tenant_not_found")


async def test_the_keys_an_admin_created_are_revoked_when_that_admin_leaves_the_tenant(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    leaving = await factory.member(tenant["id"], "tenant_admin")
    staying = await factory.member(tenant["id"], "tenant_admin")
    theirs, their_key = await create_api_key(client, leaving.headers, tenant["id"], name="theirs")
    kept_row, kept_key = await create_api_key(client, staying.headers, tenant["id"], name="kept")
    url = f"/v1/tenants/{tenant['id']}"
    assert (await client.get(url, headers=bearer(their_key))).status_code == 200

    removed = await client.delete(f"{url}/members/{leaving.user_id}", headers=staying.headers)
    assert removed.status_code == 204, removed.text

    assert_problem(await client.get(url, headers=bearer(their_key)), 401, "api_key_revoked")
    assert (await client.get(url, headers=bearer(kept_key))).status_code == 200
    listed = {k["id"]: k for k in await all_items(client, f"{url}/api-keys", staff.headers)}
    assert listed[theirs["id"]]["revoked_at"] is not None
    assert listed[kept_row["id"]]["revoked_at"] is None

    # The audit says which keys went, and why.
    events = await audit_events(client, staff, tenant["id"])
    revoked = [e for e in events if e["action"] == "api_key.revoked"]
    assert [(e["target_id"], e["after"]) for e in revoked] == [
        (theirs["id"], {"reason": "creator_left_tenant", "created_by": str(leaving.user_id)})
    ]
    (removal,) = [e for e in events if e["action"] == "member.removed"]
    assert removal["after"] == {"api_keys_revoked": [theirs["id"]]}
    # Removing again revokes nothing more and records nothing more.
    assert (await client.delete(f"{url}/members/{leaving.user_id}", headers=staying.headers)).status_code == 204
    again = await audit_events(client, staff, tenant["id"])
    assert [e["action"] for e in again].count("api_key.revoked") == 1
