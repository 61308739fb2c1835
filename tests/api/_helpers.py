"""Small helpers shared by the API tests: reading every page of a list, API keys, audit trails.

Everything goes through the HTTP API (as platform staff when a test needs to see behind a tenant's back),
so the checks see what a client would see.
"""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient, Response

from tests.conftest import problem_of
from tests.factories import Actor


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_problem(response: Response, status: int, code: str | None = None) -> dict[str, Any]:
    """`response` is problem+json with this status (and code), and carries no stack trace."""
    assert response.status_code == status, response.text
    body = problem_of(response)
    if code is not None:
        assert body["code"] == code, body
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return body


async def all_items(client: AsyncClient, url: str, headers: dict[str, str], limit: int = 100) -> list[dict[str, Any]]:
    """Every item of a paginated list, following `next_cursor`."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(1000):
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["items"])
        if page["next_cursor"] is None:
            return items
        params = {"limit": limit, "cursor": page["next_cursor"]}
    raise AssertionError(f"{url} never ended")


async def add_member(
    client: AsyncClient, tenant_id: str, email: str, role: str, headers: dict[str, str]
) -> dict[str, Any]:
    """Add `email` to the tenant through the API (it must succeed); the new membership."""
    response = await client.post(
        f"/v1/tenants/{tenant_id}/members", json={"email": email, "role": role}, headers=headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def tenant_ids(client: AsyncClient, actor_headers: dict[str, str]) -> set[str]:
    return {tenant["id"] for tenant in await all_items(client, "/v1/tenants", actor_headers)}


async def audit_events(client: AsyncClient, staff: Actor, tenant_id: str) -> list[dict[str, Any]]:
    return await all_items(client, f"/v1/tenants/{tenant_id}/audit-events", staff.headers)


async def audit_actions(client: AsyncClient, staff: Actor, tenant_id: str) -> list[str]:
    return [event["action"] for event in await audit_events(client, staff, tenant_id)]


async def members(client: AsyncClient, staff: Actor, tenant_id: str) -> dict[str, str]:
    """user id -> role."""
    items = await all_items(client, f"/v1/tenants/{tenant_id}/members", staff.headers)
    return {item["user_id"]: item["role"] for item in items}


async def create_api_key(
    client: AsyncClient, headers: dict[str, str], tenant_id: str, role: str = "tenant_admin", name: str = "ci"
) -> tuple[dict[str, Any], str]:
    """The created key's row and its secret text."""
    response = await client.post(
        f"/v1/tenants/{tenant_id}/api-keys", json={"name": name, "role": role}, headers=headers
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body, body["secret"]
