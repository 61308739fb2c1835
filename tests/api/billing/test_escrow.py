"""Escrow through the API: fund, submit, accept (released), reject and staff split, cancel; the ledger agrees."""

from __future__ import annotations

import uuid
from typing import Any

from httpx import AsyncClient

from billing import service
from tests.api._helpers import assert_problem
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.factories import Actor, Factory

__all__ = ["stripe_client"]  # the fixture, shared


async def _agreement(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> tuple[Actor, Actor, dict[str, Any], dict[str, Any]]:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    body = {
        "tenant_id": tenant["id"],
        "payee": {"type": "vendor", "id": str(uuid.uuid4())},
        "currency": "EUR",
        "amount_minor": 10_000,
        "milestones": [
            {"title": "Design", "amount_minor": 3_000},
            {"title": "Build", "amount_minor": 5_000},
            {"title": "Launch", "amount_minor": 2_000},
        ],
        "inspection_days": 5,
    }
    response = await client.post("/v1/escrows", json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return staff, admin, tenant, response.json()


async def test_fund_release_dispute_split_and_cancel(client: AsyncClient, factory: Factory, stripe_client: Any) -> None:
    staff, admin, _, agreement = await _agreement(client, factory, stripe_client)
    url = f"/v1/escrows/{agreement['id']}"
    design, build, _ = (m["id"] for m in agreement["milestones"])
    assert (agreement["status"], agreement["held_minor"]) == ("draft", 0)
    assert_problem(await client.post(f"{url}/milestones/{design}/submit", headers=staff.headers), 409)

    funded = await client.post(f"{url}/fund", headers=admin.headers)
    assert funded.status_code == 200, funded.text
    assert (funded.json()["status"], funded.json()["held_minor"]) == ("funded", 10_000)
    again = await client.post(f"{url}/fund", headers=admin.headers)
    assert again.json()["funded_minor"] == 10_000  # funding twice charges once

    # Design: submitted by the payee (staff on its behalf), accepted by the payer: released.
    assert_problem(await client.post(f"{url}/milestones/{design}/submit", headers=admin.headers), 403)
    assert (await client.post(f"{url}/milestones/{design}/submit", headers=staff.headers)).status_code == 200
    accepted = (await client.post(f"{url}/milestones/{design}/accept", headers=admin.headers)).json()
    assert (accepted["released_minor"], accepted["held_minor"]) == (3_000, 7_000)
    released_twice = await client.post(f"{url}/milestones/{design}/accept", headers=admin.headers)
    assert_problem(released_twice, 409, "invalid_milestone_transition")

    # Build: rejected, disputed, split by staff: 1,500 to the payee, 3,500 back to the payer.
    await client.post(f"{url}/milestones/{build}/submit", headers=staff.headers)
    rejected = await client.post(
        f"{url}/milestones/{build}/reject", json={"reason": "does not compile"}, headers=admin.headers
    )
    assert [m["status"] for m in rejected.json()["milestones"]] == ["released", "disputed", "pending"]
    split = {"outcome": "split", "release_minor": 1_500}
    assert_problem(await client.post(f"{url}/milestones/{build}/resolve", json=split, headers=admin.headers), 403)
    resolved = (await client.post(f"{url}/milestones/{build}/resolve", json=split, headers=staff.headers)).json()
    assert (resolved["released_minor"], resolved["refunded_minor"], resolved["held_minor"]) == (4_500, 3_500, 2_000)

    # Cancel: Launch (never delivered) is refunded; the agreement is over.
    canceled = (await client.post(f"{url}/cancel", headers=admin.headers)).json()
    assert (canceled["status"], canceled["held_minor"], canceled["refunded_minor"]) == ("canceled", 0, 5_500)
    assert (canceled["released_minor"] + canceled["refunded_minor"]) == 10_000
    report = await service.verify_ledger()
    assert report.ok, report
