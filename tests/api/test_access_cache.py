"""A read's access check is remembered per process (a tenant's status and suspensions, a person's role), yet a
demotion, a removal or a suspension, even one made in SQL by an operator, holds on the very next request; and a
refusal is never remembered."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response

from tenants import repository, service
from tests.api._helpers import assert_problem
from tests.api._notifications import heard_once, published
from tests.conftest import connect_as_inspector
from tests.factories import PASSWORD, Actor, Factory


class Calls:
    count = 0


@pytest.fixture
def membership_reads(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every read of a person's membership (what a member's access check reads)."""
    calls, get_membership = Calls(), repository.get_membership

    async def counted(tenant_id: uuid.UUID, user_id: uuid.UUID) -> dict[str, Any] | None:
        calls.count += 1
        return await get_membership(tenant_id, user_id)

    monkeypatch.setattr(repository, "get_membership", counted)
    return calls


async def _in_sql(stack_env: dict[str, str], statement: str, *args: Any, payload: str) -> None:
    """`statement` run by an operator on a connection of their own; returns once the database published it."""
    inspector = await connect_as_inspector(stack_env)
    try:
        async with published(stack_env) as heard:
            await inspector.execute(statement, *args)
            await heard_once(heard, payload)
    finally:
        await inspector.close()


async def _once_heard(client: AsyncClient, url: str, actor: Actor, status: int) -> Response:
    """The answer to `url` once this process has read its notifications (its loop needs a turn or two)."""
    for _ in range(200):
        response = await client.get(url, headers=actor.headers)
        if response.status_code == status:
            return response
    raise AssertionError(f"{url} still answered {response.status_code}, not {status}")


async def test_a_members_reads_check_access_once(
    client: AsyncClient, factory: Factory, membership_reads: Calls
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    before = membership_reads.count
    for path in ("", "/members", "/audit-events", "", "/members"):
        assert (await client.get(f"/v1/tenants/{tenant['id']}{path}", headers=admin.headers)).status_code == 200
    assert membership_reads.count - before == 1
    # A write checks again, in its own transaction.
    renamed = await client.patch(f"/v1/tenants/{tenant['id']}", json={"name": "Renamed"}, headers=admin.headers)
    assert renamed.status_code == 200, renamed.text
    assert membership_reads.count - before > 1


async def test_a_demotion_and_a_removal_in_sql_hold_at_once(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    audit = f"/v1/tenants/{tenant['id']}/audit-events"
    assert (await client.get(audit, headers=admin.headers)).status_code == 200

    key = f"{tenant['id']}/{admin.user_id}"
    await _in_sql(
        stack_env,
        "update memberships set role = 'tenant_member' where tenant_id = $1 and user_id = $2",
        uuid.UUID(tenant["id"]),
        admin.user_id,
        payload=f"membership:{key}",
    )
    assert_problem(await _once_heard(client, audit, admin, 403), 403, "forbidden_for_role")
    members = f"/v1/tenants/{tenant['id']}/members"
    assert (await client.get(members, headers=admin.headers)).status_code == 200  # a member still reads these

    await _in_sql(
        stack_env,
        "delete from memberships where tenant_id = $1 and user_id = $2",
        uuid.UUID(tenant["id"]),
        admin.user_id,
        payload=f"membership:{key}",
    )
    assert_problem(await _once_heard(client, members, admin, 404), 404)


async def test_a_suspension_for_non_payment_in_sql_holds_at_once(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    members = f"/v1/tenants/{tenant['id']}/members"
    assert (await client.get(members, headers=admin.headers)).status_code == 200

    await _in_sql(
        stack_env,
        "update tenants set billing_suspended_at = now() where id = $1",
        uuid.UUID(tenant["id"]),
        payload=f"tenant_access:{tenant['id']}",
    )
    assert_problem(await _once_heard(client, members, admin, 402), 402, "suspended_for_non_payment")


async def test_a_refusal_is_not_remembered(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    outsider = await factory.user()
    members = f"/v1/tenants/{tenant['id']}/members"
    assert_problem(await client.get(members, headers=outsider.headers), 404)
    await service.create_or_update_user(
        outsider.email, PASSWORD, staff=False, tenant_id=uuid.UUID(tenant["id"]), role="tenant_member"
    )
    assert (await client.get(members, headers=outsider.headers)).status_code == 200
