"""A plan's rate-limit percentage, and which percentage a tenant gets (`billing.service.tenant_rate_limit_percent`):
staff's override on the tenant, else its live subscription's plan, else 100."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service as billing_service
from tenants.service import RATE_LIMIT_TOPIC
from tests.api._helpers import all_items, assert_problem
from tests.api._notifications import heard_once, published
from tests.api.billing._support import plan, plan_body, subscribe
from tests.conftest import connect_as_inspector
from tests.factories import Factory

FLAT = [{"type": "flat", "amount_minor": 1000}]
DEARER = [{"type": "flat", "amount_minor": 2000}]


async def _override(client: AsyncClient, staff: Any, tenant_id: str, percent: int | None) -> None:
    response = await client.put(
        f"/v1/tenants/{tenant_id}/rate-limit-override", json={"rate_limit_percent": percent}, headers=staff.headers
    )
    assert response.status_code == 200, response.text


async def _percent(tenant_id: str) -> int:
    return await billing_service.tenant_rate_limit_percent(uuid.UUID(tenant_id))


# -- the plan field -----------------------------------------------------------------------------------


async def test_a_plan_has_the_default_percentage_unless_staff_give_one(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    member = await factory.member(tenant["id"], "tenant_member")
    basic = await plan(client, staff.headers, "basic", FLAT)
    pro = await plan(client, staff.headers, "pro", FLAT, rate_limit_percent=400)
    assert (basic["rate_limit_percent"], pro["rate_limit_percent"]) == (100, 400)

    for headers in (staff.headers, member.headers):
        one = await client.get("/v1/plans/pro", headers=headers)
        assert one.status_code == 200, one.text
        assert one.json() == pro
        listed = await all_items(client, "/v1/plans", headers)
        assert [(item["code"], item["rate_limit_percent"]) for item in listed] == [("basic", 100), ("pro", 400)]


@pytest.mark.parametrize("percent", [0, -1, 100_001, "100001", "1.5", 1.5, True, None, 2**63])
async def test_a_plan_percentage_out_of_range_or_of_another_type_is_refused(
    client: AsyncClient, factory: Factory, percent: Any
) -> None:
    staff = await factory.staff()
    response = await client.post(
        "/v1/plans", json=plan_body("pro", FLAT, rate_limit_percent=percent), headers=staff.headers
    )
    assert_problem(response, 400, "validation_error")
    assert_problem(await client.get("/v1/plans/pro", headers=staff.headers), 404, "plan_not_found")


async def test_the_bounds_of_a_plan_percentage_are_accepted(client: AsyncClient, factory: Factory) -> None:
    """A whole number in text is read as that number (Litestar decodes bodies leniently, for every field)."""
    staff = await factory.staff()
    assert (await plan(client, staff.headers, "text", FLAT, rate_limit_percent="400"))["rate_limit_percent"] == 400
    assert (await plan(client, staff.headers, "tiny", FLAT, rate_limit_percent=1))["rate_limit_percent"] == 1
    huge = await plan(client, staff.headers, "huge", FLAT, rate_limit_percent=100_000)
    assert huge["rate_limit_percent"] == 100_000


async def test_a_changed_percentage_is_the_plans_next_version(client: AsyncClient, factory: Factory) -> None:
    """Plans are immutable versions: the percentage is part of the definition like every other field."""
    staff = await factory.staff()
    v1 = await plan(client, staff.headers, "team", FLAT)
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "team")

    # The same definition again (the default left out or named) is the same version.
    for body in (plan_body("team", FLAT), plan_body("team", FLAT, rate_limit_percent=100)):
        repeat = await client.post("/v1/plans", json=body, headers=staff.headers)
        assert repeat.status_code == 200, repeat.text
        assert repeat.json() == v1

    v2 = await plan(client, staff.headers, "team", FLAT, rate_limit_percent=300)
    assert (v2["version"], v2["rate_limit_percent"], v2["charges"]) == (2, 300, v1["charges"])
    old = await client.get("/v1/plans/team", params={"version": 1}, headers=staff.headers)
    assert old.json()["rate_limit_percent"] == 100
    # The subscription keeps version 1, and so its percentage; a new one gets version 2's.
    assert await _percent(tenant["id"]) == 100
    other = await factory.tenant(staff)
    await subscribe(client, staff.headers, other["id"], "team")
    assert await _percent(other["id"]) == 300

    # Leaving it out of the next definition is a definition at 100: another version.
    v3 = await client.post("/v1/plans", json=plan_body("team", FLAT), headers=staff.headers)
    assert v3.status_code == 201, v3.text
    assert (v3.json()["version"], v3.json()["rate_limit_percent"]) == (3, 100)


# -- which percentage a tenant gets -------------------------------------------------------------------


async def test_a_tenant_without_a_subscription_or_override_gets_the_defaults(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    assert await _percent(tenant["id"]) == 100


async def test_the_plan_gives_the_percentage_and_an_override_beats_it(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", FLAT, rate_limit_percent=400)
    tenant = await factory.tenant(staff)
    neighbour = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "pro")
    assert await _percent(tenant["id"]) == 400

    await _override(client, staff, tenant["id"], 50)
    assert await _percent(tenant["id"]) == 50
    await _override(client, staff, tenant["id"], 100_000)
    assert await _percent(tenant["id"]) == 100_000
    # Another tenant is not concerned.
    assert await _percent(neighbour["id"]) == 100

    await _override(client, staff, tenant["id"], None)
    assert await _percent(tenant["id"]) == 400


async def test_an_override_applies_without_any_subscription(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    await _override(client, staff, tenant["id"], 250)
    assert await _percent(tenant["id"]) == 250


@pytest.mark.parametrize("status", ["trialing", "past_due", "paused"])
async def test_a_live_subscription_in_any_status_gives_its_plans_percentage(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], status: str
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", FLAT, rate_limit_percent=400)
    tenant = await factory.tenant(staff)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update subscriptions set status = $1 where id = $2", status, uuid.UUID(subscription["id"])
        )
    finally:
        await inspector.close()
    assert await _percent(tenant["id"]) == 400


async def test_a_trial_gives_its_plans_percentage(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", FLAT, rate_limit_percent=400, trial_days=14)
    tenant = await factory.tenant(staff)
    assert (await subscribe(client, staff.headers, tenant["id"], "pro"))["status"] == "trialing"
    assert await _percent(tenant["id"]) == 400


async def test_a_canceled_subscription_gives_nothing_and_a_changed_plan_gives_its_own(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """Each change of the subscription's plan or status is published for the caches, as the override is."""
    staff = await factory.staff()
    await plan(client, staff.headers, "basic", FLAT, rate_limit_percent=200)
    await plan(client, staff.headers, "pro", DEARER, rate_limit_percent=400)
    tenant = await factory.tenant(staff)
    topic = f"{RATE_LIMIT_TOPIC}:{tenant['id']}"

    async with published(stack_env) as heard:
        subscription = await subscribe(client, staff.headers, tenant["id"], "basic")
        await heard_once(heard, topic)
        assert await _percent(tenant["id"]) == 200

        heard.clear()
        upgraded = await client.post(
            f"/v1/subscriptions/{subscription['id']}/change", json={"plan_code": "pro"}, headers=staff.headers
        )
        assert upgraded.status_code == 200, upgraded.text
        assert upgraded.json()["plan_code"] == "pro"
        await heard_once(heard, topic)
        assert await _percent(tenant["id"]) == 400

        heard.clear()
        canceled = await client.post(
            f"/v1/subscriptions/{subscription['id']}/cancel", json={"at_period_end": False}, headers=staff.headers
        )
        assert canceled.status_code == 200, canceled.text
        await heard_once(heard, topic)
        assert await _percent(tenant["id"]) == 100


async def test_an_unknown_or_erased_tenant_gets_the_defaults(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    assert await billing_service.tenant_rate_limit_percent(uuid.uuid4()) == 100

    await plan(client, staff.headers, "pro", FLAT, rate_limit_percent=400)
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "pro")
    await _override(client, staff, tenant["id"], 50)
    erased = await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)
    assert erased.status_code == 202, erased.text
    assert await _percent(tenant["id"]) == 100
