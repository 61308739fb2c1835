"""A tenant's personal data (sealed with its data key, shown opened) and its webhook secret (its own namespace)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from controlplane.core.tenant_vault import TenantVault
from tenants import webhook_secrets
from tests.api._helpers import assert_problem
from tests.conftest import connect_as_inspector
from tests.factories import Factory

PROFILE = {
    "contact_name": "Ada Lovelace",
    "contact_email": "ada@example.com",
    "tax_id": "GB 123 4567 89",
    "address": {"line1": "12 St James's Square", "city": "London", "postal_code": "SW1Y 4LB", "country": "GB"},
}


async def _stored(stack_env: dict[str, str], tenant_id: str) -> dict[str, Any]:
    inspector = await connect_as_inspector(stack_env)
    try:
        row = await inspector.fetchrow(
            "select contact_name, contact_email, tax_id, address, key_version from tenant_billing_profiles "
            "where tenant_id = $1",
            uuid.UUID(tenant_id),
        )
    finally:
        await inspector.close()
    return dict(row) if row else {}


async def test_the_profile_is_stored_as_ciphertext_and_shown_decrypted(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    viewer = await factory.member(tenant["id"], "billing_viewer")
    url = f"/v1/tenants/{tenant['id']}/billing-profile"

    empty = await client.get(url, headers=admin.headers)
    assert (empty.status_code, empty.json()["tax_id"], empty.json()["updated_at"]) == (200, None, None)
    for _ in range(2):  # a retried PUT leaves the same profile
        saved = await client.put(url, json=PROFILE, headers=admin.headers)
        assert saved.status_code == 200, saved.text
    shown = (await client.get(url, headers=viewer.headers)).json()
    assert {key: shown[key] for key in ("contact_name", "contact_email", "tax_id")} == {
        key: PROFILE[key] for key in ("contact_name", "contact_email", "tax_id")
    }
    assert shown["address"] == {**PROFILE["address"], "line2": None, "region": None}

    stored = await _stored(stack_env, tenant["id"])
    assert stored["key_version"] is None  # no transit ciphertext: sealed with the tenant's data key
    for field in ("contact_name", "contact_email", "tax_id", "address"):
        assert stored[field].startswith("dk:v1:")
        # Whole plaintext values (a two-letter one like the country could occur in base64 by chance).
        for plaintext in ("Lovelace", "ada@example.com", "GB 123 4567 89", "St James's Square", "SW1Y 4LB"):
            assert plaintext not in stored[field]

    # The audit trail names the fields, never their values.
    audit = (await client.get(f"/v1/tenants/{tenant['id']}/audit-events", headers=admin.headers)).json()["items"]
    (event,) = [item for item in audit if item["action"] == "tenant.billing_profile_updated"][:1]
    assert event["after"] == {"fields": ["address", "contact_email", "contact_name", "tax_id"]}
    assert "Lovelace" not in str(audit)

    # A viewer cannot change it; bad input is refused whole.
    assert_problem(await client.put(url, json=PROFILE, headers=viewer.headers), 403, "forbidden_for_role")
    bad = {**PROFILE, "address": {"line1": "x", "city": "y", "country": "gb"}}
    assert_problem(await client.put(url, json=bad, headers=admin.headers), 400, "validation_error")
    assert_problem(await client.put(url, json={**PROFILE, "ssn": "1"}, headers=admin.headers), 400, "validation_error")
    assert (await client.get(url, headers=admin.headers)).json()["address"]["country"] == "GB"

    # PUT replaces: an empty profile clears it, and no row is left.
    cleared = await client.put(url, json={}, headers=admin.headers)
    assert cleared.json() == {
        "contact_name": None,
        "contact_email": None,
        "tax_id": None,
        "address": None,
        "updated_at": None,
    }
    assert await _stored(stack_env, tenant["id"]) == {}


async def test_a_ciphertext_copied_into_another_tenant_does_not_decrypt(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    victim, thief = await factory.tenant(staff), await factory.tenant(staff)
    victim_admin, thief_admin = await factory.member(victim["id"]), await factory.member(thief["id"])
    await client.put(f"/v1/tenants/{victim['id']}/billing-profile", json=PROFILE, headers=victim_admin.headers)
    await client.put(f"/v1/tenants/{thief['id']}/billing-profile", json={"tax_id": "XX 1"}, headers=thief_admin.headers)
    assert_problem(
        await client.get(f"/v1/tenants/{victim['id']}/billing-profile", headers=thief_admin.headers),
        404,
        "tenant_not_found",
    )
    # Someone with the database copies the victim's ciphertext into the thief's row: another tenant's data key,
    # and the tenant's id is bound to every value, so it does not open there (a fault, logged: not a retry).
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update tenant_billing_profiles set tax_id = (select tax_id from tenant_billing_profiles "
            "where tenant_id = $1) where tenant_id = $2",
            uuid.UUID(victim["id"]),
            uuid.UUID(thief["id"]),
        )
    finally:
        await inspector.close()
    stolen = await client.get(f"/v1/tenants/{thief['id']}/billing-profile", headers=thief_admin.headers)
    assert_problem(stolen, 500, "internal_error")
    assert "GB 123" not in stolen.text


async def test_webhook_secret_rotation_signs_with_both_for_a_window(
    client: AsyncClient, factory: Factory, tenant_vault: TenantVault
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    member = await factory.member(tenant["id"], "tenant_member")
    url = f"/v1/tenants/{tenant['id']}/webhook-secret"
    assert_problem(await client.get(url, headers=admin.headers), 404, "secret_not_found")

    first = await client.post(f"{url}/rotations", headers=admin.headers)
    assert first.status_code == 201, first.text
    assert first.json()["previous_valid_until"] is None
    headers = {**admin.headers, "Idempotency-Key": str(uuid.uuid4())}
    second = await client.post(f"{url}/rotations", headers=headers)
    replay = await client.post(f"{url}/rotations", headers=headers)
    assert second.status_code == replay.status_code == 201
    assert "secret" not in replay.json()  # shown once
    assert replay.json()["rotated_at"] == second.json()["rotated_at"]  # the replay rotated nothing
    status = (await client.get(url, headers=admin.headers)).json()
    assert (status["signatures"], status["rotated_at"]) == (2, second.json()["rotated_at"])
    assert_problem(await client.post(f"{url}/rotations", headers=member.headers), 403, "forbidden_for_role")

    # A delivery now carries both signatures: a receiver with either secret verifies it.
    _state, in_force = webhook_secrets.current(tenant_vault, uuid.UUID(tenant["id"]))
    assert in_force == (second.json()["secret"], first.json()["secret"])
    payload, now = b'{"type":"plugin.installed"}', int(time.time())
    header = webhook_secrets.signature_header(in_force, payload, now)
    for receiver_secret in (first.json()["secret"], second.json()["secret"]):
        assert webhook_secrets.verify(header, payload, receiver_secret, now=now)
    assert not webhook_secrets.verify(header, payload + b" ", first.json()["secret"], now=now)
    assert not webhook_secrets.verify(header, payload, first.json()["secret"], now=now + 301)


async def test_erasing_a_tenant_destroys_its_secrets_and_profile(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], tenant_vault: TenantVault
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await client.put(f"/v1/tenants/{tenant['id']}/billing-profile", json=PROFILE, headers=admin.headers)
    await client.post(f"/v1/tenants/{tenant['id']}/webhook-secret/rotations", headers=admin.headers)
    await client.put(
        f"/v1/tenants/{tenant['id']}/webhook-endpoint",
        json={"url": "https://hooks.example.com/in"},
        headers=admin.headers,
    )
    tenant_id = uuid.UUID(tenant["id"])
    assert tenant_vault.exists(tenant_id)

    for _ in range(2):  # a retried erasure finishes whatever is left
        erased = await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)
        assert erased.status_code == 202, erased.text
    assert not tenant_vault.exists(tenant_id)
    assert await _stored(stack_env, tenant["id"]) == {}
    inspector = await connect_as_inspector(stack_env)
    try:
        endpoints = await inspector.fetchval(
            "select count(*) from tenant_webhook_endpoints where tenant_id = $1", tenant_id
        )
    finally:
        await inspector.close()
    assert endpoints == 0
    refused = await client.post(f"/v1/tenants/{tenant['id']}/webhook-secret/rotations", headers=staff.headers)
    assert refused.status_code in (403, 409)
    assert not tenant_vault.exists(tenant_id)


async def test_the_billing_email_is_stored_sealed_and_shown_open(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="ap@sealed.example")
    assert tenant["billing_email"] == "ap@sealed.example"
    inspector = await connect_as_inspector(stack_env)
    try:
        stored = await inspector.fetchrow(
            "select billing_email, billing_email_key_version from tenants where id = $1", uuid.UUID(tenant["id"])
        )
        # The database refuses plaintext from now on.
        with pytest.raises(asyncpg.CheckViolationError):
            await inspector.execute(
                "update tenants set billing_email = 'plain@text.example' where id = $1", uuid.UUID(tenant["id"])
            )
    finally:
        await inspector.close()
    assert stored["billing_email"].startswith("dk:v1:") and stored["billing_email_key_version"] is None
    assert "sealed.example" not in stored["billing_email"]
    listed = (await client.get("/v1/tenants", headers=staff.headers)).json()["items"]
    assert [item["billing_email"] for item in listed if item["id"] == tenant["id"]] == ["ap@sealed.example"]
