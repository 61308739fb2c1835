"""The catalogue: publishers, plugins and semantically ordered, immutable, yankable versions."""

from __future__ import annotations

from httpx import AsyncClient

from tests.api._helpers import assert_problem
from tests.api.plugins._support import plugin, publisher, sha
from tests.factories import Factory


async def test_versions_are_listed_newest_first_by_semver_and_are_immutable(
    client: AsyncClient, factory: Factory
) -> None:
    staff = (await factory.staff()).headers
    pub = await publisher(client, staff)
    made = await plugin(client, staff, pub["id"], versions=("1.0.0", "1.10.0", "1.2.0", "2.0.0-rc.1", "2.0.0-alpha"))

    listed = await client.get(f"/v1/plugins/{made['slug']}/versions", headers=staff)
    assert [v["version"] for v in listed.json()["items"]] == ["2.0.0-rc.1", "2.0.0-alpha", "1.10.0", "1.2.0", "1.0.0"]

    same = {"version": "1.2.0", "min_platform_version": "1.0.0", "changelog": "v1.2.0", "artifact_sha256": sha("1.2.0")}
    again = await client.post(f"/v1/plugins/{made['slug']}/versions", json=same, headers=staff)
    assert again.status_code == 200, again.text
    changed = await client.post(
        f"/v1/plugins/{made['slug']}/versions", json={**same, "artifact_sha256": sha("other")}, headers=staff
    )
    assert_problem(changed, 409, "version_exists")
    bad = await client.post(f"/v1/plugins/{made['slug']}/versions", json={**same, "version": "01.2.0"}, headers=staff)
    assert_problem(bad, 422, "invalid_version")


async def test_the_public_catalogue_lists_only_plugins_with_an_installable_version(
    client: AsyncClient, factory: Factory
) -> None:
    staff = (await factory.staff()).headers
    pub = await publisher(client, staff)
    listed = await plugin(client, staff, pub["id"])
    unlisted = await plugin(client, staff, pub["id"], versions=())
    yanked = await plugin(client, staff, pub["id"], versions=("1.0.0",))
    response = await client.post(
        f"/v1/plugins/{yanked['slug']}/versions/1.0.0/yank", json={"reason": "broken"}, headers=staff
    )
    assert response.status_code == 200 and response.json()["yanked"] is True

    tenant = await factory.tenant(await factory.staff())
    member = await factory.member(tenant["id"], role="tenant_member")
    catalogue = await client.get("/v1/plugins", headers=member.headers)
    slugs = {item["slug"] for item in catalogue.json()["items"]}
    assert listed["slug"] in slugs
    assert unlisted["slug"] not in slugs and yanked["slug"] not in slugs
    one = await client.get(f"/v1/plugins/{listed['slug']}", headers=member.headers)
    assert one.status_code == 200 and one.json()["entitlements"]["features"] == ["export", "charts"]


async def test_only_staff_publish_and_a_slug_keeps_its_definition(client: AsyncClient, factory: Factory) -> None:
    staff = (await factory.staff()).headers
    pub = await publisher(client, staff)
    tenant = await factory.tenant(await factory.staff())
    admin = await factory.member(tenant["id"])
    body = {"slug": "charts", "name": "Charts", "publisher_id": pub["id"], "pricing": {"model": "free"}}

    assert_problem(await client.post("/v1/plugins", json=body, headers=admin.headers), 403, "staff_only")
    assert (await client.post("/v1/plugins", json=body, headers=staff)).status_code == 201
    assert (await client.post("/v1/plugins", json=body, headers=staff)).status_code == 200
    taken = await client.post("/v1/plugins", json={**body, "name": "Other"}, headers=staff)
    assert_problem(taken, 409, "plugin_slug_taken")


async def test_bad_pricing_is_refused_with_a_stable_code(client: AsyncClient, factory: Factory) -> None:
    staff = (await factory.staff()).headers
    pub = await publisher(client, staff)
    base = {"slug": "paid", "name": "Paid", "publisher_id": pub["id"]}
    cases = [
        {"model": "flat", "amount_minor": 500},  # no currency
        {"model": "flat", "amount_minor": 0, "currency": "EUR"},
        {"model": "flat", "amount_minor": "12.5", "currency": "EUR"},
        {"model": "metered", "amount_minor": "0.5", "currency": "EUR", "metric_code": "no_such_metric"},
        {"model": "free", "trial_days": 7},
        {"model": "per_seat", "amount_minor": 100, "currency": "XXX"},
    ]
    for pricing in cases:
        response = await client.post("/v1/plugins", json={**base, "pricing": pricing}, headers=staff)
        assert_problem(response, 422, "invalid_pricing")
    missing = await client.post(
        "/v1/plugins",
        json={**base, "publisher_id": "00000000-0000-0000-0000-000000000000", "pricing": {"model": "free"}},
        headers=staff,
    )
    assert_problem(missing, 404, "publisher_not_found")
    nothing = await client.get("/v1/plugins/paid", headers=staff)
    assert_problem(nothing, 404, "plugin_not_found")
    assert (
        await client.post(
            "/v1/plugins/paid/versions",
            json={"version": "1.0.0", "min_platform_version": "1.0.0", "artifact_sha256": sha("x")},
            headers=staff,
        )
    ).status_code == 404
