"""The entitlement check's fast path: a repeated check is answered before routing, exactly as the route answers
it; anything out of the ordinary is left to the full stack, which answers it as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from httpx import AsyncClient, Response
from litestar import Litestar
from litestar.types import Receive, Scope, Send
from prometheus_client import REGISTRY

from controlplane.core.auth.api_keys import PREFIX
from controlplane.core.ratelimit.policy import Limit, LimitClass
from plugins_registry.api.entitlements import EntitlementFastPath
from tests.api._helpers import assert_problem
from tests.api._rate_limits import limiter_of, redis_unreachable, refusals, unavailable
from tests.api.plugins._support import install, machine_key, plugin, publisher, tenant_with_admin
from tests.factories import Factory

PATH = "/v1/entitlements/check"
NO_REFILL = Limit(0.01, 10)  # ten, and no unit back during a test


class FullStack:
    """Counts the requests that reach the full stack behind the fast path."""

    def __init__(self, fast_path: EntitlementFastPath) -> None:
        self.app = fast_path.app
        self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.requests += 1
        await self.app(scope, receive, send)


@pytest.fixture
def full_stack(app: Litestar, monkeypatch: pytest.MonkeyPatch) -> Iterator[FullStack]:
    fast_path = app.asgi_handler.app  # type: ignore[attr-defined]  # inside the request metrics
    assert isinstance(fast_path, EntitlementFastPath)
    counter = FullStack(fast_path)
    monkeypatch.setattr(fast_path, "app", counter)
    yield counter


async def _installed(client: AsyncClient, factory: Factory) -> tuple[dict[str, str], str]:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    slug = (await plugin(client, staff.headers, pub["id"]))["slug"]
    tenant, admin = await tenant_with_admin(factory, staff, endpoint=False)
    await install(client, admin.headers, tenant["id"], slug)
    return await machine_key(client, admin.headers, tenant["id"]), slug


def _requests(route: str) -> float:
    labels = {"method": "GET", "route": route, "status": "200"}
    return REGISTRY.get_sample_value("controlplane_http_requests_total", labels) or 0.0


def _left(response: Response) -> int:
    return int(response.headers["RateLimit"].split(";r=")[1].split(";")[0])


async def test_a_repeated_check_skips_the_full_stack_and_is_answered_exactly_as_the_route_answers(
    client: AsyncClient, factory: Factory, full_stack: FullStack, limits: Any
) -> None:
    key, slug = await _installed(client, factory)
    limits(LimitClass.ENTITLEMENTS, client=NO_REFILL)
    counted = _requests(PATH)
    params = {"plugin": slug, "feature": "export"}
    before = full_stack.requests

    first = await client.get(PATH, params=params, headers={**key, "X-Request-ID": "first"})
    assert full_stack.requests == before + 1  # a cache miss: the route answered, and filled the cache
    second = await client.get(PATH, params=params, headers={**key, "X-Request-ID": "second"})
    assert full_stack.requests == before + 1  # answered by the fast path

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json() and first.json()["allowed"] is True
    assert second.content == first.content  # the same encoding, byte for byte
    assert second.headers["content-type"] == first.headers["content-type"] == "application/json"
    assert sorted(second.headers) == sorted(first.headers)
    assert second.headers["RateLimit-Policy"] == first.headers["RateLimit-Policy"]
    assert _left(second) == _left(first) - 1  # it spent the budget like any check
    assert (first.headers["X-Request-ID"], second.headers["X-Request-ID"]) == ("first", "second")
    assert _requests(PATH) == counted + 2  # both counted under the route's template


async def test_anything_out_of_the_ordinary_is_left_to_the_full_stack(
    client: AsyncClient, factory: Factory, full_stack: FullStack
) -> None:
    key, slug = await _installed(client, factory)
    assert (await client.get(PATH, params={"plugin": slug}, headers=key)).status_code == 200  # cached now
    staff = await factory.staff()
    unusual: list[tuple[str, dict[str, str], int, str | None]] = [
        (f"plugin={slug}&feature=Export!", key, 400, "validation_error"),  # a parameter the route must validate
        (f"plugin={slug}&feature=export&extra=1", key, 200, None),  # a parameter the route ignores
        (f"plugin={slug}&feature=export&feature=charts", key, 200, None),  # repeated: the route takes the last
        ("plugin=" + slug.replace("-", "%2D"), key, 200, None),  # percent-encoded: decoded by the route alone
        ("plugin=unknown-plugin", key, 200, None),  # not in the cache
        (f"plugin={slug}", staff.headers, 403, "api_key_required"),  # a person's token
        (f"plugin={slug}", {"Authorization": f"Bearer {PREFIX}_nonsense"}, 401, "api_key_revoked"),  # never verified
        (f"plugin={slug}", {}, 401, "missing_credentials"),
        (f"plugin={slug}", {**key, "Origin": "https://console.example"}, 200, None),  # CORS is the stack's
    ]
    for query, headers, status, code in unusual:
        before = full_stack.requests
        response = await client.get(f"{PATH}?{query}", headers=headers)
        if code is None:
            assert response.status_code == status, (query, response.text)
        else:
            assert_problem(response, status, code)
        assert full_stack.requests == before + 1, query


async def test_a_refused_or_unlimited_check_is_answered_by_the_full_stack_and_counted_once(
    app: Litestar, client: AsyncClient, factory: Factory, full_stack: FullStack, limits: Any
) -> None:
    key, slug = await _installed(client, factory)
    limits(LimitClass.ENTITLEMENTS, client=NO_REFILL)
    before_refusals, before_requests = refusals(PATH, "entitlements", "api_key"), full_stack.requests
    answers = [await client.get(PATH, params={"plugin": slug}, headers=key) for _ in range(12)]
    assert [r.status_code for r in answers] == [200] * 10 + [429] * 2
    assert [_left(r) for r in answers[:10]] == list(range(9, -1, -1))  # no unit spent twice
    refused = assert_problem(answers[-1], 429, "rate_limited")
    assert int(answers[-1].headers["Retry-After"]) == refused["retry_after_seconds"] >= 1
    # The cache miss, then each refusal: passed on by the fast path, refused and counted once by the full stack.
    assert full_stack.requests == before_requests + 1 + 2
    assert refusals(PATH, "entitlements", "api_key") == before_refusals + 2

    served_before = unavailable("served")
    with redis_unreachable(limiter_of(app)):
        unlimited = await client.get(PATH, params={"plugin": slug}, headers=key)
    assert unlimited.status_code == 200 and "RateLimit" not in unlimited.headers
    assert unavailable("served") == served_before + 1
    assert full_stack.requests == before_requests + 4


async def test_a_revoked_key_is_refused_at_once_by_the_next_check(
    client: AsyncClient, factory: Factory, full_stack: FullStack
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    slug = (await plugin(client, staff.headers, pub["id"]))["slug"]
    tenant, admin = await tenant_with_admin(factory, staff, endpoint=False)
    await install(client, admin.headers, tenant["id"], slug)
    key = await machine_key(client, admin.headers, tenant["id"])
    for _ in range(2):
        assert (await client.get(PATH, params={"plugin": slug}, headers=key)).status_code == 200
    keys = (await client.get(f"/v1/tenants/{tenant['id']}/api-keys", headers=admin.headers)).json()["items"]
    for listed in keys:
        revoked = await client.delete(f"/v1/tenants/{tenant['id']}/api-keys/{listed['id']}", headers=admin.headers)
        assert revoked.status_code == 204, revoked.text
    assert_problem(await client.get(PATH, params={"plugin": slug}, headers=key), 401, "api_key_revoked")
