"""Bad input is refused with problem+json and a stable code, and nothing is written.

Each case runs against a small world (a tenant with a billing email, its admin and an API key); what staff
can see through the API before and after must be identical.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from httpx import AsyncClient

from tests.api._helpers import all_items, assert_problem, create_api_key
from tests.factories import Actor, Factory

VALID_TENANT = {"name": "New", "slug": "new-tenant", "currency": "EUR"}
ONE_MIB = 1024 * 1024


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _tenant_body_of(size: int) -> bytes:
    """A tenant body of exactly `size` bytes: at the size limit, only the (too long) name is wrong."""
    empty = json.dumps({**VALID_TENANT, "name": ""}).encode()
    body = json.dumps({**VALID_TENANT, "name": "n" * (size - len(empty))}).encode()
    assert len(body) == size
    return body


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # formatted with tenant, admin (user id) and key (API key id)
    status: int
    code: str | None
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


JSON = {"content-type": "application/json"}

CASES: dict[str, Case] = {
    # -- bodies that are not JSON, or not an object ----------------------------------------------
    "malformed json": Case("POST", "/v1/tenants", 400, "bad_request", content=b'{"name": "x",', headers=JSON),
    "truncated json": Case("PATCH", "/v1/tenants/{tenant}", 400, "bad_request", content=b'{"name": ', headers=JSON),
    "json array": Case("POST", "/v1/tenants", 400, "validation_error", json=[VALID_TENANT]),
    "json null": Case("POST", "/v1/tenants", 400, "validation_error", content=b"null", headers=JSON),
    "empty body": Case("POST", "/v1/tenants", 400, "validation_error", content=b"", headers=JSON),
    "form body": Case(
        "POST",
        "/v1/tenants",
        400,
        None,
        content=b"name=New&slug=new&currency=EUR",
        headers={"content-type": "application/x-www-form-urlencoded"},
    ),
    # -- wrong types ------------------------------------------------------------------------------
    "name is a number": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": 42}),
    "currency is a list": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": ["EUR"]}
    ),
    "reseller id not a uuid": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "reseller_id": "not-a-uuid"}
    ),
    "patch name is a bool": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"name": True}),
    "patch currency null": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"currency": None}),
    "role is a number": Case(
        "PATCH", "/v1/tenants/{tenant}/members/{admin}", 400, "validation_error", json={"role": 1}
    ),
    # -- unknown fields: refused, never stored ----------------------------------------------------
    "create with status": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "status": "suspended"}
    ),
    "create with id": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "id": str(uuid.uuid4())}
    ),
    "patch status": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"status": "active"}),
    "patch slug": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"name": "X", "slug": "moved"}),
    "member with staff flag": Case(
        "POST",
        "/v1/tenants/{tenant}/members",
        400,
        "validation_error",
        json={"email": "n@example.com", "role": "tenant_member", "is_platform_staff": True},
    ),
    "api key with chosen secret": Case(
        "POST", "/v1/tenants/{tenant}/api-keys", 400, "validation_error", json={"name": "k", "secret": "cpk_chosen"}
    ),
    # -- missing fields ---------------------------------------------------------------------------
    "create without currency": Case(
        "POST", "/v1/tenants", 400, "currency_required", json={"name": "New", "slug": "new-tenant"}
    ),
    "create empty object": Case("POST", "/v1/tenants", 400, "validation_error", json={}),
    "member without role": Case(
        "POST", "/v1/tenants/{tenant}/members", 400, "validation_error", json={"email": "n@example.com"}
    ),
    "api key without name": Case("POST", "/v1/tenants/{tenant}/api-keys", 400, "validation_error", json={}),
    "role change without role": Case("PATCH", "/v1/tenants/{tenant}/members/{admin}", 400, "validation_error", json={}),
    # -- values out of pattern or range ----------------------------------------------------------
    "currency lower case": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": "eur"}
    ),
    "currency too long": Case(
        "POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": "EURO"}
    ),
    "currency digits": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "currency": "E1R"}),
    "patch currency": Case("PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"currency": "usd"}),
    "slug upper case": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "New"}),
    "slug leading dash": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "-new"}),
    "slug trailing dash": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "new-"}),
    "slug underscore": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "new_t"}),
    "slug too long": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": "a" * 64}),
    "slug empty": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "slug": ""}),
    "name empty": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": ""}),
    "name too long": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": "n" * 201}),
    "name with NUL": Case("POST", "/v1/tenants", 400, "validation_error", json={**VALID_TENANT, "name": "a\x00b"}),
    "billing email invalid": Case(
        "PATCH", "/v1/tenants/{tenant}", 400, "validation_error", json={"billing_email": "not-an-email"}
    ),
    "member email invalid": Case(
        "POST",
        "/v1/tenants/{tenant}/members",
        400,
        "validation_error",
        json={"email": "nobody", "role": "tenant_member"},
    ),
    "member role platform staff": Case(
        "POST",
        "/v1/tenants/{tenant}/members",
        400,
        "validation_error",
        json={"email": "n@example.com", "role": "platform_staff"},
    ),
    "promote to platform staff": Case(
        "PATCH", "/v1/tenants/{tenant}/members/{admin}", 400, "validation_error", json={"role": "platform_staff"}
    ),
    "api key role owner": Case(
        "POST", "/v1/tenants/{tenant}/api-keys", 400, "validation_error", json={"name": "k", "role": "owner"}
    ),
    # -- too large ------------------------------------------------------------------------------------
    "body over 1 MiB": Case(
        "POST", "/v1/tenants", 413, "request_too_large", json={**VALID_TENANT, "name": "n" * (ONE_MIB + 1)}
    ),
    "body over 1 MiB with a key": Case(
        "POST",
        "/v1/tenants",
        413,
        "request_too_large",
        json={**VALID_TENANT, "name": "n" * (ONE_MIB + 1)},
        headers={"Idempotency-Key": "big"},
    ),
    "patch over 1 MiB": Case(
        "PATCH", "/v1/tenants/{tenant}", 413, "request_too_large", json={"name": "n" * (ONE_MIB + 1)}
    ),
    "body of exactly 1 MiB": Case(
        "POST", "/v1/tenants", 400, "validation_error", content=_tenant_body_of(ONE_MIB), headers=JSON
    ),
    "body of exactly 1 MiB with a key": Case(
        "POST",
        "/v1/tenants",
        400,
        "validation_error",
        content=_tenant_body_of(ONE_MIB),
        headers={**JSON, "Idempotency-Key": "exactly"},
    ),
    "body of 1 MiB and a byte with a key": Case(
        "POST",
        "/v1/tenants",
        413,
        "request_too_large",
        content=_tenant_body_of(ONE_MIB + 1),
        headers={**JSON, "Idempotency-Key": "one-more"},
    ),
    # -- ids in paths that are not UUIDs ---------------------------------------------------------
    "tenant id not a uuid": Case("GET", "/v1/tenants/not-a-uuid", 404, "not_found"),
    "patch tenant id number": Case("PATCH", "/v1/tenants/12345", 404, "not_found", json={"name": "x"}),
    "delete tenant id sql": Case("DELETE", "/v1/tenants/1 or 1=1", 404, "not_found"),
    "suspend tenant id not a uuid": Case("POST", "/v1/tenants/xyz/suspend", 404, "not_found"),
    "member id not a uuid": Case("DELETE", "/v1/tenants/{tenant}/members/not-a-uuid", 404, "not_found"),
    "api key id not a uuid": Case("DELETE", "/v1/tenants/{tenant}/api-keys/{tenant}x", 404, "not_found"),
    # -- pagination -----------------------------------------------------------------------------------
    "cursor garbage": Case("GET", "/v1/tenants", 422, "invalid_cursor", params={"cursor": "garbage!"}),
    "cursor without separator": Case(
        "GET",
        "/v1/tenants/{tenant}/members",
        422,
        "invalid_cursor",
        params={"cursor": _cursor("2024-01-01T00:00:00+00:00")},
    ),
    "cursor with a bad uuid": Case(
        "GET",
        "/v1/tenants/{tenant}/api-keys",
        422,
        "invalid_cursor",
        params={"cursor": _cursor("2024-01-01T00:00:00+00:00|not-a-uuid")},
    ),
    "cursor naive timestamp": Case(
        "GET",
        "/v1/tenants/{tenant}/audit-events",
        422,
        "invalid_cursor",
        params={"cursor": _cursor(f"2024-01-01T00:00:00|{uuid.uuid4()}")},
    ),
    "cursor bad timestamp": Case(
        "GET", "/v1/tenants", 422, "invalid_cursor", params={"cursor": _cursor(f"yesterday|{uuid.uuid4()}")}
    ),
    "cursor not utf-8": Case(
        "GET",
        "/v1/tenants",
        422,
        "invalid_cursor",
        params={"cursor": base64.urlsafe_b64encode(b"\xff\xfe|\xff").decode()},
    ),
    "cursor too long": Case("GET", "/v1/tenants", 400, "validation_error", params={"cursor": "a" * 201}),
    "limit over 100": Case("GET", "/v1/tenants/{tenant}/members", 400, "validation_error", params={"limit": 101}),
    "limit zero": Case("GET", "/v1/tenants", 400, "validation_error", params={"limit": 0}),
    "limit not a number": Case(
        "GET", "/v1/tenants/{tenant}/audit-events", 400, "validation_error", params={"limit": "ten"}
    ),
    # -- methods and routes that do not exist ------------------------------------------------------
    "unknown route": Case("GET", "/v1/nothing-here", 404, "not_found"),
    "method not allowed": Case("PUT", "/v1/tenants/{tenant}", 405, "method_not_allowed", json=VALID_TENANT),
}


@dataclass
class World:
    staff: Actor
    admin: Actor
    tenant: dict[str, Any]
    key_id: str

    def format(self, path: str) -> str:
        return path.format(tenant=self.tenant["id"], admin=self.admin.user_id, key=self.key_id)


async def _snapshot(client: AsyncClient, world: World) -> dict[str, Any]:
    tenant_url = f"/v1/tenants/{world.tenant['id']}"
    return {
        "tenants": await all_items(client, "/v1/tenants", world.staff.headers),
        "members": await all_items(client, f"{tenant_url}/members", world.staff.headers),
        "api_keys": await all_items(client, f"{tenant_url}/api-keys", world.staff.headers),
        "audit": await all_items(client, f"{tenant_url}/audit-events", world.staff.headers),
    }


@pytest.fixture
async def world(client: AsyncClient, factory: Factory) -> World:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="ap@world.example")
    admin = await factory.member(tenant["id"], "tenant_admin")
    key, _ = await create_api_key(client, admin.headers, tenant["id"])
    return World(staff, admin, tenant, key["id"])


@pytest.mark.parametrize("case", list(CASES))
async def test_bad_input_is_refused_and_nothing_is_written(client: AsyncClient, world: World, case: str) -> None:
    spec = CASES[case]
    # Requests under a tenant are made by its admin (the guard passes, so the input itself is refused);
    # the others, such as creating tenants, by staff.
    actor = world.admin if "{tenant}" in spec.path else world.staff
    before = await _snapshot(client, world)

    response = await client.request(
        spec.method,
        world.format(spec.path),
        json=spec.json,
        content=spec.content,
        params=spec.params,
        headers={**actor.headers, **(spec.headers or {})},
    )
    body = assert_problem(response, spec.status, spec.code)
    if spec.code is None:
        assert body["code"] in {"bad_request", "validation_error", "unsupported_media_type"}, body
    for secret in ("SELECT", "asyncpg", "psycopg", "Traceback", "controlplane/", ".py"):
        assert secret not in response.text, response.text

    assert await _snapshot(client, world) == before
