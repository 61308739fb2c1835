"""Staff's override of a tenant's rate-limit percentage: `PUT /v1/tenants/{id}/rate-limit-override`.

Only staff set it; a tenant cannot, through this route or its own tenant update. Each change is audited and
published to every process's caches (`tenant-rate-limits`) when it commits; a repeat changes nothing."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service as billing_service
from tenants.service import RATE_LIMIT_TOPIC
from tests.api._helpers import assert_problem, audit_actions, audit_events, bearer, create_api_key
from tests.api._notifications import heard_once, published
from tests.conftest import connect_as_inspector
from tests.factories import Factory


def _url(tenant_id: str) -> str:
    return f"/v1/tenants/{tenant_id}/rate-limit-override"


async def _stored_override(stack_env: dict[str, str], tenant_id: str) -> Any:
    inspector = await connect_as_inspector(stack_env)
    try:
        return await inspector.fetchval("select rate_limit_percent from tenants where id = $1", uuid.UUID(tenant_id))
    finally:
        await inspector.close()


async def test_staff_set_and_remove_a_tenants_override(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    tenant_id = uuid.UUID(tenant["id"])
    assert await _stored_override(stack_env, tenant["id"]) is None

    response = await client.put(_url(tenant["id"]), json={"rate_limit_percent": 250}, headers=staff.headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"tenant_id": tenant["id"], "rate_limit_percent": 250}
    assert await _stored_override(stack_env, tenant["id"]) == 250
    assert await billing_service.tenant_rate_limit_percent(tenant_id) == 250

    removed = await client.put(_url(tenant["id"]), json={"rate_limit_percent": None}, headers=staff.headers)
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"tenant_id": tenant["id"], "rate_limit_percent": None}
    assert await _stored_override(stack_env, tenant["id"]) is None
    assert await billing_service.tenant_rate_limit_percent(tenant_id) == 100

    # The bounds are accepted as they are.
    for percent in (1, 100_000):
        edge = await client.put(_url(tenant["id"]), json={"rate_limit_percent": percent}, headers=staff.headers)
        assert edge.status_code == 200, edge.text
        assert await _stored_override(stack_env, tenant["id"]) == percent


async def test_the_override_is_staff_only(client: AsyncClient, factory: Factory, stack_env: dict[str, str]) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    _, key = await create_api_key(client, admin.headers, tenant["id"], role="tenant_admin")
    other = await factory.tenant(staff)
    other_admin = await factory.member(other["id"], "tenant_admin")
    body = {"rate_limit_percent": 100_000}

    for headers in (admin.headers, bearer(key), other_admin.headers):
        assert_problem(await client.put(_url(tenant["id"]), json=body, headers=headers), 403, "staff_only")
    assert_problem(await client.put(_url(tenant["id"]), json=body), 401)
    assert await _stored_override(stack_env, tenant["id"]) is None
    assert "tenant.rate_limit_override_set" not in await audit_actions(client, staff, tenant["id"])

    assert_problem(await client.put(_url(str(uuid.uuid4())), json=body, headers=staff.headers), 404, "tenant_not_found")


@pytest.mark.parametrize(
    "body",
    [
        {"rate_limit_percent": 0},
        {"rate_limit_percent": -1},
        {"rate_limit_percent": 100_001},
        {"rate_limit_percent": "1.5"},
        {"rate_limit_percent": "0x10"},
        {"rate_limit_percent": "100001"},
        {"rate_limit_percent": 1.5},
        {"rate_limit_percent": True},
        {"rate_limit_percent": 2**63},
        {},
        {"rate_limit_percent": 50, "tenant_id": "00000000-0000-0000-0000-000000000000"},
    ],
    ids=[
        "zero",
        "negative",
        "above-max",
        "fraction-text",
        "hex-text",
        "above-max-text",
        "fraction",
        "boolean",
        "huge",
        "missing",
        "unknown-field",
    ],
)
async def test_an_override_out_of_range_or_of_another_type_is_refused(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], body: dict[str, Any]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    assert_problem(await client.put(_url(tenant["id"]), json=body, headers=staff.headers), 400, "validation_error")
    assert await _stored_override(stack_env, tenant["id"]) is None


async def test_a_whole_number_in_text_is_read_as_that_number(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """Litestar decodes every body leniently (`msgspec.convert(strict=False)`): "400", "4e2" or 400.0 name the
    integer 400 exactly, as they do for every integer field of the API; the bounds hold all the same."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    for sent in ("400", "4e2", 400.0):
        response = await client.put(_url(tenant["id"]), json={"rate_limit_percent": sent}, headers=staff.headers)
        assert response.status_code == 200, response.text
        assert response.json()["rate_limit_percent"] == 400
        assert await _stored_override(stack_env, tenant["id"]) == 400


