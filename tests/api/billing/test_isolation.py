"""Billing across tenants and roles: another tenant's resources look like they do not exist (404, never
403), and within a tenant each role reaches only what it is granted."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from httpx import AsyncClient, Response

from tests.api._helpers import assert_problem, bearer, create_api_key
from tests.api.billing._support import credit_notes, event, invoices, metric, plan, subscribe, usage_values, utcnow
from tests.factories import Factory


async def _world(client: AsyncClient, factory: Factory) -> dict[str, Any]:
    """Tenant A with a subscription, an invoice, a credit note and usage; tenant B with its own."""
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    await plan(
        client,
        staff.headers,
        "pro",
        [
            {"type": "flat", "amount_minor": 1000},
            {"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "1"},
        ],
    )
    world: dict[str, Any] = {"staff": staff}
    for name in ("a", "b"):
        tenant = await factory.tenant(staff)
        admin = await factory.member(tenant["id"], "tenant_admin")
        subscription = await subscribe(client, admin.headers, tenant["id"], "pro")
        [invoice] = await invoices(client, staff.headers, tenant["id"])
        response = await client.post(
            f"/v1/invoices/{invoice['id']}/credit-notes", json={"amount_minor": 1, "reason": "x"}, headers=staff.headers
        )
        assert response.status_code == 201, response.text
        _, member_key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
        used = await client.post(
            "/v1/usage",
            json={"events": [event(f"{name}-1", "api_calls", utcnow() - timedelta(seconds=1))]},
            headers=bearer(member_key),
        )
        assert used.json()["accepted"] == 1, used.text
        world[name] = {
            "tenant": tenant,
            "admin": admin,
            "subscription": subscription,
            "invoice": invoice,
            "member_key": member_key,
        }
    return world


def _requests(tenant_id: str, subscription_id: str, invoice_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every billing route that names a tenant, a subscription or an invoice."""
    return [
        ("GET", f"/v1/subscriptions/{subscription_id}", None),
        ("POST", f"/v1/subscriptions/{subscription_id}/change", {"seats": 2}),
        ("POST", f"/v1/subscriptions/{subscription_id}/cancel", {"at_period_end": False}),
        ("POST", f"/v1/subscriptions/{subscription_id}/resume", None),
        ("GET", f"/v1/invoices/{invoice_id}", None),
        ("GET", f"/v1/invoices/{invoice_id}/credit-notes", None),
        ("POST", f"/v1/invoices/{invoice_id}/credit-notes", {"amount_minor": 1, "reason": "x"}),
        ("POST", f"/v1/invoices/{invoice_id}/void", None),
        ("GET", f"/v1/tenants/{tenant_id}/usage", None),
        ("GET", f"/v1/tenants/{tenant_id}/invoices", None),
        ("GET", f"/v1/tenants/{tenant_id}/invoices/upcoming", None),
        ("GET", f"/v1/tenants/{tenant_id}/subscriptions", None),
        ("POST", f"/v1/tenants/{tenant_id}/subscriptions", {"plan_code": "pro"}),
        ("POST", "/v1/usage", {"tenant_id": tenant_id, "events": [event("x-1", "api_calls")]}),
    ]


async def _send(client: AsyncClient, method: str, url: str, body: dict[str, Any] | None, headers: Any) -> Response:
    if method == "GET":
        return await client.get(url, headers=headers)
    return await client.post(url, json=body, headers=headers)


async def _snapshot(client: AsyncClient, world: dict[str, Any], name: str) -> dict[str, Any]:
    staff, side = world["staff"], world[name]
    subscription = await client.get(f"/v1/subscriptions/{side['subscription']['id']}", headers=staff.headers)
    return {
        "subscription": subscription.json(),
        "invoices": await invoices(client, staff.headers, side["tenant"]["id"]),
        "credit_notes": await credit_notes(client, staff.headers, side["invoice"]["id"]),
        "usage": await usage_values(client, staff.headers, side["tenant"]["id"]),
    }


async def test_another_tenant_sees_nothing(client: AsyncClient, factory: Factory, report: Any) -> None:
    world = await _world(client, factory)
    a, b = world["a"], world["b"]
    before = await _snapshot(client, world, "a")
    _, b_admin_key = await create_api_key(client, world["staff"].headers, b["tenant"]["id"], role="tenant_admin")
    b_viewer = await factory.member(b["tenant"]["id"], "billing_viewer")
    outsiders = {
        "B admin": b["admin"].headers,
        "B admin key": bearer(b_admin_key),
        "B member key": bearer(b["member_key"]),
        "B billing viewer": b_viewer.headers,
    }
    foreign = _requests(a["tenant"]["id"], a["subscription"]["id"], a["invoice"]["id"])
    missing = _requests(str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4()))

    refused = 0
    for who, headers in outsiders.items():
        for (method, url, body), (_, missing_url, missing_body) in zip(foreign, missing, strict=True):
            response = await _send(client, method, url, body, headers)
            assert response.status_code == 404, f"{who} {method} {url}: {response.status_code} {response.text}"
            problem = assert_problem(response, 404)
            # Indistinguishable from an id that does not exist.
            absent = assert_problem(await _send(client, method, missing_url, missing_body, headers), 404)
            assert (problem["code"], problem["detail"]) == (absent["code"], absent["detail"]), (who, url)
            refused += 1

    # B's own resources are still reachable by B (the 404s above are about A, not a broken B).
    mine = await client.get(f"/v1/subscriptions/{b['subscription']['id']}", headers=b["admin"].headers)
    assert mine.status_code == 200, mine.text
    assert (await client.get(f"/v1/invoices/{b['invoice']['id']}", headers=b["admin"].headers)).status_code == 200

    assert await _snapshot(client, world, "a") == before
    report(f"billing isolation: {refused} cross-tenant requests refused")


