"""Audit events: every state change records actor, action, target and the request id; the list pages."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient

from tests.api._helpers import all_items, assert_problem, audit_events
from tests.factories import Factory


async def test_every_state_change_is_audited_with_actor_target_and_request_id(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    created = await client.post(
        "/v1/tenants",
        json={"name": "Audited", "slug": "audited", "currency": "EUR", "billing_email": "p@a.example"},
        headers={**staff.headers, "X-Request-ID": "req-create"},
    )
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "req-create"
    tenant_id = created.json()["id"]
    admin = await factory.member(tenant_id, "tenant_admin")
    url = f"/v1/tenants/{tenant_id}"

    def as_admin(request_id: str) -> dict[str, str]:
        return {**admin.headers, "X-Request-ID": request_id}

    def as_staff(request_id: str) -> dict[str, str]:
        return {**staff.headers, "X-Request-ID": request_id}

    assert (await client.patch(url, json={"name": "Renamed"}, headers=as_admin("req-update"))).status_code == 200
    added = await client.post(
        f"{url}/members", json={"email": "m@example.com", "role": "tenant_member"}, headers=as_admin("req-add")
    )
    member_id = added.json()["user_id"]
    changed = await client.patch(
        f"{url}/members/{member_id}", json={"role": "billing_viewer"}, headers=as_admin("req-role")
    )
    assert changed.status_code == 200
    assert (await client.delete(f"{url}/members/{member_id}", headers=as_admin("req-remove"))).status_code == 204
    key = await client.post(f"{url}/api-keys", json={"name": "k"}, headers=as_admin("req-key"))
    key_id = key.json()["id"]
    assert (await client.delete(f"{url}/api-keys/{key_id}", headers=as_admin("req-revoke"))).status_code == 204
    assert (await client.post(f"{url}/suspend", headers=as_staff("req-suspend"))).status_code == 200
    assert (await client.post(f"{url}/reactivate", headers=as_staff("req-reactivate"))).status_code == 200
    assert (await client.delete(url, headers=as_staff("req-erase"))).status_code == 202

    by_request = {e["request_id"]: e for e in await audit_events(client, staff, tenant_id)}
    staff_actor = ("user", str(staff.user_id))
    admin_actor = ("user", str(admin.user_id))
    expected = {
        "req-create": ("tenant.created", staff_actor, ("tenant", tenant_id)),
        "req-update": ("tenant.updated", admin_actor, ("tenant", tenant_id)),
        "req-add": ("member.added", admin_actor, ("user", member_id)),
        "req-role": ("member.role_changed", admin_actor, ("user", member_id)),
        "req-remove": ("member.removed", admin_actor, ("user", member_id)),
        "req-key": ("api_key.created", admin_actor, ("api_key", key_id)),
        "req-revoke": ("api_key.revoked", admin_actor, ("api_key", key_id)),
        "req-suspend": ("tenant.suspended", staff_actor, ("tenant", tenant_id)),
        "req-reactivate": ("tenant.reactivated", staff_actor, ("tenant", tenant_id)),
        "req-erase": ("tenant.erasure_requested", staff_actor, ("tenant", tenant_id)),
    }
    for request_id, (action, actor, target) in expected.items():
        event = by_request.get(request_id)
        assert event is not None, f"no audit event for {request_id}: {sorted(by_request, key=str)}"
        assert event["action"] == action
        assert (event["actor_type"], event["actor_id"]) == actor
        assert (event["target_type"], event["target_id"]) == target
        assert event["tenant_id"] == tenant_id

    assert by_request["req-role"]["before"] == {"role": "tenant_member"}
    assert by_request["req-role"]["after"] == {"role": "billing_viewer"}
    assert by_request["req-update"]["before"]["name"] == "Audited"
    assert by_request["req-update"]["after"]["name"] == "Renamed"
    assert by_request["req-suspend"]["after"] == {"status": "suspended"}
    # Summaries hold no personal data (so erasure need not rewrite the trail).
    assert "p@a.example" not in str(by_request) and "m@example.com" not in str(by_request)


async def test_a_request_id_is_generated_and_recorded_when_the_client_sends_none(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    sent_ids = [None, "x" * 129, "bad\x01id"]  # absent, too long, not printable: replaced by a generated id
    tenant_ids = []
    answered = []
    for i, request_id in enumerate(sent_ids):
        headers = dict(staff.headers) if request_id is None else {**staff.headers, "X-Request-ID": request_id}
        response = await client.post(
            "/v1/tenants", json={"name": "T", "slug": f"gen-{i}", "currency": "EUR"}, headers=headers
        )
        assert response.status_code == 201
        generated = response.headers["x-request-id"]
        assert generated and generated != request_id and len(generated) <= 128
        tenant_ids.append(response.json()["id"])
        answered.append(generated)
    assert len(set(answered)) == len(answered)
    for tenant_id, generated in zip(tenant_ids, answered, strict=True):
        (event,) = await audit_events(client, staff, tenant_id)
        assert event["request_id"] == generated


async def test_failed_requests_write_no_audit_event(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    member = await factory.member(tenant["id"], "tenant_member")
    url = f"/v1/tenants/{tenant['id']}"
    before = await audit_events(client, staff, tenant["id"])

    failures = [
        (client.patch(url, json={"name": "x"}, headers=member.headers), 403),
        (client.patch(f"{url}/members/{admin.user_id}", json={"role": "tenant_member"}, headers=admin.headers), 409),
        (client.delete(f"{url}/members/{admin.user_id}", headers=admin.headers), 409),
        (
            client.post(f"{url}/members", json={"email": member.email, "role": "tenant_admin"}, headers=admin.headers),
            409,
        ),
        (client.post(f"{url}/suspend", headers=admin.headers), 403),
        (client.patch(url, json={"currency": "euro"}, headers=admin.headers), 400),
    ]
    for request, status in failures:
        assert_problem(await request, status)
    assert await audit_events(client, staff, tenant["id"]) == before


async def test_the_audit_list_is_paginated(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    url = f"/v1/tenants/{tenant['id']}"
    for i in range(6):
        assert (await client.patch(url, json={"name": f"Name {i}"}, headers=staff.headers)).status_code == 200
    events_url = f"{url}/audit-events"

    everything = await all_items(client, events_url, staff.headers, limit=100)
    assert [e["action"] for e in everything] == ["tenant.created"] + ["tenant.updated"] * 6
    assert [e["after"].get("name") for e in everything[1:]] == [f"Name {i}" for i in range(6)]

    first = (await client.get(events_url, params={"limit": 3}, headers=staff.headers)).json()
    assert len(first["items"]) == 3 and first["next_cursor"]
    paged = await all_items(client, events_url, staff.headers, limit=3)
    assert [e["id"] for e in paged] == [e["id"] for e in everything]
    created_at = [e["created_at"] for e in paged]
    assert created_at == sorted(created_at)

    assert_problem(await client.get(events_url, params={"limit": 101}, headers=staff.headers), 400)
    assert_problem(await client.get(events_url, params={"cursor": "%%%"}, headers=staff.headers), 422, "invalid_cursor")


@pytest.mark.parametrize("role", ["tenant_member", "billing_viewer"])
async def test_only_admins_and_staff_read_the_audit_trail(client: AsyncClient, factory: Factory, role: str) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    reader = await factory.member(tenant["id"], role)
    outsider = await factory.member((await factory.tenant(staff))["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}/audit-events"

    assert (await client.get(url, headers=admin.headers)).status_code == 200
    assert_problem(await client.get(url, headers=reader.headers), 403, "forbidden_for_role")
    foreign = await client.get(url, headers=outsider.headers)
    assert_problem(foreign, 404, "tenant_not_found")
    assert "tenant.created" not in foreign.text
    assert_problem(
        await client.get(f"/v1/tenants/{uuid.uuid4()}/audit-events", headers=staff.headers), 404, "tenant_not_found"
    )
