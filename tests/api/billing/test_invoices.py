"""Invoices over HTTP: their lines, voiding, credit notes, drafts kept for grace hours, gapless numbers,
and currencies with zero and three decimals. Amounts are worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient

from billing import service as billing_service
from tests.api._helpers import assert_problem, bearer, create_api_key
from tests.api.billing._support import credit_notes, event, invoices, metric, plan, post_usage, subscribe
from tests.factories import Actor, Factory

# A past start (staff only): 15 January 2026, so the first period runs 17 of January's 31 days.
START = datetime(2026, 1, 15, tzinfo=UTC)


async def _pro(client: AsyncClient, staff: Actor, currency: str = "EUR", **charges: Any) -> None:
    await plan(
        client,
        staff.headers,
        f"pro-{currency.lower()}",
        [
            {"type": "flat", "name": "Platform fee", "amount_minor": charges.get("flat", 1000)},
            {"type": "per_seat", "name": "Seats", "unit_amount_minor": charges.get("seat", "250.5")},
        ],
        currency=currency,
    )


async def _first_invoice(
    client: AsyncClient, factory: Factory, currency: str = "EUR", seats: int = 2, **tenant_fields: Any
) -> tuple[Actor, dict[str, Any], dict[str, Any]]:
    """Staff, a tenant subscribed from START to its currency's pro plan, and its first invoice."""
    staff = await factory.staff()
    await _pro(client, staff, currency)
    tenant = await factory.tenant(staff, currency=currency, **tenant_fields)
    await subscribe(client, staff.headers, tenant["id"], f"pro-{currency.lower()}", seats=seats, start_at=START)
    [first] = await invoices(client, staff.headers, tenant["id"])
    return staff, tenant, first


async def _credit(client: AsyncClient, headers: dict[str, str], invoice_id: str, amount: int) -> Any:
    return await client.post(
        f"/v1/invoices/{invoice_id}/credit-notes", json={"amount_minor": amount, "reason": "goodwill"}, headers=headers
    )


async def _get(client: AsyncClient, headers: dict[str, str], invoice_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/invoices/{invoice_id}", headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_invoice_lines(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    await plan(
        client,
        staff.headers,
        "pro",
        [
            {"type": "flat", "name": "Platform fee", "amount_minor": 1000},
            {"type": "per_seat", "name": "Seats", "unit_amount_minor": "250.5"},
            {"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "0.5"},
        ],
    )
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro", seats=2, start_at=START)
    admin = await factory.member(tenant["id"], "tenant_admin")
    [listed] = await invoices(client, admin.headers, tenant["id"])
    invoice = await _get(client, admin.headers, listed["id"])
    assert invoice == listed

    # 1000 x 17/31 = 548.39 -> 548; 2 x 250.5 x 17/31 = 274.74 -> 275; tax 20 % of 823 = 164.6 -> 165.
    assert invoice["lines"] == [
        {
            "description": "Pro: Platform fee, 2026-01-15 to 2026-02-01 (17/31 days)",
            "charge_kind": "flat",
            "metric_code": None,
            "quantity": "1",
            "unit_amount_minor": "1000",
            "amount_minor": 548,
            "period_start": "2026-01-15T00:00:00Z",
            "period_end": "2026-02-01T00:00:00Z",
        },
        {
            "description": "Pro: Seats x 2, 2026-01-15 to 2026-02-01 (17/31 days)",
            "charge_kind": "per_seat",
            "metric_code": None,
            "quantity": "2",
            "unit_amount_minor": "250.5",
            "amount_minor": 275,
            "period_start": "2026-01-15T00:00:00Z",
            "period_end": "2026-02-01T00:00:00Z",
        },
    ]
    assert (invoice["subtotal_minor"], invoice["tax_minor"], invoice["total_minor"]) == (823, 165, 988)
    assert (invoice["credited_minor"], invoice["amount_due_minor"]) == (0, 988)
    assert (invoice["status"], invoice["currency"]) == ("finalized", "EUR")
    assert invoice["subscription_id"] == subscription["id"]
    assert invoice["tenant_id"] == tenant["id"]
    assert (invoice["period_start"], invoice["period_end"]) == ("2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z")
    assert invoice["issued_at"] is not None

    # A metered line, as the upcoming invoice shows it: 3 calls x 0.5 = 1.5 -> 2.
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    calls = [event(f"c{i}", "api_calls", datetime(2026, 1, 20, 10, tzinfo=UTC)) for i in range(3)]
    assert (await post_usage(client, bearer(key), calls)).json()["accepted"] == 3
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=admin.headers)).json()
    assert (upcoming["id"], upcoming["number"], upcoming["status"]) == (None, None, "upcoming")
    metered = upcoming["lines"][0]
    assert metered == {
        "description": "api_calls: 3 unit(s), 2026-01-15 to 2026-02-01",
        "charge_kind": "metered",
        "metric_code": "api_calls",
        "quantity": "3",
        "unit_amount_minor": "0.5",
        "amount_minor": 2,
        "period_start": "2026-01-15T00:00:00Z",
        "period_end": "2026-02-01T00:00:00Z",
    }
    # Then February's advance charges: 1000 and 2 x 250.5 = 501, whole.
    assert [line["amount_minor"] for line in upcoming["lines"][1:]] == [1000, 501]
    assert upcoming["subtotal_minor"] == 1503
    assert upcoming["tax_minor"] == 301  # 300.6


