"""Publishers qualify as partners too: an unqualified one cannot publish a plugin version."""

from __future__ import annotations

from httpx import AsyncClient

from tests.api._helpers import assert_problem
from tests.api.plugins._support import sha
from tests.factories import Factory

PUBLISHER_CHAIN = ("profile_approved", "identity_verified", "signing_key_registered", "security_review_passed")


async def test_an_unqualified_publisher_cannot_publish_a_version(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    author = await factory.user()
    signup = {"kind": "publisher", "name": "Plugin House", "email": "dev@plugin.house"}
    partner = await client.post("/v1/partners", json=signup, headers=author.headers)
    assert partner.status_code == 201, partner.text
    pid = partner.json()["id"]
    assert partner.json()["qualification"]["required_actions"][0] == "submit_profile_approved"
    referral = await client.post("/v1/partners", json={**signup, "subtype": "referral"}, headers=author.headers)
    assert_problem(referral, 422)

    publisher = await client.post(
        "/v1/publishers",
        json={"name": "Plugin House", "email": "dev@plugin.house", "partner_id": pid},
        headers=staff.headers,
    )
    assert publisher.status_code == 201, publisher.text
    plugin = {
        "slug": "house-charts",
        "name": "Charts",
        "publisher_id": publisher.json()["id"],
        "pricing": {"model": "free"},
    }
    assert (await client.post("/v1/plugins", json=plugin, headers=staff.headers)).status_code == 201
    version = {"version": "1.0.0", "min_platform_version": "1.0.0", "artifact_sha256": sha("1.0.0")}

    refused = await client.post("/v1/plugins/house-charts/versions", json=version, headers=staff.headers)
    problem = assert_problem(refused, 403, "partner_not_qualified")
    assert problem["required_actions"] == [f"submit_{code}" for code in PUBLISHER_CHAIN]
    assert (await client.get("/v1/plugins/house-charts/versions", headers=staff.headers)).json()["items"] == []

    for code in PUBLISHER_CHAIN:
        submitted = await client.post(
            f"/v1/partners/{pid}/checkpoints/{code}/submit", json={"evidence": "ok"}, headers=author.headers
        )
        assert submitted.status_code == 200, submitted.text
        assert (
            await client.post(f"/v1/partners/{pid}/checkpoints/{code}/approve", headers=staff.headers)
        ).status_code == 200
    published = await client.post("/v1/plugins/house-charts/versions", json=version, headers=staff.headers)
    assert published.status_code == 201, published.text