async def test_roles_within_a_tenant(client: AsyncClient, factory: Factory, report: Any) -> None:
    world = await _world(client, factory)
    a = world["a"]
    staff = world["staff"]
    tenant_id, subscription_id, invoice_id = a["tenant"]["id"], a["subscription"]["id"], a["invoice"]["id"]
    before = await _snapshot(client, world, "a")
    reads = [
        f"/v1/tenants/{tenant_id}/invoices",
        f"/v1/invoices/{invoice_id}",
        f"/v1/invoices/{invoice_id}/credit-notes",
        f"/v1/subscriptions/{subscription_id}",
        f"/v1/tenants/{tenant_id}/subscriptions",
        f"/v1/tenants/{tenant_id}/usage",
        f"/v1/tenants/{tenant_id}/invoices/upcoming",
    ]
    changes: list[tuple[str, dict[str, Any] | None]] = [
        (f"/v1/subscriptions/{subscription_id}/change", {"seats": 2}),
        (f"/v1/subscriptions/{subscription_id}/cancel", {"at_period_end": True}),
        (f"/v1/subscriptions/{subscription_id}/cancel", {"at_period_end": False}),
        (f"/v1/subscriptions/{subscription_id}/resume", None),
        (f"/v1/tenants/{tenant_id}/subscriptions", {"plan_code": "pro"}),
        (f"/v1/invoices/{invoice_id}/void", None),
        (f"/v1/invoices/{invoice_id}/credit-notes", {"amount_minor": 1, "reason": "x"}),
    ]
    _, viewer_key = await create_api_key(client, staff.headers, tenant_id, role="billing_viewer")
    viewers = {
        "billing viewer": (await factory.member(tenant_id, "billing_viewer")).headers,
        "billing viewer key": bearer(viewer_key),
    }
    members = {
        "member": (await factory.member(tenant_id, "tenant_member")).headers,
        "member key": bearer(a["member_key"]),
    }
    checked = 0
    for who, headers in viewers.items():
        for url in reads:
            response = await client.get(url, headers=headers)
            assert response.status_code == 200, f"{who} GET {url}: {response.text}"
            checked += 1
        for url, body in changes:
            response = await client.post(url, json=body, headers=headers)
            assert response.status_code == 403, f"{who} POST {url}: {response.status_code} {response.text}"
            assert_problem(response, 403)
            checked += 1
    for who, headers in members.items():
        for url in reads:
            response = await client.get(url, headers=headers)
            assert response.status_code == 403, f"{who} GET {url}: {response.status_code} {response.text}"
            assert_problem(response, 403)
            checked += 1
        for url, body in changes:
            response = await client.post(url, json=body, headers=headers)
            assert response.status_code == 403, f"{who} POST {url}: {response.status_code} {response.text}"
            checked += 1

    # The viewer sees the same invoice the admin does.
    as_viewer = await client.get(f"/v1/invoices/{invoice_id}", headers=viewers["billing viewer"])
    as_admin = await client.get(f"/v1/invoices/{invoice_id}", headers=a["admin"].headers)
    assert as_viewer.json() == as_admin.json()
    assert await _snapshot(client, world, "a") == before
    report(f"billing roles: {checked} role checks within a tenant")


async def test_usage_keys_are_per_tenant(client: AsyncClient, factory: Factory) -> None:
    """The same idempotency key in two tenants is two events; a replay in one is not seen by the other."""
    world = await _world(client, factory)
    staff = world["staff"]
    at = utcnow() - timedelta(seconds=1)
    shared = [event("shared-key", "api_calls", at), event("a-1", "api_calls", at)]  # a-1 was A's key already
    replies = []
    for name in ("a", "b"):
        response = await client.post("/v1/usage", json={"events": shared}, headers=bearer(world[name]["member_key"]))
        assert response.status_code == 200, response.text
        replies.append(response.json())
    assert replies == [
        {"accepted": 1, "duplicates": 1, "rejected": []},
        {"accepted": 2, "duplicates": 0, "rejected": []},
    ]
    for name, count in (("a", "2"), ("b", "3")):
        values = await usage_values(client, staff.headers, world[name]["tenant"]["id"])
        assert values["api_calls"]["value"] == count
