"""Resellers: sign-up, qualification in order, the gate on owning tenants, and what a reseller may read."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient
from prometheus_client import REGISTRY

from tenants import service
from tests.api._helpers import assert_problem
from tests.api.billing._support import plan, subscribe
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

RESELLER_CHAIN = (
    "profile_approved",
    "tax_id_verified",
    "payout_account_verified",
    "agreement_signed",
    "sales_training_certified",
)


async def _sign_up(client: AsyncClient, person: Actor, subtype: str = "standard") -> dict[str, Any]:
    body = {"name": "Northwind Resale", "email": "sales@northwind.test", "subtype": subtype}
    response = await client.post("/v1/resellers", json=body, headers=person.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _step(
    client: AsyncClient, headers: dict[str, str], partner_id: str, code: str, action: str, **body: Any
) -> Any:
    return await client.post(
        f"/v1/partners/{partner_id}/checkpoints/{code}/{action}", json=body or None, headers=headers
    )


async def _qualify(
    client: AsyncClient, admin: Actor, staff: Actor, partner_id: str, codes: tuple[str, ...]
) -> dict[str, Any]:
    answer: dict[str, Any] = {}
    for code in codes:
        evidence = "acct_1Northwind" if code == "payout_account_verified" else f"{code} evidence"
        submitted = await _step(client, admin.headers, partner_id, code, "submit", evidence=evidence)
        assert submitted.status_code == 200, submitted.text
        approved = await _step(client, staff.headers, partner_id, code, "approve")
        assert approved.status_code == 200, approved.text
        answer = approved.json()
    return answer


async def _agree(client: AsyncClient, staff: Actor, partner_id: str, currency: str = "EUR") -> None:
    """Staff set the reseller's agreement; its currency is the one its admins' new tenants are billed in."""
    agreement = {"currency": currency, "rate_bps": 1000, "pending_days": 0}
    response = await client.put(f"/v1/resellers/{partner_id}/agreement", json=agreement, headers=staff.headers)
    assert response.status_code == 200, response.text


async def test_a_reseller_qualifies_in_order_and_only_then_owns_tenants(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    founder = await factory.user()
    partner = await _sign_up(client, founder)
    pid = partner["id"]
    assert partner["qualification"]["is_qualified"] is False
    assert partner["qualification"]["required_actions"][0] == "submit_profile_approved"

    early = await _step(client, founder.headers, pid, "agreement_signed", "submit", evidence="signed")
    problem = assert_problem(early, 409, "checkpoint_prerequisite_missing")
    assert "payout_account_verified" in problem["detail"]
    own = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "reseller_id": pid}
    refused = assert_problem(
        await client.post("/v1/tenants", json=own, headers=founder.headers), 403, "partner_not_qualified"
    )
    assert refused["required_actions"][0] == "submit_profile_approved"
    by_staff = await client.post(
        "/v1/tenants", json={**own, "slug": "by-staff", "currency": "EUR"}, headers=staff.headers
    )
    assert_problem(by_staff, 403, "partner_not_qualified")  # whoever asks

    assert_problem(await _step(client, founder.headers, pid, "profile_approved", "approve"), 403)
    qualified = await _qualify(client, founder, staff, pid, RESELLER_CHAIN)
    assert qualified["is_qualified"] is True and qualified["required_actions"] == []
    await _agree(client, staff, pid)
    created = await client.post("/v1/tenants", json=own, headers=founder.headers)
    assert created.status_code == 201, created.text
    assert created.json()["reseller_id"] == pid

    history = (await client.get(f"/v1/partners/{pid}/history", headers=founder.headers)).json()["items"]
    assert [(h["code"], h["to_status"]) for h in history] == [
        (code, status) for code in RESELLER_CHAIN for status in ("submitted", "approved")
    ]
    assert all(h["actor_id"] for h in history)

    # A year later the training has lapsed: the clock alone unqualifies, and the expiry task records it.
    later = datetime.now(UTC) + timedelta(days=366)
    assert await service.expire_checkpoints(later) == 1
    assert await service.expire_checkpoints(later) == 0
    view = (await client.get(f"/v1/partners/{pid}/qualification", headers=founder.headers)).json()
    assert view["is_qualified"] is False and view["required_actions"] == ["resubmit_sales_training_certified"]
    again = await client.post("/v1/tenants", json={**own, "slug": "after-lapse"}, headers=founder.headers)
    assert_problem(again, 403, "partner_not_qualified")


async def test_a_referral_reseller_is_exempt_from_payouts_and_training(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    founder = await factory.user()
    pid = (await _sign_up(client, founder, "referral"))["id"]
    exempt = await _step(client, founder.headers, pid, "payout_account_verified", "submit", evidence="acct_1")
    assert_problem(exempt, 409)
    qualified = await _qualify(client, founder, staff, pid, ("profile_approved", "tax_id_verified", "agreement_signed"))
    assert qualified["is_qualified"] is True
    assert {c["code"] for c in qualified["checkpoints"] if c["exempt"]} == {
        "payout_account_verified",
        "sales_training_certified",
    }


async def test_staff_review_queue_and_rejection_with_a_reason(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    founder = await factory.user()
    pid = (await _sign_up(client, founder))["id"]
    await _step(client, founder.headers, pid, "profile_approved", "submit", evidence="our profile")
    queue = (
        await client.get("/v1/partners/pending", params={"checkpoint": "profile_approved"}, headers=staff.headers)
    ).json()
    assert [(item["partner_id"], item["code"]) for item in queue["items"]] == [(pid, "profile_approved")]
    assert_problem(await client.get("/v1/partners/pending", headers=founder.headers), 403, "staff_only")
    assert_problem(await _step(client, staff.headers, pid, "profile_approved", "reject", reason=""), 400)
    rejected = await _step(client, staff.headers, pid, "profile_approved", "reject", reason="no company address")
    assert rejected.status_code == 200
    assert rejected.json()["required_actions"][0] == "resubmit_profile_approved"
    assert "no company address" in rejected.json()["issues"][0]
    assert (await client.get("/v1/partners/pending", headers=staff.headers)).json()["items"] == []


async def test_a_reseller_reads_only_its_own_tenants_and_no_personal_data(
    client: AsyncClient, factory: Factory, report: Any
) -> None:
    staff = await factory.staff()
    founders, partners = [], []
    for _ in range(2):
        founder = await factory.user()
        pid = (await _sign_up(client, founder))["id"]
        await _qualify(client, founder, staff, pid, RESELLER_CHAIN)
        await _agree(client, staff, pid)
        body = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "reseller_id": pid}
        tenant = (await client.post("/v1/tenants", json=body, headers=founder.headers)).json()
        await factory.member(tenant["id"])  # a person whose data the reseller must not see
        founders.append(founder)
        partners.append((pid, tenant["id"]))
    (a, tenant_a), (b, tenant_b) = partners
    mine = (await client.get(f"/v1/resellers/{a}/tenants", headers=founders[0].headers)).json()
    assert [item["id"] for item in mine["items"]] == [tenant_a]
    assert mine["items"][0]["billing"] == []
    assert "members" not in mine["items"][0] and "@" not in str(mine)
    refused = 0
    for path in (f"/v1/resellers/{b}/tenants", f"/v1/partners/{b}/qualification", f"/v1/partners/{b}/history"):
        assert_problem(await client.get(path, headers=founders[0].headers), 404, "partner_not_found")
        refused += 1
    for path in (f"/v1/tenants/{tenant_b}", f"/v1/tenants/{tenant_b}/members"):
        assert (await client.get(path, headers=founders[0].headers)).status_code == 404
        refused += 1
    moved = await client.post(f"/v1/tenants/{tenant_b}/reseller", json={"reseller_id": a}, headers=founders[0].headers)
    assert moved.status_code in (403, 404)
    refused += 1
    report(f"resellers: {refused} requests for another reseller's data refused")
    # Staff move tenant B to reseller A: it now shows in A's list.
    assert (
        await client.post(f"/v1/tenants/{tenant_b}/reseller", json={"reseller_id": a}, headers=staff.headers)
    ).status_code == 200
    mine = (await client.get(f"/v1/resellers/{a}/tenants", headers=founders[0].headers)).json()
    assert {item["id"] for item in mine["items"]} == {tenant_a, tenant_b}


async def test_a_reseller_reads_each_owned_tenants_mrr_and_no_one_elses(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    code = f"p{uuid.uuid4().hex[:6]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 4200}])
    founders, partners = [], []
    for _ in range(2):
        founder = await factory.user()
        pid = (await _sign_up(client, founder))["id"]
        await _qualify(client, founder, staff, pid, RESELLER_CHAIN)
        await _agree(client, staff, pid)
        body = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "reseller_id": pid}
        tenant = (await client.post("/v1/tenants", json=body, headers=founder.headers)).json()
        await subscribe(client, staff.headers, tenant["id"], code)
        founders.append(founder)
        partners.append((pid, tenant["id"]))
    unsubscribed = {"name": "Idle", "slug": f"c-{uuid.uuid4().hex[:8]}", "reseller_id": partners[0][0]}
    idle = (await client.post("/v1/tenants", json=unsubscribed, headers=founders[0].headers)).json()
    (a, tenant_a), (_, tenant_b) = partners
    mine = (await client.get(f"/v1/resellers/{a}/tenants", headers=founders[0].headers)).json()["items"]
    assert {item["id"]: item["mrr"] for item in mine} == {
        tenant_a: [{"currency": "EUR", "mrr_minor": 4200}],
        idle["id"]: [],  # no recurring revenue: nothing, rather than a zero
    }
    assert tenant_b not in str(mine)
    viewer = await factory.user()
    added = await client.post(
        f"/v1/partners/{a}/members",
        json={"email": viewer.email, "role": "reseller_viewer"},
        headers=founders[0].headers,
    )
    assert added.status_code == 201, added.text
    seen = (await client.get(f"/v1/resellers/{a}/tenants", headers=viewer.headers)).json()["items"]
    assert {item["id"] for item in seen} == {tenant_a, idle["id"]}
    assert all(item["mrr"] is None for item in seen)  # the revenue is the admins', as the analytics


async def test_a_reseller_admin_cannot_set_commercial_terms_when_creating_a_tenant(
    client: AsyncClient, factory: Factory
) -> None:
    """Tax, grace and currency are set by staff: a reseller's tenants get the currency of the agreement staff
    set with the reseller, and the platform's defaults for tax and grace."""
    staff = await factory.staff()
    founder = await factory.user()
    pid = (await _sign_up(client, founder))["id"]
    await _qualify(client, founder, staff, pid, RESELLER_CHAIN)
    own = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "reseller_id": pid}

    without_agreement = await client.post("/v1/tenants", json=own, headers=founder.headers)
    assert_problem(without_agreement, 409, "reseller_agreement_missing")
    await _agree(client, staff, pid, currency="GBP")
    for terms in ({"tax_rate_bps": 0}, {"invoice_grace_hours": 0}, {"currency": "GBP"}):
        refused = await client.post("/v1/tenants", json={**own, **terms}, headers=founder.headers)
        assert_problem(refused, 403, "commercial_terms_staff_only")
    listed = (await client.get(f"/v1/resellers/{pid}/tenants", headers=founder.headers)).json()["items"]
    assert listed == []

    created = await client.post("/v1/tenants", json=own, headers=founder.headers)
    assert created.status_code == 201, created.text
    tenant = created.json()
    assert (tenant["currency"], tenant["tax_rate_bps"], tenant["invoice_grace_hours"]) == ("GBP", 0, 0)
    # Staff may set a reseller's tenant's terms, at creation or later.
    by_staff = await client.post(
        "/v1/tenants",
        json={**own, "slug": f"s-{uuid.uuid4().hex[:8]}", "currency": "EUR", "tax_rate_bps": 1900},
        headers=staff.headers,
    )
    assert by_staff.status_code == 201, by_staff.text
    assert (by_staff.json()["currency"], by_staff.json()["tax_rate_bps"]) == ("EUR", 1900)
    assert_problem(
        await client.post("/v1/tenants", json={"name": "No currency", "slug": "no-currency"}, headers=staff.headers),
        400,
        "currency_required",
    )


