"""The billing engine end to end through the API: catalogue, a subscription, usage, invoices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from tests.api._helpers import create_api_key
from tests.factories import Factory


async def _catalogue(client: AsyncClient, staff_headers: dict[str, str]) -> None:
    response = await client.post(
        "/v1/metrics", json={"code": "api_calls", "name": "API calls", "aggregation": "count"}, headers=staff_headers
    )
    assert response.status_code == 201, response.text
    response = await client.post(
        "/v1/plans",
        json={
            "code": "pro",
            "name": "Pro",
            "currency": "EUR",
            "interval": "month",
            "charges": [
                {"type": "flat", "amount_minor": 1000},
                {"type": "per_seat", "unit_amount_minor": "250"},
                {"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "0.5"},
            ],
        },
        headers=staff_headers,
    )
    assert response.status_code == 201, response.text


async def test_subscribe_meter_and_invoice(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff.headers)
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    start = datetime(2026, 1, 15, tzinfo=UTC)
    response = await client.post(
        f"/v1/tenants/{tenant['id']}/subscriptions",
        json={"plan_code": "pro", "seats": 2, "start_at": start.isoformat()},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    subscription: dict[str, Any] = response.json()
    assert subscription["status"] == "active"
    assert subscription["current_period_start"].startswith("2026-01-15")
    assert subscription["current_period_end"].startswith("2026-02-01")

    invoices = (await client.get(f"/v1/tenants/{tenant['id']}/invoices", headers=staff.headers)).json()["items"]
    assert len(invoices) == 1
    first = invoices[0]
    # 1000 x 17/31 = 548.39 -> 548; 2 x 250 x 17/31 = 274.19 -> 274; tax 20 % of 822 = 164.4 -> 164.
    assert [line["amount_minor"] for line in first["lines"]] == [548, 274]
    assert (first["subtotal_minor"], first["tax_minor"], first["total_minor"]) == (822, 164, 986)
    assert first["number"] == f"{tenant['slug'].upper()}-000001"
    assert first["status"] == "finalized"

    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    events = [
        {"idempotency_key": f"e{i}", "metric_code": "api_calls", "timestamp": "2026-01-20T10:00:00Z"} for i in range(3)
    ]
    events.append({"idempotency_key": "late", "metric_code": "api_calls", "timestamp": "2026-01-01T00:00:00Z"})
    response = await client.post("/v1/usage", json={"events": events}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["accepted"] == 3
    assert reply["rejected"] == [{"index": 3, "code": "period_closed", "detail": reply["rejected"][0]["detail"]}]

    usage = (await client.get(f"/v1/tenants/{tenant['id']}/usage", headers=staff.headers)).json()
    assert usage["metrics"][0]["value"] == "3"
    assert usage["metrics"][0]["amount_minor"] == 2  # 3 x 0.5 = 1.5 -> 2

    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    assert [line["amount_minor"] for line in upcoming["lines"]] == [2, 1000, 500]

    from billing import service

    report = await service.run_cycle(datetime(2026, 2, 1, 2, tzinfo=UTC), grace=timedelta(hours=1))
    assert report.invoices_created == 1
    again = await service.run_cycle(datetime(2026, 2, 1, 2, tzinfo=UTC), grace=timedelta(hours=1))
    assert again.invoices_created == 0
    invoices = (await client.get(f"/v1/tenants/{tenant['id']}/invoices", headers=staff.headers)).json()["items"]
    assert len(invoices) == 2
    assert invoices[1]["number"].endswith("-000002")
    assert [line["amount_minor"] for line in invoices[1]["lines"]] == [2, 1000, 500]
