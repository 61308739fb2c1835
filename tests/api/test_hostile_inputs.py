"""Strange input answers a 4xx problem (or a correct answer), never a 500: OPTIONS on every route, URLs with
unusual Unicode, and dates whose conversion to UTC would leave the calendar."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from litestar import Litestar

from tests.api._helpers import assert_problem, bearer
from tests.api.billing._support import event, post_usage
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.api.billing.test_usage import _metered_world
from tests.api.plugins._support import tenant_with_admin
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, shared

# Dates that parse, but whose UTC value is before year 1 or after year 9999.
OUT_OF_UTC_RANGE = ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00")


async def test_options_on_every_route_never_answers_a_server_error(
    client: AsyncClient, app: Litestar, factory: Factory
) -> None:
    staff = await factory.staff()
    paths = {
        route.path.replace("{", "").replace("}", "")  # path parameters become literal text
        for route in app.routes
    }
    some_id = str(uuid.uuid4())
    failures = []
    for template in sorted(paths):
        path = "/".join(some_id if ":" in part else part for part in template.split("/"))
        for headers in ({}, staff.headers):
            response = await client.options(path, headers=headers)
            if response.status_code >= 500:
                failures.append((path, response.status_code, response.text[:200]))
    for path in ("/v1/metrics", "/v1/publishers", f"/v1/publishers/{some_id}"):
        response = await client.options(path, headers=staff.headers)
        assert response.status_code in (200, 204), (path, response.status_code, response.text)
        assert "OPTIONS" in response.headers.get("allow", ""), (path, response.headers)
    assert failures == []


@pytest.mark.parametrize(
    "url",
    [
        "https://ex\u0000ample.com/",
        "https://exa mple.com",
        "https://\ud800.com",
        "https://a\uff0ecom/",
        "https://xn--a.com/",
        "https://a..com/",
        "https://-a-.com/",
        "https://" + "a" * 64 + ".com/",
        "https://" + ".".join(["a" * 63] * 5) + "/",
        "https://\u0378.com/",
        "https://\u200b.com/",
        "https://[::1/",
        "https://exa\tmple.com/",
        "https://example.com:99999/",
        "https://example.com:-1/",
    ],
)
async def test_a_webhook_endpoint_with_unusual_unicode_is_refused_with_a_problem(
    client: AsyncClient, factory: Factory, url: str
) -> None:
    staff = await factory.staff()
    tenant, admin = await tenant_with_admin(factory, staff, endpoint=False)
    target = f"/v1/tenants/{tenant['id']}/webhook-endpoint"
    body = json.dumps({"url": url})  # ASCII only: \u escapes, a lone surrogate too
    response = await client.put(
        target, content=body.encode("utf-8"), headers={**admin.headers, "content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, (url, response.status_code, response.text)
    assert_problem(response, response.status_code)
    assert_problem(await client.get(target, headers=admin.headers), 404, "webhook_endpoint_not_set")


@pytest.mark.parametrize("after", OUT_OF_UTC_RANGE)
async def test_a_revocation_list_date_outside_the_utc_calendar_is_refused(client: AsyncClient, after: str) -> None:
    response = await client.get("/v1/licensing/revocations", params={"after": after})
    assert_problem(response, 400, "date_out_of_range")


@pytest.mark.parametrize("due_at", OUT_OF_UTC_RANGE)
async def test_an_escrow_milestone_due_outside_the_utc_calendar_is_refused(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str], due_at: str
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    body = {
        "tenant_id": tenant["id"],
        "payee": {"type": "vendor", "id": str(uuid.uuid4())},
        "currency": "EUR",
        "amount_minor": 1_000,
        "milestones": [{"title": "Design", "amount_minor": 1_000, "due_at": due_at}],
    }
    assert_problem(await client.post("/v1/escrows", json=body, headers=admin.headers), 400, "validation_error")
    inspector = await connect_as_inspector(stack_env)
    try:
        assert (
            await inspector.fetchval("select count(*) from escrows where tenant_id = $1", uuid.UUID(tenant["id"])) == 0
        )
    finally:
        await inspector.close()


async def test_a_usage_event_outside_the_utc_calendar_is_rejected_alone(client: AsyncClient, factory: Factory) -> None:
    _staff, _tenant, key, _start = await _metered_world(client, factory)
    events = [
        {"idempotency_key": f"far-{i}", "metric_code": "api_calls", "timestamp": at}
        for i, at in enumerate(OUT_OF_UTC_RANGE)
    ]
    response = await post_usage(client, bearer(key), [*events, event("ok", "api_calls")])
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert [item["code"] for item in response.json()["rejected"]] == ["period_closed", "timestamp_in_future"]
