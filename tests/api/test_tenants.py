"""Tenants: create, list by access, read, update, suspend and reactivate, erasure."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from httpx import AsyncClient

from tests.api._helpers import (
    add_member,
    all_items,
    assert_problem,
    audit_actions,
    audit_events,
    bearer,
    create_api_key,
    members,
    tenant_ids,
)
from tests.api.billing._support import invoices, plan, subscribe, utcnow
from tests.conftest import connect_as_inspector
from tests.factories import PASSWORD, Factory

# -- create ---------------------------------------------------------------------------------------


async def test_staff_creates_a_tenant(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    body = {"name": "Acme GmbH", "slug": "acme", "currency": "EUR", "billing_email": "billing@acme.example"}
    response = await client.post("/v1/tenants", json=body, headers=staff.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    uuid.UUID(created["id"])
    assert created | body == created  # every field sent is stored as sent
    assert created["status"] == "active"
    assert created["reseller_id"] is None

    fetched = await client.get(f"/v1/tenants/{created['id']}", headers=staff.headers)
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert await tenant_ids(client, staff.headers) == {created["id"]}


async def test_non_staff_cannot_create_tenants(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    _, key = await create_api_key(client, admin.headers, tenant["id"])
    outsider = await factory.user()
    body = {"name": "Mine", "slug": "mine", "currency": "EUR"}
    for headers in (admin.headers, bearer(key), outsider.headers):
        assert_problem(await client.post("/v1/tenants", json=body, headers=headers), 403, "staff_only")
    assert await tenant_ids(client, staff.headers) == {tenant["id"]}


async def test_a_duplicate_slug_is_409(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    first = await factory.tenant(staff, slug="taken")
    response = await client.post(
        "/v1/tenants", json={"name": "Other", "slug": "taken", "currency": "USD"}, headers=staff.headers
    )
    assert_problem(response, 409, "tenant_slug_taken")
    assert await tenant_ids(client, staff.headers) == {first["id"]}
    assert await audit_actions(client, staff, first["id"]) == ["tenant.created"]


# -- list -----------------------------------------------------------------------------------------


async def test_the_tenant_list_follows_the_access_model(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    a = await factory.tenant(staff, name="A")
    b = await factory.tenant(staff, name="B")
    c = await factory.tenant(staff, name="C")
    member_of_a = await factory.member(a["id"], "tenant_member")
    in_a_and_b = await factory.member(a["id"], "billing_viewer")
    await add_member(client, b["id"], in_a_and_b.email, "tenant_admin", staff.headers)
    b_admin = await factory.member(b["id"], "tenant_admin")
    _, b_key = await create_api_key(client, b_admin.headers, b["id"], role="billing_viewer")
    nobody = await factory.user()

    assert await tenant_ids(client, staff.headers) == {a["id"], b["id"], c["id"]}
    assert await tenant_ids(client, member_of_a.headers) == {a["id"]}
    assert await tenant_ids(client, in_a_and_b.headers) == {a["id"], b["id"]}
    assert await tenant_ids(client, bearer(b_key)) == {b["id"]}
    assert await tenant_ids(client, nobody.headers) == set()


async def test_the_tenant_list_is_paginated(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    created = [(await factory.tenant(staff, name=f"T{i}"))["id"] for i in range(5)]
    first = await client.get("/v1/tenants", params={"limit": 2}, headers=staff.headers)
    assert first.status_code == 200
    assert len(first.json()["items"]) == 2
    assert first.json()["next_cursor"]
    # Pages in creation order, each tenant once.
    assert [t["id"] for t in await all_items(client, "/v1/tenants", staff.headers, limit=2)] == created
    assert [t["id"] for t in await all_items(client, "/v1/tenants", staff.headers, limit=5)] == created


# -- read and update ------------------------------------------------------------------------------


async def test_a_member_reads_their_tenant_and_a_non_member_gets_404(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    mine = await factory.tenant(staff, name="Mine Inc", billing_email="secret-billing@mine.example")
    theirs = await factory.tenant(staff, name="Theirs Ltd")
    member = await factory.member(mine["id"], "tenant_member")
    outsider = await factory.member(theirs["id"], "tenant_admin")

    own = await client.get(f"/v1/tenants/{mine['id']}", headers=member.headers)
    assert own.status_code == 200
    assert own.json()["name"] == "Mine Inc"

    foreign = await client.get(f"/v1/tenants/{mine['id']}", headers=outsider.headers)
    assert_problem(foreign, 404, "tenant_not_found")
    assert "Mine Inc" not in foreign.text and "secret-billing" not in foreign.text and mine["slug"] not in foreign.text
    # An unknown tenant answers exactly like a foreign one.
    unknown = await client.get(f"/v1/tenants/{uuid.uuid4()}", headers=outsider.headers)
    assert unknown.json()["code"] == foreign.json()["code"]
    assert unknown.json()["detail"] == foreign.json()["detail"]
    assert_problem(await client.get(f"/v1/tenants/{uuid.uuid4()}", headers=staff.headers), 404, "tenant_not_found")


async def test_an_admin_updates_their_tenant(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="old@acme.example")
    admin = await factory.member(tenant["id"], "tenant_admin")

    response = await client.patch(f"/v1/tenants/{tenant['id']}", json={"name": "Renamed"}, headers=admin.headers)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert (updated["name"], updated["currency"], updated["billing_email"]) == ("Renamed", "EUR", "old@acme.example")
    assert updated["slug"] == tenant["slug"]

    cleared = await client.patch(f"/v1/tenants/{tenant['id']}", json={"billing_email": None}, headers=admin.headers)
    assert cleared.status_code == 200
    assert cleared.json()["billing_email"] is None
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).json() == cleared.json()


async def test_an_empty_update_changes_and_records_nothing(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    response = await client.patch(f"/v1/tenants/{tenant['id']}", json={}, headers=staff.headers)
    assert response.status_code == 200
    assert response.json() == tenant
    assert await audit_actions(client, staff, tenant["id"]) == ["tenant.created"]


@pytest.mark.parametrize("role", ["tenant_member", "billing_viewer"])
async def test_readers_cannot_update_their_tenant(client: AsyncClient, factory: Factory, role: str) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    reader = await factory.member(tenant["id"], role)
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=reader.headers)).status_code == 200

    response = await client.patch(f"/v1/tenants/{tenant['id']}", json={"name": "Hijacked"}, headers=reader.headers)
    assert_problem(response, 403, "forbidden_for_role")
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).json()["name"] == tenant["name"]
    assert "tenant.updated" not in await audit_actions(client, staff, tenant["id"])


async def test_a_non_member_cannot_update_another_tenant(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    victim = await factory.tenant(staff)
    other = await factory.tenant(staff)
    other_admin = await factory.member(other["id"], "tenant_admin")
    response = await client.patch(f"/v1/tenants/{victim['id']}", json={"name": "Hijacked"}, headers=other_admin.headers)
    assert_problem(response, 404, "tenant_not_found")
    assert (await client.get(f"/v1/tenants/{victim['id']}", headers=staff.headers)).json()["name"] == victim["name"]


# -- suspend and reactivate -----------------------------------------------------------------------


async def test_only_staff_suspend_and_reactivate(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    for action in ("suspend", "reactivate"):
        assert_problem(
            await client.post(f"/v1/tenants/{tenant['id']}/{action}", headers=admin.headers), 403, "staff_only"
        )
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).json()["status"] == "active"
    assert_problem(
        await client.post(f"/v1/tenants/{uuid.uuid4()}/suspend", headers=staff.headers), 404, "tenant_not_found"
    )


async def test_suspend_and_reactivate_are_idempotent(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    url = f"/v1/tenants/{tenant['id']}"
    for _ in range(2):
        response = await client.post(f"{url}/suspend", headers=staff.headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "suspended"
    for _ in range(2):
        response = await client.post(f"{url}/reactivate", headers=staff.headers)
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "active"
    # Repeats change nothing, so they record nothing.
    assert await audit_actions(client, staff, tenant["id"]) == [
        "tenant.created",
        "tenant.suspended",
        "tenant.reactivated",
    ]


async def test_a_suspended_tenant_can_be_read_but_not_written(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    key_row, key = await create_api_key(client, admin.headers, tenant["id"])
    assert (await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=staff.headers)).status_code == 200
    url = f"/v1/tenants/{tenant['id']}"

    for headers in (admin.headers, bearer(key)):
        read = await client.get(url, headers=headers)
        assert read.status_code == 200
        assert read.json()["status"] == "suspended"
        assert (await client.get(f"{url}/members", headers=headers)).status_code == 200
        assert (await client.get(f"{url}/audit-events", headers=headers)).status_code == 200

        writes = [
            client.patch(url, json={"name": "Still here"}, headers=headers),
            client.post(f"{url}/members", json={"email": "new@example.com", "role": "tenant_member"}, headers=headers),
            client.post(f"{url}/api-keys", json={"name": "another"}, headers=headers),
            client.delete(f"{url}/api-keys/{key_row['id']}", headers=headers),
            client.patch(f"{url}/members/{admin.user_id}", json={"role": "tenant_member"}, headers=headers),
        ]
        for write in writes:
            assert_problem(await write, 403, "tenant_not_active")

    assert await members(client, staff, tenant["id"]) == {str(admin.user_id): "tenant_admin"}
    keys = await all_items(client, f"{url}/api-keys", staff.headers)
    assert [(k["id"], k["revoked_at"]) for k in keys] == [(key_row["id"], None)]
    assert (await client.get(url, headers=staff.headers)).json()["name"] == tenant["name"]

    # Reactivated, the same admin writes again.
    assert (await client.post(f"{url}/reactivate", headers=staff.headers)).status_code == 200
    assert (await client.patch(url, json={"name": "Back"}, headers=admin.headers)).status_code == 200


# -- erasure --------------------------------------------------------------------------------------


async def test_deleting_a_tenant_is_an_erasure_request(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    doomed = await factory.tenant(staff, billing_email="ap@doomed.example")
    other = await factory.tenant(staff)
    admin = await factory.member(doomed["id"], "tenant_admin")
    only_here = await factory.member(doomed["id"], "tenant_member")
    also_elsewhere = await factory.member(other["id"], "tenant_admin")
    await add_member(client, doomed["id"], also_elsewhere.email, "tenant_member", admin.headers)
    _, key = await create_api_key(client, admin.headers, doomed["id"])
    url = f"/v1/tenants/{doomed['id']}"

    response = await client.delete(url, headers=admin.headers)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending_deletion"
    assert response.json()["billing_email"] is None

    seen_by_staff = (await client.get(url, headers=staff.headers)).json()
    assert (seen_by_staff["status"], seen_by_staff["billing_email"]) == ("pending_deletion", None)
    assert await members(client, staff, doomed["id"]) == {}
    keys = await all_items(client, f"{url}/api-keys", staff.headers)
    assert keys and all(k["revoked_at"] is not None for k in keys)
    assert_problem(await client.get(url, headers=bearer(key)), 401, "api_key_revoked")

    erasures = [e for e in await audit_events(client, staff, doomed["id"]) if e["action"] == "tenant.erasure_requested"]
    assert len(erasures) == 1
    assert (erasures[0]["actor_type"], erasures[0]["actor_id"]) == ("user", str(admin.user_id))
    assert (erasures[0]["target_type"], erasures[0]["target_id"]) == ("tenant", doomed["id"])
    assert erasures[0]["after"]["members_removed"] == 3
    assert "ap@doomed.example" not in str(await audit_events(client, staff, doomed["id"]))

    # A former member who still belongs elsewhere keeps their account but no longer sees the tenant.
    assert_problem(await client.get(url, headers=also_elsewhere.headers), 404, "tenant_not_found")
    assert await tenant_ids(client, also_elsewhere.headers) == {other["id"]}
    # Former members who belonged nowhere else are erased: their tokens and passwords stop working.
    for gone in (admin, only_here):
        assert_problem(await client.get(url, headers=gone.headers), 401)
        login = await client.post("/v1/auth/token", json={"email": gone.email, "password": PASSWORD})
        assert_problem(login, 401, "invalid_credentials")
    # The other tenant is untouched.
    assert await members(client, staff, other["id"]) == {str(also_elsewhere.user_id): "tenant_admin"}
    assert (await client.get(f"/v1/tenants/{other['id']}", headers=staff.headers)).json()["status"] == "active"


async def test_erasure_is_idempotent_and_final(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    url = f"/v1/tenants/{tenant['id']}"
    first = await client.delete(url, headers=staff.headers)
    again = await client.delete(url, headers=staff.headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json()["status"] == "pending_deletion"
    assert (await audit_actions(client, staff, tenant["id"])).count("tenant.erasure_requested") == 1
    assert_problem(await client.post(f"{url}/reactivate", headers=staff.headers), 409, "invalid_status_transition")
    assert_problem(await client.post(f"{url}/suspend", headers=staff.headers), 409, "invalid_status_transition")
    assert (await client.get(url, headers=staff.headers)).json()["status"] == "pending_deletion"
    assert_problem(await client.delete(f"/v1/tenants/{uuid.uuid4()}", headers=staff.headers), 404, "tenant_not_found")


@pytest.mark.parametrize("role", ["tenant_member", "billing_viewer"])
async def test_only_admins_and_staff_request_erasure(client: AsyncClient, factory: Factory, role: str) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    reader = await factory.member(tenant["id"], role)
    outsider = await factory.member((await factory.tenant(staff))["id"], "tenant_admin")
    assert_problem(
        await client.delete(f"/v1/tenants/{tenant['id']}", headers=reader.headers), 403, "forbidden_for_role"
    )
    assert_problem(
        await client.delete(f"/v1/tenants/{tenant['id']}", headers=outsider.headers), 404, "tenant_not_found"
    )
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).json()["status"] == "active"


# -- commercial terms (tax, grace, currency): platform staff only -------------------------------------


@pytest.mark.parametrize(
    "terms",
    [{"tax_rate_bps": 0}, {"invoice_grace_hours": 72}, {"currency": "USD"}, {"name": "Also", "tax_rate_bps": 1}],
    ids=["tax", "grace", "currency", "with-another-field"],
)
async def test_a_tenant_admin_cannot_set_its_own_commercial_terms(
    client: AsyncClient, factory: Factory, terms: dict[str, object]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}"

    refused = await client.patch(url, json=terms, headers=admin.headers)
    assert_problem(refused, 403, "commercial_terms_staff_only")
    # Nothing is written, not even the other fields of the request.
    assert (await client.get(url, headers=staff.headers)).json() == tenant
    assert "tenant.updated" not in await audit_actions(client, staff, tenant["id"])
    # An API key with the admin role is no different.
    _, key = await create_api_key(client, admin.headers, tenant["id"], role="tenant_admin")
    assert_problem(await client.patch(url, json=terms, headers=bearer(key)), 403, "commercial_terms_staff_only")


async def test_staff_set_a_tenants_commercial_terms(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    terms = {"tax_rate_bps": 2000, "invoice_grace_hours": 48, "currency": "USD"}
    response = await client.patch(f"/v1/tenants/{tenant['id']}", json=terms, headers=staff.headers)
    assert response.status_code == 200, response.text
    assert {name: response.json()[name] for name in terms} == terms


async def test_a_tenants_currency_cannot_change_while_it_has_a_live_subscription(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    code = f"live-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 1000}], trial_days=14)
    await subscribe(client, staff.headers, tenant["id"], code)
    url = f"/v1/tenants/{tenant['id']}"

    refused = await client.patch(url, json={"currency": "USD", "tax_rate_bps": 700}, headers=staff.headers)
    assert_problem(refused, 409, "tenant_currency_locked")
    assert (await client.get(url, headers=staff.headers)).json() == tenant
    # Other terms may change; the same currency is not a change.
    same = await client.patch(url, json={"currency": "EUR", "tax_rate_bps": 700}, headers=staff.headers)
    assert same.status_code == 200, same.text
    assert (same.json()["currency"], same.json()["tax_rate_bps"]) == ("EUR", 700)


async def test_a_tenants_currency_cannot_change_while_an_invoice_is_unpaid(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    code = f"unpaid-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 1000}])
    # Started (by staff) ten days ago: the days used stay owed after an immediate cancellation.
    subscription = await subscribe(client, staff.headers, tenant["id"], code, start_at=utcnow() - timedelta(days=10))
    canceled = await client.post(
        f"/v1/subscriptions/{subscription['id']}/cancel", json={"at_period_end": False}, headers=staff.headers
    )
    assert canceled.status_code == 200, canceled.text
    assert canceled.json()["status"] == "canceled"
    owed = [i for i in await invoices(client, staff.headers, tenant["id"]) if i["amount_due_minor"] > 0]
    assert owed and all(i["status"] == "finalized" for i in owed)

    refused = await client.patch(f"/v1/tenants/{tenant['id']}", json={"currency": "USD"}, headers=staff.headers)
    problem = assert_problem(refused, 409, "tenant_currency_locked")
    assert "unpaid invoices" in problem["detail"]
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).json()["currency"] == "EUR"


async def test_a_new_subscription_waits_for_a_currency_change_in_flight_and_sees_it(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """The interleaving forced: a currency change holds the tenant row when the subscription starts. The
    subscription waits for it (a share lock on the row) and then sees the new currency, rather than
    subscribing in the old one from its snapshot."""
    staff = await factory.staff()
    await plan(client, staff.headers, "eur-plan", [{"type": "flat", "amount_minor": 1000}])
    tenant = await factory.tenant(staff)
    inspector = await connect_as_inspector(stack_env)
    try:
        change = inspector.transaction()
        await change.start()
        await inspector.execute("update tenants set currency = 'USD' where id = $1", uuid.UUID(tenant["id"]))
        url = f"/v1/tenants/{tenant['id']}/subscriptions"
        subscribing = asyncio.create_task(client.post(url, json={"plan_code": "eur-plan"}, headers=staff.headers))
        await asyncio.sleep(0.5)
        assert not subscribing.done()
        await change.commit()
        subscribed = await subscribing
    finally:
        await inspector.close()
    assert_problem(subscribed, 422, "currency_mismatch")


async def test_a_currency_change_racing_a_new_subscription_never_leaves_them_apart(
    client: AsyncClient, factory: Factory
) -> None:
    """The check and the write share the tenant row's lock: either the subscription is in the tenant's
    currency, or the change or the subscription was refused."""
    staff = await factory.staff()
    code = f"race-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 1000}], trial_days=14)
    for _ in range(4):
        tenant = await factory.tenant(staff)
        url = f"/v1/tenants/{tenant['id']}"
        changed, subscribed = await asyncio.gather(
            client.patch(url, json={"currency": "USD"}, headers=staff.headers),
            client.post(f"{url}/subscriptions", json={"plan_code": code, "seats": 1}, headers=staff.headers),
        )
        outcome = (changed.status_code, subscribed.status_code)
        # The change first (the plan's currency then mismatches), or the subscription first (the change refused).
        assert outcome in ((200, 422), (409, 201)), (changed.text, subscribed.text)
        currency = (await client.get(url, headers=staff.headers)).json()["currency"]
        assert currency == ("EUR" if subscribed.status_code == 201 else "USD")
