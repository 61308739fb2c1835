"""The catalogue over HTTP: billable metrics (staff only) and versioned plans (staff add, any user reads)."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from tests.api._helpers import all_items, assert_problem, bearer, create_api_key
from tests.api.billing._support import at_midnight, first_of_month, metric, plan, plan_body, subscribe, today
from tests.factories import Factory

FLAT = {"type": "flat", "amount_minor": 1000}


# -- metrics --------------------------------------------------------------------------------------------


async def test_metrics_are_staff_only(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    body = {"code": "api_calls", "name": "API calls", "aggregation": "count"}

    assert_problem(await client.post("/v1/metrics", json=body, headers=admin.headers), 403, "staff_only")
    assert_problem(await client.get("/v1/metrics", headers=admin.headers), 403, "staff_only")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_admin")
    assert_problem(await client.post("/v1/metrics", json=body, headers=bearer(key)), 403, "staff_only")
    assert_problem(await client.post("/v1/metrics", json=body), 401)
    # Nothing was stored by the refused attempts.
    assert await all_items(client, "/v1/metrics", staff.headers) == []


async def test_metric_create_is_idempotent_by_definition(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    body = {"code": "storage_gb", "name": "Storage", "aggregation": "max", "field": "gb"}

    first = await client.post("/v1/metrics", json=body, headers=staff.headers)
    assert first.status_code == 201, first.text
    created = first.json()
    assert {k: created[k] for k in ("code", "name", "aggregation", "field")} == body

    again = await client.post("/v1/metrics", json=body, headers=staff.headers)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == created["id"]
    assert again.json() == created

    for changed in ({"name": "Disk"}, {"aggregation": "sum"}, {"field": "bytes"}):
        response = await client.post("/v1/metrics", json={**body, **changed}, headers=staff.headers)
        assert_problem(response, 409, "metric_exists")
    without_field = {k: v for k, v in body.items() if k != "field"}
    assert_problem(await client.post("/v1/metrics", json=without_field, headers=staff.headers), 409, "metric_exists")

    stored = await all_items(client, "/v1/metrics", staff.headers)
    assert [item["id"] for item in stored] == [created["id"]]
    assert stored[0]["name"] == "Storage"


async def test_metric_input_is_checked(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    unique = {"code": "users", "name": "Active users", "aggregation": "unique_count"}
    assert_problem(await client.post("/v1/metrics", json=unique, headers=staff.headers), 422)
    bad_aggregation = {"code": "x", "name": "X", "aggregation": "median"}
    assert_problem(await client.post("/v1/metrics", json=bad_aggregation, headers=staff.headers), 400)
    bad_code = {"code": "Has Space", "name": "X", "aggregation": "count"}
    assert_problem(await client.post("/v1/metrics", json=bad_code, headers=staff.headers), 400)
    unknown = {"code": "x", "name": "X", "aggregation": "count", "unit": "calls"}
    assert_problem(await client.post("/v1/metrics", json=unknown, headers=staff.headers), 400)
    assert await all_items(client, "/v1/metrics", staff.headers) == []

    ok = await client.post("/v1/metrics", json={**unique, "field": "user_id"}, headers=staff.headers)
    assert ok.status_code == 201, ok.text
    assert ok.json()["field"] == "user_id"


async def test_metrics_page_in_creation_order(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    codes = [f"m{i}" for i in range(5)]
    for code in codes:
        await metric(client, staff.headers, code)

    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 2}
    while True:
        response = await client.get("/v1/metrics", params=params, headers=staff.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        assert len(page["items"]) == (2 if pages < 3 else 1)
        seen += [item["code"] for item in page["items"]]
        if page["next_cursor"] is None:
            break
        params = {"limit": 2, "cursor": page["next_cursor"]}
    assert pages == 3
    assert seen == codes

    assert_problem(await client.get("/v1/metrics", params={"cursor": "not-a-cursor"}, headers=staff.headers), 422)
    assert_problem(await client.get("/v1/metrics", params={"limit": 0}, headers=staff.headers), 400)
    assert_problem(await client.get("/v1/metrics", params={"limit": 101}, headers=staff.headers), 400)


# -- plans: validation ----------------------------------------------------------------------------------


async def test_plan_creation_is_staff_only(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    response = await client.post("/v1/plans", json=plan_body("pro", [FLAT]), headers=admin.headers)
    assert_problem(response, 403, "staff_only")
    assert_problem(await client.get("/v1/plans/pro", headers=staff.headers), 404, "plan_not_found")


async def test_plan_input_is_checked(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")

    def metered(**fields: Any) -> dict[str, Any]:
        return {"type": "metered", "metric_code": "api_calls", **fields}

    cases: list[tuple[str, dict[str, Any], int, str | None]] = [
        (
            "unknown metric",
            plan_body("p", [metered(model="per_unit", metric_code="nope", unit_amount_minor="1")]),
            404,
            "metric_not_found",
        ),
        ("float amount", plan_body("p", [{"type": "flat", "amount_minor": 0.25}]), 422, "invalid_charge"),
        ("float unit amount", plan_body("p", [{"type": "per_seat", "unit_amount_minor": 2.5}]), 422, "invalid_charge"),
        ("negative amount", plan_body("p", [{"type": "flat", "amount_minor": -1}]), 422, "invalid_charge"),
        (
            "negative decimal text",
            plan_body("p", [{"type": "per_seat", "unit_amount_minor": "-0.5"}]),
            422,
            "invalid_charge",
        ),
        ("not a number", plan_body("p", [{"type": "flat", "amount_minor": "ten"}]), 422, "invalid_charge"),
        (
            "last tier bounded",
            plan_body(
                "p",
                [
                    metered(
                        model="graduated",
                        tiers=[{"up_to": 10, "unit_amount_minor": "1"}, {"up_to": 20, "unit_amount_minor": "0.5"}],
                    )
                ],
            ),
            422,
            "invalid_charge",
        ),
        (
            "tiers not increasing",
            plan_body(
                "p",
                [
                    metered(
                        model="volume",
                        tiers=[
                            {"up_to": 10, "unit_amount_minor": "1"},
                            {"up_to": 10, "unit_amount_minor": "0.5"},
                            {"up_to": None, "unit_amount_minor": "0.1"},
                        ],
                    )
                ],
            ),
            422,
            "invalid_charge",
        ),
        (
            "tiers decreasing",
            plan_body(
                "p",
                [
                    metered(
                        model="graduated",
                        tiers=[
                            {"up_to": 100, "unit_amount_minor": "1"},
                            {"up_to": 50, "unit_amount_minor": "0.5"},
                            {"up_to": None, "unit_amount_minor": "0.1"},
                        ],
                    )
                ],
            ),
            422,
            "invalid_charge",
        ),
        ("no tiers", plan_body("p", [metered(model="graduated", tiers=[])]), 422, "invalid_charge"),
        ("unknown charge type", plan_body("p", [{"type": "setup", "amount_minor": 1}]), 422, "invalid_charge"),
        ("unknown charge field", plan_body("p", [{**FLAT, "discount": 5}]), 422, "invalid_charge"),
        (
            "metric charged twice",
            plan_body(
                "p",
                [metered(model="per_unit", unit_amount_minor="1"), metered(model="per_unit", unit_amount_minor="2")],
            ),
            422,
            "invalid_charge",
        ),
        ("unknown currency", plan_body("p", [FLAT], currency="XXX"), 422, "unknown_currency"),
        ("lowercase currency", plan_body("p", [FLAT], currency="eur"), 400, None),
        ("unknown field", {**plan_body("p", [FLAT]), "discount_bps": 100}, 400, None),
        ("unknown interval", plan_body("p", [FLAT], interval="week"), 400, None),
        ("negative trial", plan_body("p", [FLAT], trial_days=-1), 400, None),
    ]
    for name, body, status, code in cases:
        response = await client.post("/v1/plans", json=body, headers=staff.headers)
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert_problem(response, status, code)

    # None of the refused definitions was stored.
    assert_problem(await client.get("/v1/plans/p", headers=staff.headers), 404, "plan_not_found")
    assert await all_items(client, "/v1/plans", staff.headers) == []


async def test_plan_amounts_are_exact_decimal_text(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    created = await plan(
        client,
        staff.headers,
        "exact",
        [
            {"type": "flat", "amount_minor": 1000},
            {"type": "per_seat", "unit_amount_minor": "250.50"},
            {
                "type": "metered",
                "metric_code": "api_calls",
                "model": "graduated",
                "tiers": [
                    {"up_to": "1000", "unit_amount_minor": "0.25"},
                    {"up_to": None, "unit_amount_minor": "0.1", "flat_amount_minor": 500},
                ],
            },
        ],
    )
    assert created["version"] == 1
    charges = created["charges"]
    assert charges[0]["amount_minor"] == "1000"
    assert charges[1]["unit_amount_minor"] == "250.5"
    assert charges[2]["tiers"] == [
        {"up_to": "1000", "unit_amount_minor": "0.25", "flat_amount_minor": "0"},
        {"up_to": None, "unit_amount_minor": "0.1", "flat_amount_minor": "500"},
    ]
    assert created["proration"] == {"upgrade": "immediate", "downgrade": "next_period"}


# -- plans: versions -------------------------------------------------------------------------------------


async def test_plan_versions(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    v1_body = plan_body("team", [{"type": "flat", "amount_minor": 1000}])
    first = await client.post("/v1/plans", json=v1_body, headers=staff.headers)
    assert first.status_code == 201, first.text
    v1 = first.json()
    assert v1["version"] == 1

    repeat = await client.post("/v1/plans", json=v1_body, headers=staff.headers)
    assert repeat.status_code == 200, repeat.text
    assert (repeat.json()["id"], repeat.json()["version"]) == (v1["id"], 1)

    # A subscription on version 1, from the 1st of this month (a whole period billed at once).
    tenant = await factory.tenant(staff)
    start = at_midnight(first_of_month(today()))
    subscription = await subscribe(client, staff.headers, tenant["id"], "team", start_at=start)
    assert subscription["plan_version"] == 1

    v2_body = plan_body("team", [{"type": "flat", "amount_minor": 2000}])
    second = await client.post("/v1/plans", json=v2_body, headers=staff.headers)
    assert second.status_code == 201, second.text
    v2 = second.json()
    assert v2["version"] == 2
    assert v2["id"] != v1["id"]
    assert v2["charges"][0]["amount_minor"] == "2000"

    repeat_v2 = await client.post("/v1/plans", json=v2_body, headers=staff.headers)
    assert repeat_v2.status_code == 200, repeat_v2.text
    assert repeat_v2.json()["version"] == 2

    # The existing subscription keeps version 1 and is billed at its price.
    response = await client.get(f"/v1/subscriptions/{subscription['id']}", headers=staff.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["plan_code"], response.json()["plan_version"]) == ("team", 1)
    upcoming = await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)
    assert upcoming.status_code == 200, upcoming.text
    assert [line["amount_minor"] for line in upcoming.json()["lines"]] == [1000]

    # A new subscription gets the latest version.
    other = await factory.tenant(staff)
    assert (await subscribe(client, staff.headers, other["id"], "team"))["plan_version"] == 2

    latest = await client.get("/v1/plans/team", headers=staff.headers)
    assert latest.status_code == 200, latest.text
    assert (latest.json()["id"], latest.json()["version"]) == (v2["id"], 2)
    old = await client.get("/v1/plans/team", params={"version": 1}, headers=staff.headers)
    assert old.status_code == 200, old.text
    assert old.json() == v1
    assert_problem(
        await client.get("/v1/plans/team", params={"version": 3}, headers=staff.headers), 404, "plan_not_found"
    )
    assert_problem(await client.get("/v1/plans/nothing", headers=staff.headers), 404, "plan_not_found")


async def test_any_authenticated_tenant_user_reads_a_plan(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    created = await plan(client, staff.headers, "basic", [FLAT])
    tenant = await factory.tenant(staff)
    readers = [
        (await factory.member(tenant["id"], "tenant_admin")).headers,
        (await factory.member(tenant["id"], "tenant_member")).headers,
        (await factory.member(tenant["id"], "billing_viewer")).headers,
        bearer((await create_api_key(client, staff.headers, tenant["id"], role="tenant_member"))[1]),
    ]
    for headers in readers:
        one = await client.get("/v1/plans/basic", headers=headers)
        assert one.status_code == 200, one.text
        assert one.json() == created
    assert_problem(await client.get("/v1/plans/basic"), 401)
    assert_problem(await client.get("/v1/plans"), 401)


async def test_plan_list_shows_each_code_at_its_latest_version(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    member = await factory.member(tenant["id"], "tenant_member")
    basic = await plan(client, staff.headers, "basic", [FLAT])
    await plan(client, staff.headers, "team", [{"type": "flat", "amount_minor": 1000}])
    team_v2 = await plan(client, staff.headers, "team", [{"type": "flat", "amount_minor": 2000}])

    for headers in (staff.headers, member.headers):
        listed = await all_items(client, "/v1/plans", headers, limit=1)
        assert [(item["code"], item["version"]) for item in listed] == [("basic", 1), ("team", 2)]
        assert [item["id"] for item in listed] == [basic["id"], team_v2["id"]]
        assert listed[1]["charges"][0]["amount_minor"] == "2000"


async def test_a_plan_price_stripe_cannot_charge_in_its_currency_is_refused(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    refused = [
        ("HUF", {"type": "flat", "amount_minor": 150050}),  # 1500.50 Ft: Stripe charges whole forints
        ("KWD", {"type": "flat", "amount_minor": 1005}),  # 1.005 KD: three-decimal amounts must end in 0
        ("KWD", {"type": "per_seat", "unit_amount_minor": 2501}),
        ("JOD", {"type": "flat", "amount_minor": 1000, "min_amount_minor": 1001}),
    ]
    for currency, charge in refused:
        response = await client.post("/v1/plans", json=plan_body("odd", [charge], currency), headers=staff.headers)
        body = assert_problem(response, 422, "amount_not_chargeable")
        assert currency in body["detail"], body
    # Amounts Stripe can charge: whole forints, fils ending in 0, whole krónur (ISO has no decimals for ISK).
    for code, currency, amount in (("huf", "HUF", 150000), ("kwd", "KWD", 1010), ("isk", "ISK", 1999)):
        made = await client.post(
            "/v1/plans",
            json=plan_body(code, [{"type": "flat", "amount_minor": amount}], currency),
            headers=staff.headers,
        )
        assert made.status_code == 201, made.text
    # Metered unit prices are not fixed amounts: their total is only known on the invoice.
    await client.post(
        "/v1/metrics", json={"code": "calls", "name": "Calls", "aggregation": "count"}, headers=staff.headers
    )
    metered = {"type": "metered", "metric_code": "calls", "model": "per_unit", "unit_amount_minor": "0.5"}
    made = await client.post("/v1/plans", json=plan_body("m", [metered], "KWD"), headers=staff.headers)
    assert made.status_code == 201, made.text
