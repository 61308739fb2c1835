"""Activations: seats held by fingerprints, released by deactivation or by silence, rate-limited per license."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from controlplane.core.settings import Settings
from plugins_registry import service
from tests.api._helpers import assert_problem
from tests.api._webhooks import webhook_outbox_events
from tests.api.plugins._support import Headers, install, machine_key, plugin, publisher, tenant_with_admin
from tests.conftest import connect_as_inspector, problem_of
from tests.factories import Factory


async def licensed(client: AsyncClient, factory: Factory, seats: int) -> tuple[dict[str, Any], Headers, Headers]:
    """A tenant's install of a plugin with this seat limit, its admin's headers and a machine key."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    made = await plugin(client, staff.headers, pub["id"], seats=seats)
    tenant, admin = await tenant_with_admin(factory, staff)
    installed = await install(client, admin.headers, tenant["id"], made["slug"])
    assert installed["license"]["seats"] == seats
    return installed, admin.headers, await machine_key(client, admin.headers, tenant["id"])


async def activate(
    client: AsyncClient, key: Headers, license_id: str, fingerprint: str, expected: int = 201
) -> dict[str, Any]:
    response = await client.post(
        f"/v1/licenses/{license_id}/activations", json={"fingerprint": fingerprint, "label": "build box"}, headers=key
    )
    assert response.status_code == expected, response.text
    return response.json()