async def test_void(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, first = await _first_invoice(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/invoices/{first['id']}/void"

    assert_problem(await client.post(url, headers=admin.headers), 403)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_admin")
    assert_problem(await client.post(url, headers=bearer(key)), 403)
    assert (await _get(client, admin.headers, first["id"]))["status"] == "finalized"

    response = await client.post(url, headers=staff.headers)
    assert response.status_code == 200, response.text
    voided = response.json()
    assert (voided["status"], voided["amount_due_minor"]) == ("void", 0)
    assert voided["number"] == first["number"]
    assert voided["total_minor"] == first["total_minor"]
    assert voided["lines"] == first["lines"]

    again = await client.post(url, headers=staff.headers)
    assert again.status_code == 200, again.text
    assert again.json() == voided
    assert await _get(client, admin.headers, first["id"]) == voided

    assert_problem(await _credit(client, staff.headers, first["id"], 1), 409, "invalid_invoice_transition")
    assert await credit_notes(client, staff.headers, first["id"]) == []


async def test_credit_notes(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, first = await _first_invoice(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    total = first["total_minor"]
    assert total == 548 + 275  # no tax

    assert_problem(await _credit(client, admin.headers, first["id"], 10), 403)
    assert_problem(await _credit(client, staff.headers, first["id"], 0), 400)
    too_much = assert_problem(
        await _credit(client, staff.headers, first["id"], total + 1), 409, "credit_exceeds_remainder"
    )
    assert too_much.get("creditable_minor") == total, too_much
    assert "8.23 EUR" in too_much["detail"]

    response = await _credit(client, staff.headers, first["id"], 100)
    assert response.status_code == 201, response.text
    note = response.json()
    assert (note["invoice_id"], note["amount_minor"], note["currency"], note["reason"]) == (
        first["id"],
        100,
        "EUR",
        "goodwill",
    )
    after_one = await _get(client, admin.headers, first["id"])
    assert (after_one["credited_minor"], after_one["amount_due_minor"]) == (100, total - 100)

    rest = total - 100
    over = assert_problem(await _credit(client, staff.headers, first["id"], rest + 1), 409, "credit_exceeds_remainder")
    assert over.get("creditable_minor") == rest, over
    exact = await _credit(client, staff.headers, first["id"], rest)
    assert exact.status_code == 201, exact.text
    settled = await _get(client, admin.headers, first["id"])
    assert (settled["credited_minor"], settled["amount_due_minor"], settled["status"]) == (total, 0, "finalized")
    nothing_left = assert_problem(await _credit(client, staff.headers, first["id"], 1), 409, "credit_exceeds_remainder")
    assert nothing_left.get("creditable_minor") == 0, nothing_left

    notes = await credit_notes(client, admin.headers, first["id"])
    assert [n["amount_minor"] for n in notes] == [100, rest]
    assert notes[0]["id"] == note["id"]


async def test_draft_during_grace_hours(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, first = await _first_invoice(client, factory, invoice_grace_hours=24)
    assert (first["status"], first["number"], first["issued_at"]) == ("draft", None, None)
    assert first["total_minor"] == 548 + 275
    # A draft cannot be credited; voiding numbers it first, so numbers stay gapless.
    assert_problem(await _credit(client, staff.headers, first["id"], 1), 409, "invalid_invoice_transition")
    response = await client.post(f"/v1/invoices/{first['id']}/void", headers=staff.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["number"]) == ("void", f"{tenant['slug'].upper()}-000001")


async def test_numbers_are_sequential_per_tenant(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _pro(client, staff)
    tenants = [await factory.tenant(staff) for _ in range(2)]
    subscriptions = {}
    for tenant in tenants:  # interleaved: A's first, B's first, A's second, B's second
        subscriptions[tenant["id"]] = await subscribe(client, staff.headers, tenant["id"], "pro-eur", seats=1)
    for tenant in tenants:
        response = await client.post(
            f"/v1/subscriptions/{subscriptions[tenant['id']]['id']}/change", json={"seats": 3}, headers=staff.headers
        )
        assert response.status_code == 200, response.text
    for tenant in tenants:
        numbers = [invoice["number"] for invoice in await invoices(client, staff.headers, tenant["id"])]
        slug = tenant["slug"].upper()
        assert numbers == [f"{slug}-000001", f"{slug}-000002"]


async def test_zero_decimal_currency(client: AsyncClient, factory: Factory) -> None:
    # JPY: 1000 x 17/31 = 548.39 -> 548; 2 x 333 x 17/31 = 365.23 -> 365; 913; tax 10 % = 91.3 -> 91.
    staff = await factory.staff()
    await plan(
        client,
        staff.headers,
        "pro-jpy",
        [{"type": "flat", "amount_minor": 1000}, {"type": "per_seat", "unit_amount_minor": 333}],
        currency="JPY",
    )
    tenant = await factory.tenant(staff, currency="JPY", tax_rate_bps=1000)
    await subscribe(client, staff.headers, tenant["id"], "pro-jpy", seats=2, start_at=START)
    [first] = await invoices(client, staff.headers, tenant["id"])
    assert first["currency"] == "JPY"
    assert [line["amount_minor"] for line in first["lines"]] == [548, 365]
    assert (first["subtotal_minor"], first["tax_minor"], first["total_minor"]) == (913, 91, 1004)
    too_much = assert_problem(await _credit(client, staff.headers, first["id"], 1005), 409, "credit_exceeds_remainder")
    assert "1004 JPY" in too_much["detail"], too_much


async def test_three_decimal_currency(client: AsyncClient, factory: Factory) -> None:
    # KWD: 12340 x 17/31 = 6767.10 -> 6767; 3 x 1000 x 17/31 = 1645.16 -> 1645; 8412; tax 5 % = 420.6 -> 421;
    # 8833. Stripe charges three-decimal currencies only in multiples of ten (prices end in 0), so the amount
    # due is cash-rounded after tax: 8833 -> 8830, a rounding line of -3 (subtotal 8409).
    staff = await factory.staff()
    await plan(
        client,
        staff.headers,
        "pro-kwd",
        [{"type": "flat", "amount_minor": 12340}, {"type": "per_seat", "unit_amount_minor": "1000"}],
        currency="KWD",
    )
    tenant = await factory.tenant(staff, currency="KWD", tax_rate_bps=500)
    await subscribe(client, staff.headers, tenant["id"], "pro-kwd", seats=3, start_at=START)
    [first] = await invoices(client, staff.headers, tenant["id"])
    assert first["currency"] == "KWD"
    assert [line["amount_minor"] for line in first["lines"]] == [6767, 1645, -3]
    assert first["lines"][-1]["charge_kind"] == "rounding"
    assert (first["subtotal_minor"], first["tax_minor"], first["total_minor"]) == (8409, 421, 8830)
    too_much = assert_problem(await _credit(client, staff.headers, first["id"], 8840), 409, "credit_exceeds_remainder")
    assert "8.830 KWD" in too_much["detail"], too_much
    # A credit note frees an amount that may go back by card: it is one Stripe can send, too.
    off_step = assert_problem(await _credit(client, staff.headers, first["id"], 8825), 422, "amount_not_chargeable")
    assert off_step["step_minor"] == 10
    assert await credit_notes(client, staff.headers, first["id"]) == []
    response = await _credit(client, staff.headers, first["id"], 8830)
    assert response.status_code == 201, response.text
    assert response.json()["currency"] == "KWD"


async def test_invoices_list_in_number_order(client: AsyncClient, factory: Factory) -> None:
    """A change first bills every boundary that has passed; the list shows those invoices in issue order."""
    staff = await factory.staff()
    await _pro(client, staff)
    tenant = await factory.tenant(staff)
    # From the 1st of the month eleven months ago: creating bills the first month only.
    start = datetime(START.year - 1, 12, 1, tzinfo=UTC)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro-eur", seats=1, start_at=start)
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1
    response = await client.post(
        f"/v1/subscriptions/{subscription['id']}/change", json={"seats": 2}, headers=staff.headers
    )
    assert response.status_code == 200, response.text

    listed = await invoices(client, staff.headers, tenant["id"])
    numbers = [invoice["number"] for invoice in listed]
    assert len(numbers) > 3
    assert numbers == sorted(numbers), numbers
    periods = [invoice["period_start"] for invoice in listed[:-1]]
    assert periods == sorted(periods), periods


async def test_cancelling_now_credits_an_amount_stripe_can_send_in_a_currency_it_takes_in_steps(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "forint", [{"type": "flat", "amount_minor": 1_000_000}], currency="HUF")
    tenant = await factory.tenant(staff, currency="HUF", tax_rate_bps=2700)
    admin = await factory.member(tenant["id"], "tenant_admin")
    start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    created = await subscribe(client, staff.headers, tenant["id"], "forint", start_at=start)
    [first] = await invoices(client, staff.headers, tenant["id"])
    assert first["total_minor"] == 1_270_000
    response = await client.post(
        f"/v1/subscriptions/{created['id']}/cancel", json={"at_period_end": False}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    [note] = await credit_notes(client, staff.headers, first["id"])
    assert note["amount_minor"] > 0 and note["amount_minor"] % 100 == 0, note
    after = await _get(client, staff.headers, first["id"])
    assert after["amount_due_minor"] % 100 == 0
    assert (await billing_service.verify_ledger()).ok