async def test_one_checkpoint_that_cannot_expire_never_stops_the_others(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    retired_founder, founder = await factory.user(), await factory.user()
    retired = (await _sign_up(client, retired_founder))["id"]
    pid = (await _sign_up(client, founder))["id"]
    await _qualify(client, founder, staff, pid, RESELLER_CHAIN)
    # An approval of a checkpoint since retired from the chain, lapsed before anyone else's (listed first).
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "insert into partner_checkpoints (partner_id, code, status, evidence, submitted_at, approved_at, "
            "expires_at) values ($1, 'retired_check', 'approved', '{}'::jsonb, now() - interval '2 years', "
            "now() - interval '2 years', now() - interval '1 year')",
            uuid.UUID(retired),
        )
    finally:
        await inspector.close()

    labels = {"batch_job": "expire_partner_checkpoints", "reason": "unknown_checkpoint"}
    before = REGISTRY.get_sample_value("controlplane_batch_item_failures_total", labels)
    later = datetime.now(UTC) + timedelta(days=366)
    assert await service.expire_checkpoints(later) == 1  # the training lapsed; the retired one is counted, skipped
    after = REGISTRY.get_sample_value("controlplane_batch_item_failures_total", labels)
    assert (after or 0) == (before or 0) + 1
    view = (await client.get(f"/v1/partners/{pid}/qualification", headers=founder.headers)).json()
    assert view["required_actions"] == ["resubmit_sales_training_certified"]
    # The failure is recorded on the checkpoint itself, and counted again on each daily retry.
    assert await service.expire_checkpoints(later + timedelta(days=1)) == 0
    inspector = await connect_as_inspector(stack_env)
    try:
        stored = await inspector.fetchrow(
            "select expiry_error, expiry_attempts, expiry_failed_at from partner_checkpoints "
            "where partner_id = $1 and code = 'retired_check'",
            uuid.UUID(retired),
        )
    finally:
        await inspector.close()
    assert (stored["expiry_error"], stored["expiry_attempts"]) == ("unknown_checkpoint", 2)
    assert stored["expiry_failed_at"] is not None