async def live(client: AsyncClient, key: Headers, license_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/licenses/{license_id}/activations", headers=key)
    assert response.status_code == 200, response.text
    return response.json()["items"]


async def stored_activations(stack_env: dict[str, str], license_id: str) -> int:
    inspector = await connect_as_inspector(stack_env)
    try:
        return int(
            await inspector.fetchval(
                "select count(*) from license_activations where license_id = $1", uuid.UUID(license_id)
            )
        )
    finally:
        await inspector.close()


async def test_seats_are_held_by_fingerprints_and_freed_by_deactivation(client: AsyncClient, factory: Factory) -> None:
    installed, _, key = await licensed(client, factory, seats=2)
    license_id = installed["license"]["id"]
    url = f"/v1/licenses/{license_id}/activations"

    first = await activate(client, key, license_id, "host-1")
    second = await activate(client, key, license_id, "host-2")
    assert first["license_id"] == license_id and first["fingerprint"] == "host-1" and first["label"] == "build box"
    assert first["id"] != second["id"]
    again = await activate(client, key, license_id, "host-1", expected=200)
    assert again["id"] == first["id"]
    assert_problem(await client.post(url, json={"fingerprint": "host-3"}, headers=key), 409, "seats_exhausted")
    assert [item["id"] for item in await live(client, key, license_id)] == [first["id"], second["id"]]

    assert (await client.delete(f"{url}/{first['id']}", headers=key)).status_code == 204
    assert (await client.delete(f"{url}/{first['id']}", headers=key)).status_code == 204
    assert_problem(await client.delete(f"{url}/{uuid.uuid4()}", headers=key), 404, "activation_not_found")
    third = await activate(client, key, license_id, "host-3")
    assert [item["fingerprint"] for item in await live(client, key, license_id)] == ["host-2", "host-3"]
    assert_problem(await client.post(f"{url}/{first['id']}/heartbeat", headers=key), 404, "activation_not_found")
    # A released fingerprint comes back as a new activation once a seat is free.
    assert (await client.delete(f"{url}/{third['id']}", headers=key)).status_code == 204
    back = await activate(client, key, license_id, "host-1")
    assert back["id"] != first["id"]


async def test_silent_activations_give_their_seat_back(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    installed, _, key = await licensed(client, factory, seats=1)
    license_id = installed["license"]["id"]
    url = f"/v1/licenses/{license_id}/activations"
    silent = await activate(client, key, license_id, "host-1")
    assert_problem(await client.post(url, json={"fingerprint": "host-2"}, headers=key), 409, "seats_exhausted")

    # Less than the silence later, nothing is released.
    assert await service.release_stale(timedelta(hours=1), now=datetime.now(UTC) + timedelta(minutes=30)) == 0
    assert [item["id"] for item in await live(client, key, license_id)] == [silent["id"]]

    released = await service.release_stale(timedelta(hours=1), now=datetime.now(UTC) + timedelta(hours=2))
    assert released == 1
    assert await live(client, key, license_id) == []
    assert_problem(await client.post(f"{url}/{silent['id']}/heartbeat", headers=key), 404, "activation_not_found")
    assert await service.release_stale(timedelta(hours=1), now=datetime.now(UTC) + timedelta(hours=2)) == 0
    replacement = await activate(client, key, license_id, "host-2")
    assert [item["id"] for item in await live(client, key, license_id)] == [replacement["id"]]
    assert await stored_activations(stack_env, license_id) == 2  # released, not deleted

    events = [e for e in await webhook_outbox_events(uuid.UUID(installed["tenant_id"])) if e.payload.get("reason")]
    assert [(e.event_type, e.payload["reason"]) for e in events][-1:] == [
        ("license.activation_released", "heartbeat_timeout")
    ]


async def test_a_heartbeat_keeps_an_activation_alive(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    installed, _, key = await licensed(client, factory, seats=2)
    license_id = installed["license"]["id"]
    url = f"/v1/licenses/{license_id}/activations"
    quiet = await activate(client, key, license_id, "host-quiet")
    beating = await activate(client, key, license_id, "host-beating")
    inspector = await connect_as_inspector(stack_env)
    try:  # both were last heard from two hours ago
        await inspector.execute(
            "update license_activations set last_heartbeat_at = now() - interval '2 hours' where license_id = $1",
            uuid.UUID(license_id),
        )
    finally:
        await inspector.close()

    heartbeat = await client.post(f"{url}/{beating['id']}/heartbeat", headers=key)
    assert heartbeat.status_code == 200, heartbeat.text
    assert heartbeat.json()["id"] == beating["id"]
    beat_at = datetime.fromisoformat(heartbeat.json()["last_heartbeat_at"])
    assert abs((datetime.now(UTC) - beat_at).total_seconds()) < 60

    # Thirty minutes on: the quiet one has been silent for 2.5 hours, the beating one for half an hour.
    assert await service.release_stale(timedelta(hours=1), now=datetime.now(UTC) + timedelta(minutes=30)) == 1
    assert [item["id"] for item in await live(client, key, license_id)] == [beating["id"]]
    assert (await client.post(f"{url}/{beating['id']}/heartbeat", headers=key)).status_code == 200
    assert_problem(await client.post(f"{url}/{quiet['id']}/heartbeat", headers=key), 404, "activation_not_found")


async def test_activations_of_one_license_are_rate_limited(
    client: AsyncClient, factory: Factory, settings: Settings, stack_env: dict[str, str]
) -> None:
    per_hour = settings.license_activations_per_hour
    assert per_hour >= 2
    installed, admin, key = await licensed(client, factory, seats=1)
    license_id = installed["license"]["id"]
    url = f"/v1/licenses/{license_id}/activations"

    last: dict[str, Any] = {}
    for n in range(per_hour):
        last = await activate(client, key, license_id, f"host-{n}")
        if n < per_hour - 1:
            assert (await client.delete(f"{url}/{last['id']}", headers=key)).status_code == 204
    assert (await client.delete(f"{url}/{last['id']}", headers=key)).status_code == 204

    limited = await client.post(url, json={"fingerprint": "one-too-many"}, headers=key)
    body = assert_problem(limited, 429, "activation_rate_limited")
    assert limited.headers["Retry-After"] == "3600"
    assert body["retry_after_seconds"] == 3600
    assert await live(client, key, license_id) == []
    assert await stored_activations(stack_env, license_id) == per_hour

    # The limit is per license: another plugin of the same tenant still activates.
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    other = await plugin(client, staff.headers, pub["id"], seats=1)
    other_install = await install(client, admin, installed["tenant_id"], other["slug"])
    await activate(client, key, other_install["license"]["id"], "one-too-many")


async def test_a_live_fingerprint_is_answered_even_when_the_limit_is_reached(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    per_hour = settings.license_activations_per_hour
    installed, _, key = await licensed(client, factory, seats=1)
    license_id = installed["license"]["id"]
    url = f"/v1/licenses/{license_id}/activations"
    last: dict[str, Any] = {}
    for n in range(per_hour):
        last = await activate(client, key, license_id, f"host-{n}")
        if n < per_hour - 1:
            assert (await client.delete(f"{url}/{last['id']}", headers=key)).status_code == 204
    again = await activate(client, key, license_id, last["fingerprint"], expected=200)
    assert again["id"] == last["id"]


async def test_a_revoked_license_cannot_be_activated(client: AsyncClient, factory: Factory) -> None:
    installed, admin, key = await licensed(client, factory, seats=2)
    license_id = installed["license"]["id"]
    held = await activate(client, key, license_id, "host-1")
    deleted = await client.delete(f"/v1/tenants/{installed['tenant_id']}/plugins/{installed['plugin']}", headers=admin)
    assert deleted.status_code == 204

    refused = await client.post(f"/v1/licenses/{license_id}/activations", json={"fingerprint": "host-2"}, headers=key)
    assert_problem(refused, 409, "license_not_active")
    # Uninstalling released the seat it held.
    assert await live(client, key, license_id) == []
    assert_problem(
        await client.post(f"/v1/licenses/{license_id}/activations/{held['id']}/heartbeat", headers=key),
        404,
        "activation_not_found",
    )


async def test_bad_activation_input_is_refused_and_writes_nothing(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    installed, _, key = await licensed(client, factory, seats=5)
    license_id = installed["license"]["id"]
    url = f"/v1/licenses/{license_id}/activations"
    bodies: list[Any] = [
        {"fingerprint": ""},
        {},
        {"fingerprint": None},
        {"fingerprint": 42},
        {"fingerprint": "x" * 256},
        {"fingerprint": "host-1", "unknown": True},
        {"fingerprint": "host-1", "tenant_id": installed["tenant_id"]},
        {"fingerprint": "host\x00one"},
        {"fingerprint": "host\none"},
        {"fingerprint": "\x1b[31mred"},
        {"fingerprint": "host\x7f"},
        {"fingerprint": "host-1", "label": "a\tb"},
        {"fingerprint": "host-1", "label": "x" * 201},
        ["host-1"],
    ]
    for body in bodies:
        response = await client.post(url, json=body, headers=key)
        assert 400 <= response.status_code < 500, (body, response.status_code, response.text)
        problem_of(response)
    raw = await client.post(url, content=b"{not json", headers={**key, "Content-Type": "application/json"})
    assert 400 <= raw.status_code < 500, raw.text
    problem_of(raw)

    assert await live(client, key, license_id) == []
    assert await stored_activations(stack_env, license_id) == 0
    # The same license takes a good activation afterwards.
    await activate(client, key, license_id, "host-1")
