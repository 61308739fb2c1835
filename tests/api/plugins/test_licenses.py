"""Licenses: tokens verified offline by an independent Ed25519 check, key rotation, refresh, listing,
tenant isolation and the public revocation list."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from httpx import AsyncClient
from litestar import Litestar

from plugins_registry import license_token
from plugins_registry.errors import TokenInvalid
from plugins_registry.service import _signing
from tests.api._helpers import assert_problem, create_api_key
from tests.api._webhooks import webhook_outbox_events
from tests.api.plugins._support import install, plugin, publisher, tenant_with_admin
from tests.conftest import connect_as_inspector
from tests.factories import Factory

YEAR_SECONDS = 365 * 24 * 3600


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_text(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header_part, claims_part, _ = token.split(".")
    return json.loads(b64url(header_part)), json.loads(b64url(claims_part))


def verify_independently(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Written here, not with `license_token`: header and claims once the signature checks out (else raises
    `InvalidSignature`), with the key the header's kid selects from the JWKS."""
    parts = token.split(".")
    assert len(parts) == 3, token
    header_part, claims_part, signature_part = parts
    header = json.loads(b64url(header_part))
    matching = [key for key in jwks["keys"] if key["kid"] == header["kid"]]
    assert len(matching) == 1, (header, jwks)
    key = matching[0]
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig"), key
    raw = b64url(key["x"])
    assert len(raw) == 32
    signature = b64url(signature_part)
    assert len(signature) == 64
    Ed25519PublicKey.from_public_bytes(raw).verify(signature, f"{header_part}.{claims_part}".encode("ascii"))
    return header, json.loads(b64url(claims_part))


async def jwks_of(client: AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/licensing/keys")  # public: no Authorization header
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["keys"], body
    return body


async def refresh(client: AsyncClient, headers: dict[str, str], license_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/licenses/{license_id}/refresh", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_license_token_verifies_offline_and_a_tampered_one_does_not(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"], features=["export", "charts"], seats=3)
    tenant, admin = await tenant_with_admin(factory, staff)
    installed = await install(client, admin.headers, tenant["id"], made["slug"])
    lic = installed["license"]
    jwks = await jwks_of(client)

    header, claims = verify_independently(lic["token"], jwks)
    assert header["alg"] == "EdDSA"
    assert header["kid"] == lic["key_id"]
    assert claims["jti"] == lic["id"]
    assert claims["sub"] == tenant["id"]
    assert claims["plugin"] == made["slug"]
    assert claims["versions"] == lic["version_range"] == "^1.0.0"
    assert claims["entitlements"] == {"features": ["export", "charts"], "limits": {"reports": 100}, "seats": 3}
    assert claims["trial"] is False and lic["trial"] is False
    issued = datetime.fromisoformat(lic["issued_at"])
    assert claims["iat"] == int(issued.timestamp())
    assert abs(claims["iat"] - datetime.now(UTC).timestamp()) < 120
    # A free plugin's license has no end; its token still expires, a year after it was signed.
    assert lic["expires_at"] is None and claims["exp"] == claims["iat"] + YEAR_SECONDS
    # The module a plugin author copies agrees with the independent check.
    assert license_token.verify(lic["token"], jwks) == claims

    header_part, _, signature_part = lic["token"].split(".")
    for changed in (
        {**claims, "entitlements": {**claims["entitlements"], "seats": 1000}},
        {**claims, "sub": str(uuid.uuid4())},
        {**claims, "exp": claims["exp"] + YEAR_SECONDS},
    ):
        forged_claims = b64url_text(json.dumps(changed, separators=(",", ":"), sort_keys=True).encode())
        forged = f"{header_part}.{forged_claims}.{signature_part}"
        with pytest.raises(InvalidSignature):
            verify_independently(forged, jwks)
        with pytest.raises(TokenInvalid):
            license_token.verify(forged, jwks)
    # Another license's signature does not fit either.
    other = await install(client, admin.headers, tenant["id"], (await plugin(client, staff.headers, pub["id"]))["slug"])
    spliced = ".".join([*lic["token"].split(".")[:2], other["license"]["token"].split(".")[2]])
    with pytest.raises(InvalidSignature):
        verify_independently(spliced, jwks)


