"""Coupons over HTTP (staff's catalogue) and the discounts subscriptions redeem: refusals with their codes,
once per tenant, discount lines on the cycle invoice with tax after them. Amounts by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from billing import service as billing_service
from tests.api._helpers import all_items, assert_problem, audit_actions
from tests.api.billing._support import invoices, plan, subscribe
from tests.factories import Actor, Factory

START = datetime(2026, 1, 15, tzinfo=UTC)
FEBRUARY_CYCLE = datetime(2026, 2, 1, 2, tzinfo=UTC)
MARCH_CYCLE = datetime(2026, 3, 1, 2, tzinfo=UTC)


def coupon_body(code: str, **fields: Any) -> dict[str, Any]:
    return {"code": code, "name": code.title(), "duration": "forever", **fields}


async def coupon(client: AsyncClient, staff: Actor, code: str, **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/coupons", json=coupon_body(code, **fields), headers=staff.headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def _pro(client: AsyncClient, staff: Actor, code: str = "pro", currency: str = "EUR") -> None:
    charges = [
        {"type": "flat", "name": "Platform fee", "amount_minor": 1000},
        {"type": "per_seat", "name": "Seats", "unit_amount_minor": 250},
    ]
    await plan(client, staff.headers, code, charges, currency=currency)


async def _subscribed(
    client: AsyncClient, factory: Factory, staff: Actor, plan_code: str = "pro", **tenant_fields: Any
) -> tuple[dict[str, Any], dict[str, Any], Actor]:
    tenant = await factory.tenant(staff, **tenant_fields)
    subscription = await subscribe(client, staff.headers, tenant["id"], plan_code, seats=2, start_at=START)
    admin = await factory.member(tenant["id"], "tenant_admin")
    return tenant, subscription, admin


async def _redeem(client: AsyncClient, headers: dict[str, str], subscription_id: str, code: str) -> Any:
    return await client.post(
        f"/v1/subscriptions/{subscription_id}/discounts", json={"coupon_code": code}, headers=headers
    )


async def test_coupons_are_staff_only_and_never_change(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    body = coupon_body("launch", percent_off_bps=2500, plan_codes=["pro"], max_redemptions=100)
    assert_problem(await client.post("/v1/coupons", json=body, headers=admin.headers), 403, "staff_only")
    assert_problem(await client.post("/v1/coupons", json=body), 401)

    created = await client.post("/v1/coupons", json=body, headers=staff.headers)
    assert created.status_code == 201, created.text
    launch = created.json()
    assert (launch["percent_off_bps"], launch["currency"], launch["plan_codes"]) == (2500, None, ["pro"])
    assert (launch["times_redeemed"], launch["archived"]) == (0, False)
    again = await client.post("/v1/coupons", json=body, headers=staff.headers)
    assert (again.status_code, again.json()) == (200, launch)
    changed = {**body, "percent_off_bps": 3000}
    assert_problem(await client.post("/v1/coupons", json=changed, headers=staff.headers), 409, "coupon_exists")

    for path in ["/v1/coupons", "/v1/coupons/launch"]:
        assert_problem(await client.get(path, headers=admin.headers), 403, "staff_only")
    assert_problem(await client.post("/v1/coupons/launch/archive", headers=admin.headers), 403, "staff_only")
    assert (await client.get("/v1/coupons/launch", headers=staff.headers)).json() == launch
    assert_problem(await client.get("/v1/coupons/nope", headers=staff.headers), 404, "coupon_not_found")

    await coupon(client, staff, "welcome", amount_off_minor=500, currency="EUR", duration="once")
    listed = await all_items(client, "/v1/coupons", staff.headers, limit=1)
    assert [item["code"] for item in listed] == ["launch", "welcome"]

    archived = await client.post("/v1/coupons/launch/archive", headers=staff.headers)
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived"] is True
    assert (await client.post("/v1/coupons/launch/archive", headers=staff.headers)).json() == archived.json()
    assert_problem(await client.post("/v1/coupons/nope/archive", headers=staff.headers), 404, "coupon_not_found")


async def test_bad_coupons_are_refused_with_codes(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    invalid = [
        {"percent_off_bps": 1000, "amount_off_minor": 500, "currency": "EUR"},  # both
        {},  # neither
        {"amount_off_minor": 500},  # amount without currency
        {"percent_off_bps": 1000, "currency": "EUR"},  # currency with a percent
        {"percent_off_bps": 1000, "duration": "repeating"},  # repeating without periods
        {"percent_off_bps": 1000, "duration_periods": 3},  # periods without repeating
        {"percent_off_bps": 1000, "plan_codes": ["pro", "pro"]},
        {"amount_off_minor": 500, "currency": "XXX"},
    ]
    for fields in invalid:
        response = await client.post("/v1/coupons", json=coupon_body("bad", **fields), headers=staff.headers)
        assert response.status_code == 422, (fields, response.text)
        assert response.json()["code"] in ("invalid_coupon", "unknown_currency"), fields
    malformed = [
        {"percent_off_bps": 10_001},
        {"percent_off_bps": 0},
        {"amount_off_minor": 10**15 + 1, "currency": "EUR"},
        {"amount_off_minor": 2**63, "currency": "EUR"},
        {"percent_off_bps": 1000, "duration": "repeating", "duration_periods": 10**9},
        {"percent_off_bps": 1000, "max_redemptions": 0},
        {"percent_off_bps": 1000, "redeem_by": "not a date"},
        {"percent_off_bps": 1000, "redeem_by": "9999-12-31T23:59:59Z"},
        {"percent_off_bps": 1000, "redeem_by": "2030-01-01T00:00:00"},  # no UTC offset: names no instant
        {"percent_off_bps": 1000, "duration": "sometimes"},
        {"percent_off_bps": 1000, "plan_codes": []},
        {"percent_off_bps": 1000, "surprise": True},
    ]
    for fields in malformed:
        response = await client.post("/v1/coupons", json=coupon_body("bad", **fields), headers=staff.headers)
        assert response.status_code == 400, (fields, response.text)
        assert response.json()["code"], fields
    assert_problem(await client.get("/v1/coupons/bad", headers=staff.headers), 404, "coupon_not_found")


async def test_a_retried_coupon_with_a_redeem_by_in_another_offset_answers_the_stored_one(
    client: AsyncClient, factory: Factory
) -> None:
    # The request's moment is kept in UTC and compared as an instant: the identical retry is a repeat (200),
    # not a conflicting definition; the same instant written in another offset is the same definition too.
    staff = await factory.staff()
    body = coupon_body("summer", percent_off_bps=1000, redeem_by="2030-06-30T23:59:59.5+02:00")
    created = await client.post("/v1/coupons", json=body, headers=staff.headers)
    assert created.status_code == 201, created.text
    assert created.json()["redeem_by"] == "2030-06-30T21:59:59.500000Z"
    again = await client.post("/v1/coupons", json=body, headers=staff.headers)
    assert (again.status_code, again.json()) == (200, created.json())
    same_instant = {**body, "redeem_by": "2030-06-30T21:59:59.5Z"}
    assert (await client.post("/v1/coupons", json=same_instant, headers=staff.headers)).status_code == 200
    later = {**body, "redeem_by": "2030-06-30T23:59:59.5Z"}
    assert_problem(await client.post("/v1/coupons", json=later, headers=staff.headers), 409, "coupon_exists")


async def test_each_refusal_of_a_redemption_has_its_own_code(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    await _pro(client, staff, "basic")
    tenant, subscription, admin = await _subscribed(client, factory, staff)
    sub_id = subscription["id"]
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    await coupon(client, staff, "archived", percent_off_bps=1000)
    await client.post("/v1/coupons/archived/archive", headers=staff.headers)
    await coupon(client, staff, "expired", percent_off_bps=1000, redeem_by=past)
    await coupon(client, staff, "dollars", amount_off_minor=500, currency="USD")
    await coupon(client, staff, "basic-only", percent_off_bps=1000, plan_codes=["basic"])
    await coupon(client, staff, "single", percent_off_bps=1000, max_redemptions=1)

    expected = {
        "archived": "coupon_archived",
        "expired": "coupon_expired",
        "dollars": "coupon_currency_mismatch",
        "basic-only": "coupon_plan_mismatch",
    }
    for code, problem in expected.items():
        assert_problem(await _redeem(client, admin.headers, sub_id, code), 409, problem)
    assert_problem(await _redeem(client, admin.headers, sub_id, "nope"), 404, "coupon_not_found")
    assert_problem(await _redeem(client, admin.headers, sub_id, "Not A Code"), 400)

    # The one redemption of "single" goes to this tenant; another tenant finds it exhausted.
    redeemed = await _redeem(client, admin.headers, sub_id, "single")
    assert redeemed.status_code == 201, redeemed.text
    assert_problem(await _redeem(client, admin.headers, sub_id, "single"), 409, "coupon_already_redeemed")
    _, other, other_admin = await _subscribed(client, factory, staff)
    assert_problem(await _redeem(client, other_admin.headers, other["id"], "single"), 409, "coupon_exhausted")
    assert (await client.get("/v1/coupons/single", headers=staff.headers)).json()["times_redeemed"] == 1
    # Another tenant's admin cannot even see this subscription.
    await coupon(client, staff, "open", percent_off_bps=1000)
    assert_problem(await _redeem(client, other_admin.headers, sub_id, "open"), 404, "subscription_not_found")
    # A billing viewer may list, not redeem.
    viewer = await factory.member(tenant["id"], "billing_viewer")
    assert_problem(await _redeem(client, viewer.headers, sub_id, "open"), 403)
    listed = await client.get(f"/v1/subscriptions/{sub_id}/discounts", headers=viewer.headers)
    assert [item["coupon_code"] for item in listed.json()["items"]] == ["single"]
    assert "discount.redeemed" in await audit_actions(client, staff, tenant["id"])


async def test_a_retried_redemption_with_a_key_answers_the_same_discount(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    _, subscription, admin = await _subscribed(client, factory, staff)
    await coupon(client, staff, "launch", percent_off_bps=1000)
    headers = {**admin.headers, "Idempotency-Key": "redeem-launch"}
    first = await _redeem(client, headers, subscription["id"], "launch")
    second = await _redeem(client, headers, subscription["id"], "launch")
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json() == second.json()
    assert (await client.get("/v1/coupons/launch", headers=staff.headers)).json()["times_redeemed"] == 1


async def test_a_percent_discount_on_the_cycle_invoice_taxed_after_it_then_removed(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    tenant, subscription, admin = await _subscribed(client, factory, staff, tax_rate_bps=2000)
    sub_id = subscription["id"]
    await coupon(client, staff, "launch", name="Launch", percent_off_bps=2500)
    response = await _redeem(client, admin.headers, sub_id, "launch")
    assert response.status_code == 201, response.text
    discount = response.json()
    assert (discount["position"], discount["status"], discount["percent_off_bps"]) == (1, "active", 2500)

    # The preview shows it without using it.
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=admin.headers)).json()
    assert upcoming["discount_minor"] == -375

    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    [_, february] = await invoices(client, admin.headers, tenant["id"])
    # February: 1000 + 2 x 250 = 1500; 25 % = 375 off; subtotal 1125; tax 20 % of 1125 = 225; total 1350.
    assert [(line["charge_kind"], line["amount_minor"]) for line in february["lines"]] == [
        ("flat", 1000),
        ("per_seat", 500),
        ("discount", -375),
    ]
    assert february["lines"][-1]["description"] == "Discount Launch (launch): 25% off"
    assert (february["discount_minor"], february["subtotal_minor"]) == (-375, 1125)
    assert (february["tax_minor"], february["total_minor"]) == (225, 1350)

    # Only staff end a discount; it stays listed, and the coupon cannot be redeemed again by this tenant.
    path = f"/v1/subscriptions/{sub_id}/discounts/{discount['id']}"
    assert_problem(await client.delete(path, headers=admin.headers), 403)
    removed = await client.delete(path, headers=staff.headers)
    assert removed.status_code == 200, removed.text
    assert (removed.json()["status"], removed.json()["ended_reason"]) == ("removed", "removed")
    assert (await client.delete(path, headers=staff.headers)).json() == removed.json()
    missing = f"/v1/subscriptions/{sub_id}/discounts/00000000-0000-0000-0000-000000000000"
    assert_problem(await client.delete(missing, headers=staff.headers), 404, "discount_not_found")
    assert_problem(await _redeem(client, admin.headers, sub_id, "launch"), 409, "coupon_already_redeemed")

    await billing_service.run_cycle(MARCH_CYCLE, grace=timedelta(hours=1))
    march = (await invoices(client, admin.headers, tenant["id"]))[-1]
    assert (march["discount_minor"], march["subtotal_minor"], march["tax_minor"]) == (0, 1500, 300)
    actions = await audit_actions(client, staff, tenant["id"])
    assert {"discount.redeemed", "discount.applied", "discount.removed"} <= set(actions)
    assert (await billing_service.verify_ledger()).ok


async def test_a_once_amount_coupon_carries_across_cycle_invoices(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    tenant, subscription, admin = await _subscribed(client, factory, staff)
    # 20.00 EUR once against 15.00 EUR invoices: 1500 in February, the 500 left in March.
    await coupon(client, staff, "welcome", amount_off_minor=2000, currency="EUR", duration="once")
    assert (await _redeem(client, admin.headers, subscription["id"], "welcome")).status_code == 201
    await billing_service.run_cycle(FEBRUARY_CYCLE, grace=timedelta(hours=1))
    await billing_service.run_cycle(MARCH_CYCLE, grace=timedelta(hours=1))
    [_, february, march] = await invoices(client, admin.headers, tenant["id"])
    assert (february["discount_minor"], february["total_minor"]) == (-1500, 0)
    assert (march["discount_minor"], march["total_minor"]) == (-500, 1000)
    [discount] = (await client.get(f"/v1/subscriptions/{subscription['id']}/discounts", headers=admin.headers)).json()[
        "items"
    ]
    assert (discount["status"], discount["ended_reason"], discount["amount_remaining_minor"]) == ("ended", "used", 0)
