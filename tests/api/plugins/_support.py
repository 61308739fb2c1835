"""Helpers of the plugin registry API tests: publishers, plugins, versions, installs, over HTTP.

Each helper asserts the status it expects, so a test reads as the story it tells.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from httpx import AsyncClient

from tenants import service
from tests.api._helpers import create_api_key
from tests.factories import Actor, Factory
from tests.integration.conftest import staff_principal

Headers = dict[str, str]


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def publisher(client: AsyncClient, staff: Headers) -> dict[str, Any]:
    response = await client.post(
        "/v1/publishers", json={"name": "Acme Plugins", "email": "dev@acme.test"}, headers=staff
    )
    assert response.status_code == 201, response.text
    return response.json()


async def plugin(
    client: AsyncClient,
    staff: Headers,
    publisher_id: str,
    *,
    slug: str | None = None,
    pricing: dict[str, Any] | None = None,
    features: list[str] | None = None,
    seats: int = 2,
    versions: tuple[str, ...] = ("1.0.0",),
) -> dict[str, Any]:
    body = {
        "slug": slug or f"plug-{uuid.uuid4().hex[:8]}",
        "name": "Reports",
        "publisher_id": publisher_id,
        "description": "Monthly reports",
        "pricing": pricing or {"model": "free"},
        "entitlements": {"features": features or ["export", "charts"], "limits": {"reports": 100}, "seats": seats},
    }
    response = await client.post("/v1/plugins", json=body, headers=staff)
    assert response.status_code == 201, response.text
    for version in versions:
        await publish(client, staff, body["slug"], version)
    return response.json()


async def publish(client: AsyncClient, staff: Headers, slug: str, version: str) -> dict[str, Any]:
    body = {
        "version": version,
        "min_platform_version": "1.0.0",
        "changelog": f"v{version}",
        "artifact_sha256": sha(version),
    }
    response = await client.post(f"/v1/plugins/{slug}/versions", json=body, headers=staff)
    assert response.status_code == 201, response.text
    return response.json()


async def install(
    client: AsyncClient, headers: Headers, tenant_id: str, slug: str, expected: int = 201, **fields: Any
) -> dict[str, Any]:
    response = await client.post(f"/v1/tenants/{tenant_id}/plugins", json={"slug": slug, **fields}, headers=headers)
    assert response.status_code == expected, response.text
    return response.json()


# Where a tenant's webhook events are queued in these tests; nothing is posted to it unless a test delivers.
ENDPOINT = "http://127.0.0.1:9/hooks"


async def listening(tenant_id: str | uuid.UUID) -> None:
    """The tenant has a webhook endpoint, so its events are queued (an event is queued only for the endpoint
    that is set when it happens)."""
    await service.set_webhook_endpoint(staff_principal(), uuid.UUID(str(tenant_id)), ENDPOINT, production=False)


async def tenant_with_admin(factory: Factory, staff: Actor, *, endpoint: bool = True) -> tuple[dict[str, Any], Actor]:
    """A tenant and its admin; with a webhook endpoint set (`listening`) unless `endpoint` is False."""
    tenant = await factory.tenant(staff)
    if endpoint:
        await listening(tenant["id"])
    return tenant, await factory.member(tenant["id"])


async def machine_key(client: AsyncClient, admin: Headers, tenant_id: str) -> Headers:
    """A tenant_member API key: what a running plugin uses to check entitlements and hold seats."""
    _, key = await create_api_key(client, admin, tenant_id, role="tenant_member")
    return {"Authorization": f"Bearer {key}"}


async def check(client: AsyncClient, key: Headers, slug: str, feature: str | None = "export") -> dict[str, Any]:
    params = {"plugin": slug} if feature is None else {"plugin": slug, "feature": feature}
    response = await client.get("/v1/entitlements/check", params=params, headers=key)
    assert response.status_code == 200, response.text
    return response.json()