async def test_each_change_is_audited_and_a_repeat_records_nothing(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    for percent in (50, 50, 400, None, None):
        response = await client.put(_url(tenant["id"]), json={"rate_limit_percent": percent}, headers=staff.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"tenant_id": tenant["id"], "rate_limit_percent": percent}

    events = [e for e in await audit_events(client, staff, tenant["id"]) if e["action"].startswith("tenant.rate")]
    assert [(e["before"], e["after"]) for e in events] == [
        ({"rate_limit_percent": None}, {"rate_limit_percent": 50}),
        ({"rate_limit_percent": 50}, {"rate_limit_percent": 400}),
        ({"rate_limit_percent": 400}, {"rate_limit_percent": None}),
    ]
    assert {e["action"] for e in events} == {"tenant.rate_limit_override_set"}
    assert {(e["actor_type"], e["actor_id"]) for e in events} == {("user", str(staff.user_id))}
    assert {(e["target_type"], e["target_id"]) for e in events} == {("tenant", tenant["id"])}


async def test_each_change_is_published_to_every_process_when_it_commits(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    other = await factory.tenant(staff)
    mine = f"{RATE_LIMIT_TOPIC}:{tenant['id']}"
    marker = f"{RATE_LIMIT_TOPIC}:{other['id']}"

    async with published(stack_env) as heard:
        for percent in (50, 50):  # the repeat changes nothing: nothing to publish
            await client.put(_url(tenant["id"]), json={"rate_limit_percent": percent}, headers=staff.headers)
        # Refused attempts publish nothing either.
        await client.put(_url(tenant["id"]), json={"rate_limit_percent": 7}, headers=admin.headers)
        await client.put(_url(tenant["id"]), json={"rate_limit_percent": 0}, headers=staff.headers)
        await client.put(_url(tenant["id"]), json={"rate_limit_percent": None}, headers=staff.headers)
        # A change of another tenant, published last: once it is heard, everything before it has been.
        await client.put(_url(other["id"]), json={"rate_limit_percent": 10}, headers=staff.headers)
        await heard_once(heard, marker)

    assert [payload for payload in heard if payload in (mine, marker)] == [mine, mine, marker]


async def test_a_tenant_admin_cannot_set_its_override_by_updating_the_tenant(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """The tenant update knows no such field: it is refused whole, for a tenant's admin and for staff alike
    (staff use the override's own route), and nothing of the request is written."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    _, key = await create_api_key(client, admin.headers, tenant["id"], role="tenant_admin")
    url = f"/v1/tenants/{tenant['id']}"

    for headers in (admin.headers, bearer(key), staff.headers):
        for body in ({"rate_limit_percent": 100_000}, {"name": "Renamed", "rate_limit_percent": 100_000}):
            assert_problem(await client.patch(url, json=body, headers=headers), 400, "validation_error")
    assert await _stored_override(stack_env, tenant["id"]) is None
    assert (await client.get(url, headers=staff.headers)).json() == tenant
    assert await billing_service.tenant_rate_limit_percent(uuid.UUID(tenant["id"])) == 100
    # Nor when it creates a tenant (staff neither).
    created = await client.post(
        "/v1/tenants",
        json={"name": "New", "slug": "new-one", "currency": "EUR", "rate_limit_percent": 100_000},
        headers=staff.headers,
    )
    assert_problem(created, 400, "validation_error")
