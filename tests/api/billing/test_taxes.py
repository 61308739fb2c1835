"""Several tax rates over HTTP: the staff catalogue, a tenant's list, invoices and credit notes taxed per rate.
Amounts are worked out by hand in the comments."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.api._helpers import assert_problem
from tests.api.billing._support import credit_notes, invoices, plan
from tests.factories import Actor, Factory

STATE = {"code": "us-ca-state", "name": "State tax", "rate_bps": 825, "jurisdiction": "US-CA"}
CITY = {"code": "us-ca-city", "name": "City tax", "rate_bps": 250, "jurisdiction": "US-CA, Los Ángeles"}


async def _rate(client: AsyncClient, staff: Actor, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/tax-rates", json=body, headers=staff.headers)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def _put(client: AsyncClient, actor: Actor, tenant_id: str, codes: list[str]) -> Any:
    return await client.put(f"/v1/tenants/{tenant_id}/tax-rates", json={"codes": codes}, headers=actor.headers)


async def test_staff_keep_the_catalogue_and_a_retry_answers_the_stored_rate(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    created = await _rate(client, staff, STATE)
    assert {k: created[k] for k in STATE} == STATE
    assert created["archived_at"] is None

    again = await client.post("/v1/tax-rates", json=STATE, headers=staff.headers)
    assert again.status_code == 200, again.text
    assert again.json() == created
    other = await client.post("/v1/tax-rates", json={**STATE, "rate_bps": 900}, headers=staff.headers)
    assert_problem(other, 409, "tax_rate_exists")

    await _rate(client, staff, CITY)
    listed = await client.get("/v1/tax-rates", params={"limit": 1}, headers=staff.headers)
    assert listed.status_code == 200, listed.text
    assert [item["code"] for item in listed.json()["items"]] == [STATE["code"]]
    rest = await client.get(
        "/v1/tax-rates", params={"limit": 1, "cursor": listed.json()["next_cursor"]}, headers=staff.headers
    )
    assert [item["code"] for item in rest.json()["items"]] == [CITY["code"]]

    fetched = await client.get(f"/v1/tax-rates/{CITY['code']}", headers=staff.headers)
    assert fetched.json()["jurisdiction"] == "US-CA, Los Ángeles"
    assert_problem(await client.get("/v1/tax-rates/nowhere", headers=staff.headers), 404, "tax_rate_not_found")

    archived = await client.post(f"/v1/tax-rates/{CITY['code']}/archive", headers=staff.headers)
    assert archived.status_code == 200, archived.text
    assert archived.json()["archived_at"] is not None
    twice = await client.post(f"/v1/tax-rates/{CITY['code']}/archive", headers=staff.headers)
    assert twice.json()["archived_at"] == archived.json()["archived_at"]
    assert_problem(await client.post("/v1/tax-rates/nowhere/archive", headers=staff.headers), 404)
    # Never edited: no PATCH.
    assert (await client.patch(f"/v1/tax-rates/{CITY['code']}", json={}, headers=staff.headers)).status_code == 405


async def test_only_staff_write_or_read_the_catalogue(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _rate(client, staff, STATE)
    assert_problem(await client.post("/v1/tax-rates", json=CITY, headers=admin.headers), 403)
    assert_problem(await client.get("/v1/tax-rates", headers=admin.headers), 403)
    assert_problem(await client.post(f"/v1/tax-rates/{STATE['code']}/archive", headers=admin.headers), 403)
    assert_problem(await _put(client, admin, tenant["id"], [STATE["code"]]), 403)


async def test_bad_rates_are_refused(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    for bad in (
        {**STATE, "rate_bps": 10_001},
        {**STATE, "rate_bps": -1},
        {**STATE, "code": "Not A Slug"},
        {**STATE, "name": "tab\there"},
        {**STATE, "jurisdiction": "x" * 201},
        {**STATE, "jurisdiction": "\u0085"},
        {**STATE, "extra": 1},
    ):
        response = await client.post("/v1/tax-rates", json=bad, headers=staff.headers)
        assert 400 <= response.status_code < 500, (bad, response.text)
        assert_problem(response, response.status_code)


async def test_a_tenants_list_is_checked_and_audited(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _rate(client, staff, STATE)
    await _rate(client, staff, CITY)
    await _rate(client, staff, {**STATE, "code": "most", "rate_bps": 9500})
    await _rate(client, staff, {**STATE, "code": "gone"})
    await client.post("/v1/tax-rates/gone/archive", headers=staff.headers)

    # Without a list: its single rate of old.
    before = await client.get(f"/v1/tenants/{tenant['id']}/tax-rates", headers=admin.headers)
    assert before.status_code == 200, before.text
    assert before.json()["codes"] == []
    assert before.json()["rates"] == [{"code": "tax", "name": "Tax", "rate_bps": 2000}]

    refusals = [
        (["nowhere"], 422, "unknown_tax_rate"),
        (["gone"], 409, "tax_rate_archived"),
        ([STATE["code"], STATE["code"]], 422, "duplicate_tax_rate"),
        ([STATE["code"], "most"], 422, "tax_rates_too_high"),  # 825 + 9500 > 10 000
        ([f"r{i}" for i in range(11)], 422, "too_many_tax_rates"),
    ]
    for codes, status, code in refusals:
        assert_problem(await _put(client, staff, tenant["id"], codes), status, code)
    assert_problem(await _put(client, staff, "00000000-0000-0000-0000-000000000000", [STATE["code"]]), 404)

    put = await _put(client, staff, tenant["id"], [CITY["code"], STATE["code"]])
    assert put.status_code == 200, put.text
    assert put.json()["codes"] == [CITY["code"], STATE["code"]]
    read = await client.get(f"/v1/tenants/{tenant['id']}/tax-rates", headers=admin.headers)
    assert read.json() == put.json()
    assert [rate["rate_bps"] for rate in read.json()["rates"]] == [250, 825]

    # An archived rate stays on the tenant that has it, and may be sent again with its list.
    await client.post(f"/v1/tax-rates/{CITY['code']}/archive", headers=staff.headers)
    kept = await _put(client, staff, tenant["id"], [STATE["code"], CITY["code"]])
    assert kept.status_code == 200, kept.text
    assert kept.json()["codes"] == [STATE["code"], CITY["code"]]

    events = await client.get(f"/v1/tenants/{tenant['id']}/audit-events", headers=staff.headers)
    actions = [event["action"] for event in events.json()["items"]]
    assert actions.count("tenant.tax_rates_changed") == 2

    # [] returns the tenant to its single rate.
    cleared = await _put(client, staff, tenant["id"], [])
    assert cleared.json()["rates"] == [{"code": "tax", "name": "Tax", "rate_bps": 2000}]


async def test_an_invoice_and_its_credit_notes_with_two_rates(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "flat-usd", [{"type": "flat", "name": "Fee", "amount_minor": 1015}], "USD")
    tenant = await factory.tenant(staff, currency="USD", tax_rate_bps=2000)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _rate(client, staff, STATE)
    await _rate(client, staff, CITY)
    assert (await _put(client, staff, tenant["id"], [STATE["code"], CITY["code"]])).status_code == 200

    response = await client.post(
        f"/v1/tenants/{tenant['id']}/subscriptions",
        json={"plan_code": "flat-usd", "billing_anchor": "anniversary"},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    [invoice] = await invoices(client, admin.headers, tenant["id"])
    # $10.15: 8.25 % = 83.7375 -> 84; 2.5 % = 25.375 -> 25; tax 109; total 1124.
    assert invoice["subtotal_minor"] == 1015
    assert invoice["taxes"] == [
        {"code": STATE["code"], "name": "State tax", "rate_bps": 825, "amount_minor": 84},
        {"code": CITY["code"], "name": "City tax", "rate_bps": 250, "amount_minor": 25},
    ]
    assert invoice["tax_minor"] == 109
    assert invoice["total_minor"] == 1124

    upcoming = await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=admin.headers)
    assert upcoming.status_code == 200, upcoming.text
    preview = upcoming.json()
    assert [tax["code"] for tax in preview["taxes"]] == [STATE["code"], CITY["code"]]
    assert preview["tax_minor"] == sum(tax["amount_minor"] for tax in preview["taxes"])
    assert preview["total_minor"] == preview["subtotal_minor"] + preview["tax_minor"]

    # Two notes of 562 (half each): the first takes back [508 revenue, 42 state, 12 city], the second the rest,
    # [507, 42, 13]; together exactly what the invoice booked per rate (billing.ledger.rules.credit_parts).
    for _ in range(2):
        note = await client.post(
            f"/v1/invoices/{invoice['id']}/credit-notes",
            json={"amount_minor": 562, "reason": "goodwill"},
            headers=staff.headers,
        )
        assert note.status_code == 201, note.text
    notes = await credit_notes(client, admin.headers, invoice["id"])
    assert [[tax["amount_minor"] for tax in note["taxes"]] for note in notes] == [[42, 12], [42, 13]]
    assert [tax["code"] for tax in notes[0]["taxes"]] == [STATE["code"], CITY["code"]]
