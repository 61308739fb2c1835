"""Small helpers of the billing API tests: the catalogue, subscriptions, invoices and usage, all over HTTP.

Each helper asserts the status it expects, so a test reads as the story it tells.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from httpx import AsyncClient, Response

Headers = dict[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


def today() -> date:
    return utcnow().date()


def at_midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def first_of_month(day: date) -> date:
    return day.replace(day=1)


def days_in_month(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def stamp(at: datetime) -> str:
    """RFC 3339 with a Z, to the second."""
    return at.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def half_up(value: Decimal) -> int:
    """The billing engine's one rounding rule, computed independently here."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


async def metric(
    client: AsyncClient, staff: Headers, code: str, aggregation: str = "count", field: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "name": code.replace("_", " ").title(), "aggregation": aggregation}
    if field is not None:
        body["field"] = field
    response = await client.post("/v1/metrics", json=body, headers=staff)
    assert response.status_code == 201, response.text
    return response.json()


def plan_body(code: str, charges: list[dict[str, Any]], currency: str = "EUR", **extra: Any) -> dict[str, Any]:
    return {"code": code, "name": code.title(), "currency": currency, "interval": "month", "charges": charges, **extra}


async def plan(
    client: AsyncClient, staff: Headers, code: str, charges: list[dict[str, Any]], currency: str = "EUR", **extra: Any
) -> dict[str, Any]:
    response = await client.post("/v1/plans", json=plan_body(code, charges, currency, **extra), headers=staff)
    assert response.status_code == 201, response.text
    return response.json()


async def subscribe(
    client: AsyncClient,
    headers: Headers,
    tenant_id: str,
    plan_code: str,
    seats: int = 1,
    start_at: datetime | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"plan_code": plan_code, "seats": seats}
    if start_at is not None:
        body["start_at"] = start_at.isoformat()
    response = await client.post(f"/v1/tenants/{tenant_id}/subscriptions", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def invoices(client: AsyncClient, headers: Headers, tenant_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/tenants/{tenant_id}/invoices", params={"limit": 100}, headers=headers)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    items: list[dict[str, Any]] = page["items"]
    return items


async def credit_notes(client: AsyncClient, headers: Headers, invoice_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/invoices/{invoice_id}/credit-notes", headers=headers)
    assert response.status_code == 200, response.text
    notes: list[dict[str, Any]] = response.json()
    return notes


async def post_usage(client: AsyncClient, headers: Headers, events: list[dict[str, Any]], **extra: Any) -> Response:
    return await client.post("/v1/usage", json={"events": events, **extra}, headers=headers)


async def usage_values(
    client: AsyncClient, headers: Headers, tenant_id: str, codes: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """metric code -> {metric_code, aggregation, value, amount_minor} over the open usage window.

    With `codes`, one request per metric (`?metric_code=`); without, the whole plan at once.
    """
    found: dict[str, dict[str, Any]] = {}
    for code in codes or [None]:
        params = {"metric_code": code} if code else {}
        response = await client.get(f"/v1/tenants/{tenant_id}/usage", params=params, headers=headers)
        assert response.status_code == 200, response.text
        found.update({item["metric_code"]: item for item in response.json()["metrics"]})
    return found


def event(key: str, metric_code: str, at: datetime | None = None, **fields: Any) -> dict[str, Any]:
    return {"idempotency_key": key, "metric_code": metric_code, "timestamp": stamp(at or utcnow()), **fields}
