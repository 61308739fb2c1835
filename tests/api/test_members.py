"""Members of a tenant: add by email, list, change role, remove; the last admin stays."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from httpx import AsyncClient

from tests.api._helpers import add_member, all_items, assert_problem, audit_events, members, tenant_ids
from tests.factories import Factory


async def test_an_admin_adds_lists_changes_and_removes_a_member(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}/members"

    added = await client.post(
        url, json={"email": "New.Person@Example.com", "role": "billing_viewer"}, headers=admin.headers
    )
    assert added.status_code == 201, added.text
    member = added.json()
    assert (member["email"], member["role"], member["tenant_id"]) == (
        "new.person@example.com",
        "billing_viewer",
        tenant["id"],
    )
    user_id = member["user_id"]
    assert await members(client, staff, tenant["id"]) == {str(admin.user_id): "tenant_admin", user_id: "billing_viewer"}
    fetched = await client.get(f"{url}/{user_id}", headers=admin.headers)
    assert fetched.status_code == 200
    assert fetched.json() == member

    changed = await client.patch(f"{url}/{user_id}", json={"role": "tenant_member"}, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["role"] == "tenant_member"
    assert (await client.get(f"{url}/{user_id}", headers=admin.headers)).json()["role"] == "tenant_member"

    removed = await client.delete(f"{url}/{user_id}", headers=admin.headers)
    assert removed.status_code == 204
    assert_problem(await client.get(f"{url}/{user_id}", headers=admin.headers), 404, "member_not_found")
    assert await members(client, staff, tenant["id"]) == {str(admin.user_id): "tenant_admin"}
    # Removing again is not an error and changes nothing.
    assert (await client.delete(f"{url}/{user_id}", headers=admin.headers)).status_code == 204

    actions = [(e["action"], e["target_id"]) for e in await audit_events(client, staff, tenant["id"])]
    assert [a for a in actions if a[1] == user_id] == [
        ("member.added", user_id),
        ("member.role_changed", user_id),
        ("member.removed", user_id),
    ]


async def test_a_removed_member_loses_access(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    member = await factory.member(tenant["id"], "tenant_member")
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=member.headers)).status_code == 200
    removed = await client.delete(f"/v1/tenants/{tenant['id']}/members/{member.user_id}", headers=staff.headers)
    assert removed.status_code == 204
    assert_problem(await client.get(f"/v1/tenants/{tenant['id']}", headers=member.headers), 404, "tenant_not_found")
    assert await tenant_ids(client, member.headers) == set()


async def test_adding_an_existing_member_again_is_409(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    member = await factory.member(tenant["id"], "tenant_member")
    response = await client.post(
        f"/v1/tenants/{tenant['id']}/members",
        json={"email": member.email, "role": "tenant_admin"},
        headers=staff.headers,
    )
    assert_problem(response, 409, "member_exists")
    assert await members(client, staff, tenant["id"]) == {str(member.user_id): "tenant_member"}


@pytest.mark.parametrize("role", ["tenant_member", "billing_viewer"])
async def test_non_admins_cannot_manage_members(client: AsyncClient, factory: Factory, role: str) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    member = await factory.member(tenant["id"], role)
    url = f"/v1/tenants/{tenant['id']}/members"
    before = await members(client, staff, tenant["id"])
    events = len(await audit_events(client, staff, tenant["id"]))

    attempts = [
        client.post(url, json={"email": "friend@example.com", "role": "tenant_member"}, headers=member.headers),
        client.post(url, json={"email": "me-again@example.com", "role": "tenant_admin"}, headers=member.headers),
        client.patch(f"{url}/{member.user_id}", json={"role": "tenant_admin"}, headers=member.headers),
        client.patch(f"{url}/{admin.user_id}", json={"role": "tenant_member"}, headers=member.headers),
        client.delete(f"{url}/{admin.user_id}", headers=member.headers),
    ]
    for attempt in attempts:
        assert_problem(await attempt, 403, "forbidden_for_role")
    assert await members(client, staff, tenant["id"]) == before
    assert len(await audit_events(client, staff, tenant["id"])) == events


async def test_members_of_one_tenant_cannot_touch_another(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    victim = await factory.tenant(staff)
    victim_admin = await factory.member(victim["id"], "tenant_admin")
    attacker = await factory.member((await factory.tenant(staff))["id"], "tenant_admin")
    url = f"/v1/tenants/{victim['id']}/members"
    attempts = [
        client.get(url, headers=attacker.headers),
        client.get(f"{url}/{victim_admin.user_id}", headers=attacker.headers),
        client.post(url, json={"email": attacker.email, "role": "tenant_admin"}, headers=attacker.headers),
        client.patch(f"{url}/{victim_admin.user_id}", json={"role": "tenant_member"}, headers=attacker.headers),
        client.delete(f"{url}/{victim_admin.user_id}", headers=attacker.headers),
    ]
    for attempt in attempts:
        response = await attempt
        assert_problem(response, 404, "tenant_not_found")
        assert victim_admin.email not in response.text
    assert await members(client, staff, victim["id"]) == {str(victim_admin.user_id): "tenant_admin"}


async def test_a_billing_viewer_cannot_read_members_but_a_tenant_member_can(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    viewer = await factory.member(tenant["id"], "billing_viewer")
    member = await factory.member(tenant["id"], "tenant_member")
    url = f"/v1/tenants/{tenant['id']}/members"
    assert_problem(await client.get(url, headers=viewer.headers), 403, "forbidden_for_role")
    listed = await client.get(url, headers=member.headers)
    assert listed.status_code == 200
    assert {m["user_id"] for m in listed.json()["items"]} == {str(viewer.user_id), str(member.user_id)}


async def test_the_member_list_is_paginated(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    url = f"/v1/tenants/{tenant['id']}/members"
    added = []
    for i in range(5):
        response = await client.post(
            url, json={"email": f"m{i}@example.com", "role": "tenant_member"}, headers=staff.headers
        )
        assert response.status_code == 201, response.text
        added.append(response.json()["user_id"])

    first = await client.get(url, params={"limit": 2}, headers=staff.headers)
    assert first.status_code == 200
    assert len(first.json()["items"]) == 2
    second = await client.get(url, params={"limit": 2, "cursor": first.json()["next_cursor"]}, headers=staff.headers)
    assert [m["user_id"] for m in second.json()["items"]] == added[2:4]
    assert [m["user_id"] for m in await all_items(client, url, staff.headers, limit=2)] == added
    last = await client.get(url, params={"limit": 5}, headers=staff.headers)
    assert last.json()["next_cursor"] is None

    for limit in (0, 101, 1000, -1):
        assert_problem(await client.get(url, params={"limit": limit}, headers=staff.headers), 400, "validation_error")
    assert_problem(
        await client.get(url, params={"cursor": "not-a-cursor"}, headers=staff.headers), 422, "invalid_cursor"
    )


async def test_the_last_admin_cannot_be_removed_or_demoted(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    first = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}/members"

    for headers in (first.headers, staff.headers):
        assert_problem(await client.delete(f"{url}/{first.user_id}", headers=headers), 409, "last_admin")
        demote = await client.patch(f"{url}/{first.user_id}", json={"role": "tenant_member"}, headers=headers)
        assert_problem(demote, 409, "last_admin")
    assert await members(client, staff, tenant["id"]) == {str(first.user_id): "tenant_admin"}

    second = await factory.member(tenant["id"], "tenant_admin")
    demoted = await client.patch(f"{url}/{first.user_id}", json={"role": "tenant_member"}, headers=second.headers)
    assert demoted.status_code == 200, demoted.text
    assert_problem(await client.delete(f"{url}/{second.user_id}", headers=staff.headers), 409, "last_admin")
    assert_problem(
        await client.patch(f"{url}/{second.user_id}", json={"role": "billing_viewer"}, headers=staff.headers),
        409,
        "last_admin",
    )
    # Keeping the same role is not a demotion.
    same = await client.patch(f"{url}/{second.user_id}", json={"role": "tenant_admin"}, headers=second.headers)
    assert same.status_code == 200
    assert await members(client, staff, tenant["id"]) == {
        str(first.user_id): "tenant_member",
        str(second.user_id): "tenant_admin",
    }


@pytest.mark.parametrize("change", ["demote", "remove"])
async def test_concurrent_changes_never_leave_a_tenant_without_an_admin(
    client: AsyncClient, factory: Factory, change: str
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admins = [await factory.member(tenant["id"], "tenant_admin") for _ in range(2)]
    url = f"/v1/tenants/{tenant['id']}/members"

    def request(admin_id: uuid.UUID):  # type: ignore[no-untyped-def]
        if change == "demote":
            return client.patch(f"{url}/{admin_id}", json={"role": "tenant_member"}, headers=staff.headers)
        return client.delete(f"{url}/{admin_id}", headers=staff.headers)

    for _ in range(3):
        responses = await asyncio.gather(*(request(admin.user_id) for admin in admins))
        statuses = sorted(r.status_code for r in responses)
        assert statuses in ([200, 409], [204, 409]), [r.text for r in responses]
        assert list((await members(client, staff, tenant["id"])).values()).count("tenant_admin") == 1
        # Restore two admins for the next round.
        for admin in admins:
            if change == "demote":
                await client.patch(f"{url}/{admin.user_id}", json={"role": "tenant_admin"}, headers=staff.headers)
            else:
                await client.post(url, json={"email": admin.email, "role": "tenant_admin"}, headers=staff.headers)
        assert list((await members(client, staff, tenant["id"])).values()).count("tenant_admin") == 2


async def test_one_user_with_different_roles_in_two_tenants(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    a = await factory.tenant(staff)
    b = await factory.tenant(staff)
    user = await factory.member(a["id"], "tenant_admin")
    added = await add_member(client, b["id"], user.email, "tenant_member", staff.headers)
    assert added["user_id"] == str(user.user_id)

    assert await tenant_ids(client, user.headers) == {a["id"], b["id"]}
    assert (await client.patch(f"/v1/tenants/{a['id']}", json={"name": "A2"}, headers=user.headers)).status_code == 200
    assert_problem(
        await client.patch(f"/v1/tenants/{b['id']}", json={"name": "B2"}, headers=user.headers),
        403,
        "forbidden_for_role",
    )
    new_member = {"email": "x@example.com", "role": "tenant_member"}
    assert (
        await client.post(f"/v1/tenants/{a['id']}/members", json=new_member, headers=user.headers)
    ).status_code == 201
    assert_problem(
        await client.post(f"/v1/tenants/{b['id']}/members", json=new_member, headers=user.headers),
        403,
        "forbidden_for_role",
    )
    assert (await client.get(f"/v1/tenants/{b['id']}/members", headers=user.headers)).status_code == 200
    assert (await members(client, staff, a["id"]))[str(user.user_id)] == "tenant_admin"
    assert (await members(client, staff, b["id"]))[str(user.user_id)] == "tenant_member"


async def test_staff_adding_a_member_to_an_unknown_tenant_is_404(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    unknown = uuid.uuid4()
    response = await client.post(
        f"/v1/tenants/{unknown}/members",
        json={"email": "lost@example.com", "role": "tenant_member"},
        headers=staff.headers,
    )
    assert_problem(response, 404, "tenant_not_found")
    assert_problem(
        await client.patch(
            f"/v1/tenants/{unknown}/members/{staff.user_id}", json={"role": "tenant_member"}, headers=staff.headers
        ),
        404,
    )


async def test_another_tenants_member_cannot_be_reached_through_ones_own_tenant(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    victim = await factory.tenant(staff)
    victim_member = await factory.member(victim["id"], "tenant_member")
    own = await factory.tenant(staff)
    attacker = await factory.member(own["id"], "tenant_admin")
    url = f"/v1/tenants/{own['id']}/members/{victim_member.user_id}"

    read = await client.get(url, headers=attacker.headers)
    assert_problem(read, 404, "member_not_found")
    assert victim_member.email not in read.text
    changed = await client.patch(url, json={"role": "tenant_admin"}, headers=attacker.headers)
    assert_problem(changed, 404, "member_not_found")
    assert (await client.delete(url, headers=attacker.headers)).status_code == 204  # nothing to remove here
    assert await members(client, staff, victim["id"]) == {str(victim_member.user_id): "tenant_member"}
    assert await tenant_ids(client, victim_member.headers) == {victim["id"]}