async def test_tokens_signed_before_a_rotation_still_verify_and_a_refresh_uses_the_new_key(
    client: AsyncClient, factory: Factory, app: Litestar
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    tenant, admin = await tenant_with_admin(factory, staff)
    installed = await install(client, admin.headers, tenant["id"], made["slug"])
    before = installed["license"]
    old_kid = before["key_id"]
    verify_independently(before["token"], await jwks_of(client))

    try:
        new_version = await asyncio.to_thread(app.state.licensing.signer.rotate)
        assert new_version > int(old_kid)
        _signing._jwks = None  # the JWKS is cached for 5 s
        jwks = await jwks_of(client)
        kids = {key["kid"] for key in jwks["keys"]}
        assert {old_kid, str(new_version)} <= kids

        header, claims = verify_independently(before["token"], jwks)
        assert header["kid"] == old_kid and claims["jti"] == before["id"]

        refreshed = await refresh(client, admin.headers, before["id"])
        assert refreshed["id"] == before["id"]
        assert refreshed["key_id"] == str(new_version)
        assert refreshed["token"] != before["token"]
        new_header, new_claims = verify_independently(refreshed["token"], jwks)
        assert new_header["kid"] == str(new_version)
        assert new_claims["jti"] == before["id"] and new_claims["sub"] == tenant["id"]
        assert new_claims["iat"] >= claims["iat"]
        # What is stored is what the refresh answered.
        shown = await client.get(f"/v1/licenses/{before['id']}", headers=admin.headers)
        assert shown.status_code == 200, shown.text
        assert shown.json()["token"] == refreshed["token"] and shown.json()["key_id"] == str(new_version)
    finally:
        _signing._jwks = None  # no later test sees a JWKS from before the rotation


async def test_a_refresh_carries_a_seat_change_and_a_revoked_license_is_not_refreshed(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"], seats=5)
    slug = made["slug"]
    tenant, admin = await tenant_with_admin(factory, staff)
    installed = await install(client, admin.headers, tenant["id"], slug)
    license_id = installed["license"]["id"]
    assert installed["seats"] == 5
    jwks = await jwks_of(client)
    assert verify_independently(installed["license"]["token"], jwks)[1]["entitlements"]["seats"] == 5

    url = f"/v1/tenants/{tenant['id']}/plugins/{slug}"
    too_many = await client.patch(url, json={"seats": 6}, headers=admin.headers)
    assert_problem(too_many, 422, "invalid_seats")
    changed = await client.patch(url, json={"seats": 2}, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["seats"] == 2 and changed.json()["license"]["seats"] == 2

    refreshed = await refresh(client, admin.headers, license_id)
    assert refreshed["seats"] == 2 and refreshed["status"] == "active"
    _, claims = verify_independently(refreshed["token"], jwks)
    assert claims["entitlements"]["seats"] == 2
    assert claims["jti"] == license_id

    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert_problem(
        await client.post(f"/v1/licenses/{license_id}/refresh", headers=admin.headers), 409, "license_not_active"
    )
    after = await client.get(f"/v1/licenses/{license_id}", headers=admin.headers)
    assert after.json()["status"] == "revoked" and after.json()["token"] == refreshed["token"]


async def test_licenses_are_listed_with_their_tokens_and_read_by_id(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    first = await plugin(client, staff.headers, pub["id"])
    second = await plugin(client, staff.headers, pub["id"], seats=4)
    tenant, admin = await tenant_with_admin(factory, staff)
    reader = await factory.member(tenant["id"], role="tenant_member")
    installs = [await install(client, admin.headers, tenant["id"], made["slug"]) for made in (first, second)]
    jwks = await jwks_of(client)

    listed = await client.get(f"/v1/tenants/{tenant['id']}/licenses", headers=reader.headers)
    assert listed.status_code == 200, listed.text
    items = {item["id"]: item for item in listed.json()["items"]}
    assert set(items) == {made["license"]["id"] for made in installs}
    for made in installs:
        item = items[made["license"]["id"]]
        assert item["tenant_id"] == tenant["id"] and item["install_id"] == made["id"]
        assert item["plugin"] == made["plugin"] and item["status"] == "active"
        _, claims = verify_independently(item["token"], jwks)
        assert claims["jti"] == item["id"] and claims["plugin"] == made["plugin"]
        assert claims["entitlements"]["seats"] == item["seats"]

        one = await client.get(f"/v1/licenses/{item['id']}", headers=reader.headers)
        assert one.status_code == 200, one.text
        assert one.json() == item
    # Reading is not managing: a member cannot re-sign.
    assert_problem(
        await client.post(f"/v1/licenses/{installs[0]['license']['id']}/refresh", headers=reader.headers), 403
    )
    assert_problem(await client.get(f"/v1/licenses/{uuid.uuid4()}", headers=admin.headers), 404, "license_not_found")


async def test_licenses_are_listed_for_one_plugin_when_asked(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    first, second = [await plugin(client, staff.headers, pub["id"]) for _ in range(2)]
    tenant, admin = await tenant_with_admin(factory, staff)
    other, other_admin = await tenant_with_admin(factory, staff)
    installs = [await install(client, admin.headers, tenant["id"], made["slug"]) for made in (first, second)]
    await install(client, other_admin.headers, other["id"], first["slug"])
    url = f"/v1/tenants/{tenant['id']}/licenses"

    listed = await client.get(url, params={"plugin": first["slug"]}, headers=admin.headers)
    assert listed.status_code == 200, listed.text
    assert [item["id"] for item in listed.json()["items"]] == [installs[0]["license"]["id"]]
    unknown = await client.get(url, params={"plugin": "no-such-plugin"}, headers=admin.headers)
    assert unknown.status_code == 200 and unknown.json()["items"] == [], unknown.text
    for bad in ("Not A Slug", "x", "a" * 64, "-leading-dash"):
        assert_problem(await client.get(url, params={"plugin": bad}, headers=admin.headers), 400)


async def test_another_tenant_cannot_reach_a_license_or_install(
    client: AsyncClient, factory: Factory, report: Any
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"], seats=3)
    slug = made["slug"]
    tenant_a, admin_a = await tenant_with_admin(factory, staff)
    tenant_b, admin_b = await tenant_with_admin(factory, staff)
    installed = await install(client, admin_a.headers, tenant_a["id"], slug)
    license_id = installed["license"]["id"]
    await install(client, admin_b.headers, tenant_b["id"], slug)  # B has its own license of the same plugin
    _, key_b = await create_api_key(client, admin_b.headers, tenant_b["id"], role="tenant_admin")
    outsiders = {"B's admin": admin_b.headers, "B's API key": {"Authorization": f"Bearer {key_b}"}}

    license_url = f"/v1/licenses/{license_id}"
    before_license = (await client.get(license_url, headers=admin_a.headers)).json()
    before_installs = (await client.get(f"/v1/tenants/{tenant_a['id']}/plugins", headers=admin_a.headers)).json()
    events_before = await webhook_outbox_events(uuid.UUID(tenant_a["id"]))

    refused = 0
    for who, headers in outsiders.items():
        attempts = [
            (await client.get(license_url, headers=headers), 404, "license_not_found"),
            (await client.post(f"{license_url}/refresh", headers=headers), 404, "license_not_found"),
            (
                await client.post(f"{license_url}/activations", json={"fingerprint": "intruder"}, headers=headers),
                404,
                "license_not_found",
            ),
            (await client.get(f"{license_url}/activations", headers=headers), 404, "license_not_found"),
            (await client.get(f"/v1/tenants/{tenant_a['id']}/plugins", headers=headers), 404, "tenant_not_found"),
            (await client.get(f"/v1/tenants/{tenant_a['id']}/licenses", headers=headers), 404, "tenant_not_found"),
            (
                await client.delete(f"/v1/tenants/{tenant_a['id']}/plugins/{slug}", headers=headers),
                404,
                "tenant_not_found",
            ),
            (
                await client.patch(f"/v1/tenants/{tenant_a['id']}/plugins/{slug}", json={"seats": 1}, headers=headers),
                404,
                "tenant_not_found",
            ),
        ]
        for response, status, code in attempts:
            assert response.status_code == status, (who, response.request.method, response.request.url, response.text)
            assert_problem(response, status, code)
            assert license_id not in response.text and installed["id"] not in response.text
            refused += 1

    after_license = (await client.get(license_url, headers=admin_a.headers)).json()
    assert after_license == before_license
    assert after_license["status"] == "active" and after_license["seats"] == 3
    after_installs = (await client.get(f"/v1/tenants/{tenant_a['id']}/plugins", headers=admin_a.headers)).json()
    assert after_installs == before_installs
    assert (await client.get(f"{license_url}/activations", headers=admin_a.headers)).json()["items"] == []
    assert await webhook_outbox_events(uuid.UUID(tenant_a["id"])) == events_before
    report(f"plugins: {refused} cross-tenant requests refused")


async def test_the_revocation_list_shows_a_license_once_it_is_uninstalled(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"])
    kept = await plugin(client, staff.headers, pub["id"])
    tenant, admin = await tenant_with_admin(factory, staff)
    installed = await install(client, admin.headers, tenant["id"], made["slug"])
    still = await install(client, admin.headers, tenant["id"], kept["slug"])
    license_id = installed["license"]["id"]

    before = await client.get("/v1/licensing/revocations")  # public: no Authorization header
    assert before.status_code == 200, before.text
    assert license_id not in {item["id"] for item in before.json()["items"]}

    deleted = await client.delete(f"/v1/tenants/{tenant['id']}/plugins/{made['slug']}", headers=admin.headers)
    assert deleted.status_code == 204
    after = await client.get("/v1/licensing/revocations")
    assert after.status_code == 200, after.text
    items = {item["id"]: item for item in after.json()["items"]}
    assert license_id in items
    assert still["license"]["id"] not in items
    revoked = (await client.get(f"/v1/licenses/{license_id}", headers=admin.headers)).json()
    assert items[license_id]["revoked_at"] is not None
    assert datetime.fromisoformat(items[license_id]["revoked_at"]) == datetime.fromisoformat(revoked["revoked_at"])
    assert items[license_id]["expires_at"] is None


async def test_revocation_pages_never_skip_licenses_revoked_at_the_same_instant(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    tenant, admin = await tenant_with_admin(factory, staff)
    revoked = set()
    for _ in range(3):
        made = await plugin(client, staff.headers, pub["id"])
        revoked.add((await install(client, admin.headers, tenant["id"], made["slug"]))["license"]["id"])
        deleted = await client.delete(f"/v1/tenants/{tenant['id']}/plugins/{made['slug']}", headers=admin.headers)
        assert deleted.status_code == 204
    inspector = await connect_as_inspector(stack_env)
    try:  # one instant for all three: a page boundary falls between equal timestamps
        await inspector.execute("update licenses set revoked_at = '2026-01-01T00:00:00Z' where status = 'revoked'")
    finally:
        await inspector.close()

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 1}
    for _ in range(10):
        page = await client.get("/v1/licensing/revocations", params=params)
        assert page.status_code == 200, page.text
        seen.extend(item["id"] for item in page.json()["items"])
        if page.json()["next_cursor"] is None:
            break
        params = {"limit": 1, "cursor": page.json()["next_cursor"]}
    assert sorted(seen) == sorted(revoked)
    assert_problem(
        await client.get("/v1/licensing/revocations", params={"cursor": "not-a-cursor"}), 422, "invalid_cursor"
    )
