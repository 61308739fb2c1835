"""`GET /v1/analytics/revenue`: a worked example over three months through the API, the CSV, a reseller's view
of its own tenants only, and who may read what."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from httpx import AsyncClient

from billing.analytics.report import Month
from tests.api._helpers import assert_problem
from tests.api.billing._support import plan, subscribe
from tests.api.partners.test_resellers import _sign_up
from tests.conftest import connect_as_inspector
from tests.factories import Factory

URL = "/v1/analytics/revenue"


async def _post(client: AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]) -> None:
    response = await client.post(path, json=body, headers=headers)
    assert response.status_code in (200, 201), response.text


async def test_three_months_worked_by_hand(client: AsyncClient, factory: Factory, stack_env: dict[str, str]) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "seats", [{"type": "per_seat", "unit_amount_minor": 1000}])  # 10.00 a seat
    current = Month.of(datetime.now(UTC))
    first, middle = current.previous().previous(), current.previous()
    a, b, c = [await factory.tenant(staff) for _ in range(3)]
    # M-2: A starts (imported) with 1 seat: new 1000. M-1: C starts: new 1000.
    a_sub = await subscribe(client, staff.headers, a["id"], "seats", start_at=first.start)
    c_sub = await subscribe(client, staff.headers, c["id"], "seats", start_at=middle.start)
    # This month: A goes to 3 seats (expansion 2000), B starts with 2 (new 2000), C cancels (churn 1000).
    await _post(client, staff.headers, f"/v1/subscriptions/{a_sub['id']}/change", {"seats": 3})
    await subscribe(client, staff.headers, b["id"], "seats", seats=2)
    await _post(client, staff.headers, f"/v1/subscriptions/{c_sub['id']}/cancel", {"at_period_end": False})

    params = {"from": str(first), "to": str(current), "currency": "EUR"}
    response = await client.get(URL, params=params, headers=staff.headers)
    assert response.status_code == 200, response.text
    months = response.json()["months"]
    assert [m["month"] for m in months] == [str(first), str(middle), str(current)]
    assert {
        key: months[0][key]
        for key in ("mrr_start_minor", "new_minor", "mrr_end_minor", "new_customers", "logo_churn_rate", "nrr")
    } == {"mrr_start_minor": 0, "new_minor": 1000, "mrr_end_minor": 1000, "new_customers": 1,
          "logo_churn_rate": None, "nrr": None}  # fmt: skip
    assert (months[1]["mrr_start_minor"], months[1]["new_minor"], months[1]["mrr_end_minor"]) == (1000, 1000, 2000)
    this = months[2]
    assert {key: this[key] for key in this if key != "clv_minor"} == {
        "month": str(current),
        "mrr_start_minor": 2000,
        "new_minor": 2000,
        "expansion_minor": 2000,
        "reactivation_minor": 0,
        "contraction_minor": 0,
        "churned_minor": 1000,
        "mrr_end_minor": 5000,
        "arr_minor": 60000,
        "customers_start": 2,
        "customers_end": 2,
        "new_customers": 1,
        "reactivated_customers": 0,
        "churned_customers": 1,
        "logo_churn_rate": "0.5000",  # 1 of 2
        "gross_mrr_churn_rate": "0.5000",  # 1000 / 2000
        "net_mrr_churn_rate": "-0.5000",  # (1000 - 2000) / 2000
        "nrr": "1.5000",  # (A 3000 + C 0) / 2000
        "grr": "0.5000",  # (A capped at 1000 + C 0) / 2000
        "arpa_minor": 2500,
        "trials_started": 0,
        "trials_converted": 0,
        "trials_canceled": 0,
        "trial_conversion_rate": None,
    }

    csv = await client.get(URL, params=params, headers={**staff.headers, "Accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("month,mrr_start_minor,new_minor") and len(lines) == 4
    assert lines[3].startswith(f"{current},2000,2000,2000,0,0,1000,5000,60000,")

    # A reseller's admin sees its own tenant only (B, owned by it); a stranger finds no such reseller.
    founder = await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute("update tenants set reseller_id = $1 where id = $2", reseller, b["id"])
    finally:
        await inspector.close()
    own = await client.get(URL, params=params | {"reseller_id": reseller}, headers=founder.headers)
    assert own.status_code == 200, own.text
    assert [m["mrr_end_minor"] for m in own.json()["months"]] == [0, 0, 2000]
    stranger = await factory.user()
    assert_problem(await client.get(URL, params=params | {"reseller_id": reseller}, headers=stranger.headers), 404)


async def test_who_may_ask_and_what_is_refused(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    current = str(Month.of(datetime.now(UTC)))
    params = {"from": current, "to": current, "currency": "EUR"}
    assert_problem(await client.get(URL, params=params, headers=admin.headers), 403, "staff_only")
    assert_problem(await client.get(URL, params=params), 401)
    for malformed in ("2026-13", "20x6-01", "2026-1", "2026-01-01"):
        response = await client.get(URL, params=params | {"from": malformed}, headers=staff.headers)
        assert_problem(response, 400, "validation_error")
    refused = [
        ({"from": "1999-12"}, "invalid_month"),  # before the history can begin
        ({"to": "9999-12"}, "invalid_report_range"),  # after the current month
        ({"from": "2020-01"}, "invalid_report_range"),  # more than 36 months
        ({"from": "2099-01", "to": "2020-01"}, "invalid_report_range"),
    ]
    for changed, code in refused:
        assert_problem(await client.get(URL, params=params | changed, headers=staff.headers), 422, code)
    assert_problem(await client.get(URL, params=params | {"currency": "eur"}, headers=staff.headers), 400)
