"""Installs per tenant: install (with a license), update, roll back, uninstall; yanking; the outbox."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from tests.api._helpers import assert_problem
from tests.api._webhooks import webhook_outbox_events
from tests.api.plugins._support import install, plugin, publisher, tenant_with_admin
from tests.factories import Factory


async def test_the_lifecycle_moves_versions_and_records_every_step(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"], versions=("1.0.0", "1.1.0", "2.0.0-beta.1"))
    slug = made["slug"]
    tenant, admin = await tenant_with_admin(factory, staff)
    url = f"/v1/tenants/{tenant['id']}/plugins"

    installed = await install(client, admin.headers, tenant["id"], slug)
    assert installed["version"] == "1.1.0"  # the latest stable, not the pre-release
    assert installed["license"]["status"] == "active" and installed["license"]["version_range"] == "^1.1.0"
    assert installed["license"]["token"].count(".") == 2
    again = await install(client, admin.headers, tenant["id"], slug, expected=200)
    assert again["id"] == installed["id"] and again["license"]["id"] == installed["license"]["id"]
    assert_problem(
        await client.post(url, json={"slug": slug, "version": "1.0.0"}, headers=admin.headers),
        409,
        "plugin_already_installed",
    )

    no_previous = await client.post(f"{url}/{slug}/rollback", headers=admin.headers)
    assert_problem(no_previous, 409, "nothing_to_roll_back")
    updated = await client.patch(f"{url}/{slug}", json={"version": "2.0.0-beta.1"}, headers=admin.headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["version"] == "2.0.0-beta.1" and updated.json()["previous_version"] == "1.1.0"
    assert updated.json()["license"]["version_range"] == "^2.0.0-beta.1"
    rolled = await client.post(f"{url}/{slug}/rollback", headers=admin.headers)
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["version"] == "1.1.0" and rolled.json()["previous_version"] == "2.0.0-beta.1"

    listed = await client.get(url, headers=admin.headers)
    assert [item["plugin"] for item in listed.json()["items"]] == [slug]

    deleted = await client.delete(f"{url}/{slug}", headers=admin.headers)
    assert deleted.status_code == 204
    assert (await client.delete(f"{url}/{slug}", headers=admin.headers)).status_code == 204
    assert (await client.get(url, headers=admin.headers)).json()["items"] == []
    license_after = await client.get(f"/v1/licenses/{installed['license']['id']}", headers=admin.headers)
    assert license_after.json()["status"] == "revoked" and license_after.json()["revoke_reason"] == "uninstalled"
    revoked = await client.get("/v1/licensing/revocations")
    assert installed["license"]["id"] in {item["id"] for item in revoked.json()["items"]}

    events = await webhook_outbox_events(uuid.UUID(tenant["id"]))
    assert [event.event_type for event in events] == [
        "plugin.installed",
        "license.issued",
        "plugin.updated",
        "plugin.rolled_back",
        "plugin.uninstalled",
        "license.revoked",
    ]
    assert all(event.payload["tenant_id"] == tenant["id"] for event in events)


async def test_a_yanked_version_is_not_installed_anew_and_its_installs_are_told(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"], versions=("1.0.0", "1.0.1"))
    slug = made["slug"]
    early, early_admin = await tenant_with_admin(factory, staff)
    late, late_admin = await tenant_with_admin(factory, staff)
    await install(client, early_admin.headers, early["id"], slug, version="1.0.1")

    yank = await client.post(
        f"/v1/plugins/{slug}/versions/1.0.1/yank", json={"reason": "data loss"}, headers=staff.headers
    )
    assert yank.status_code == 200 and yank.json()["yank_reason"] == "data loss"
    refused = await client.post(
        f"/v1/tenants/{late['id']}/plugins", json={"slug": slug, "version": "1.0.1"}, headers=late_admin.headers
    )
    assert_problem(refused, 409, "version_yanked")
    fallback = await install(client, late_admin.headers, late["id"], slug)
    assert fallback["version"] == "1.0.0" and fallback["version_yanked"] is False

    existing = (await client.get(f"/v1/tenants/{early['id']}/plugins", headers=early_admin.headers)).json()["items"][0]
    assert existing["version"] == "1.0.1" and existing["version_yanked"] is True
    told = [e for e in await webhook_outbox_events(uuid.UUID(early["id"])) if e.event_type == "plugin.version_yanked"]
    assert len(told) == 1 and told[0].payload["reason"] == "data loss"
    assert not [
        e for e in await webhook_outbox_events(uuid.UUID(late["id"])) if e.event_type == "plugin.version_yanked"
    ]
    # Yanking again changes nothing and tells nobody twice.
    assert (
        await client.post(f"/v1/plugins/{slug}/versions/1.0.1/yank", json={"reason": "x"}, headers=staff.headers)
    ).json()["yank_reason"] == "data loss"
    assert (
        len([e for e in await webhook_outbox_events(uuid.UUID(early["id"])) if e.event_type == "plugin.version_yanked"])
        == 1
    )

    all_yanked = await plugin(client, staff.headers, pub["id"], versions=("1.0.0",))
    await client.post(
        f"/v1/plugins/{all_yanked['slug']}/versions/1.0.0/yank", json={"reason": "x"}, headers=staff.headers
    )
    nothing = await client.post(
        f"/v1/tenants/{late['id']}/plugins", json={"slug": all_yanked["slug"]}, headers=late_admin.headers
    )
    assert_problem(nothing, 409, "no_installable_version")


async def test_installs_need_the_right_role_and_a_subscription_for_paid_plugins(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    paid = await plugin(
        client, staff.headers, pub["id"], pricing={"model": "flat", "amount_minor": 900, "currency": "EUR"}
    )
    tenant, admin = await tenant_with_admin(factory, staff)
    member = await factory.member(tenant["id"], role="tenant_member")
    url = f"/v1/tenants/{tenant['id']}/plugins"

    assert_problem(await client.post(url, json={"slug": paid["slug"]}, headers=member.headers), 403)
    assert_problem(
        await client.post(url, json={"slug": paid["slug"]}, headers=admin.headers), 409, "subscription_required"
    )
    assert_problem(
        await client.post(url, json={"slug": "no-such-plugin"}, headers=admin.headers), 404, "plugin_not_found"
    )
    assert_problem(
        await client.post(url, json={"slug": paid["slug"], "version": "9.9.9"}, headers=admin.headers),
        404,
        "version_not_found",
    )
    assert_problem(
        await client.post(url, json={"slug": paid["slug"], "seats": 3}, headers=admin.headers), 422, "invalid_seats"
    )
    assert_problem(
        await client.patch(f"{url}/{paid['slug']}", json={"version": "1.0.0"}, headers=admin.headers),
        404,
        "install_not_found",
    )
    assert (await client.get(url, headers=admin.headers)).json()["items"] == []
    assert await webhook_outbox_events(uuid.UUID(tenant["id"])) == []
