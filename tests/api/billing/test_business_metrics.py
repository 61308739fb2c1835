"""The business gauges: active tenants, subscriptions by status and MRR by currency, worked out by hand."""

from __future__ import annotations

from typing import Any

from httpx import AsyncClient

from billing.business_metrics import BusinessGauges, read_figures
from tests.api.billing._support import plan, subscribe
from tests.factories import Factory


async def test_mrr_and_counts_match_a_hand_worked_catalogue(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    # EUR: 49.00 flat + 9.99 a seat a month; 1,000.00 a year flat (83.333… a month); a 14-day trial (not MRR).
    await plan(
        client,
        staff.headers,
        "team",
        [{"type": "flat", "amount_minor": 4900}, {"type": "per_seat", "unit_amount_minor": 999}],
    )
    await plan(client, staff.headers, "yearly", [{"type": "flat", "amount_minor": 100000}], interval="year")
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    await plan(client, staff.headers, "dollars", [{"type": "per_seat", "unit_amount_minor": 1250}], currency="USD")
    subscriptions = [
        ("team", 3),
        ("team", 1),
        ("yearly", 1),
        ("yearly", 1),
        ("yearly", 1),
        ("trial", 1),
        ("dollars", 4),
    ]
    for code, seats in subscriptions:
        tenant = await factory.tenant(staff, currency="USD" if code == "dollars" else "EUR")
        await subscribe(client, staff.headers, tenant["id"], code, seats=seats)
    await factory.tenant(staff)  # active, with no subscription

    figures = await read_figures()
    assert figures.active_tenants == 8
    assert figures.subscriptions == {"trialing": 1, "active": 6, "past_due": 0, "paused": 0}
    # team: 2 x 49.00 + 4 seats x 9.99 = 137.96; yearly: 3 x 1,000.00 / 12 = 250.00 exactly.
    assert figures.mrr_minor == {"EUR": 13796 + 25000, "USD": 4 * 1250}

    await BusinessGauges(interval=0).refresh_if_stale()
    scrape = (await client.get("/metrics")).text
    lines = {line for line in scrape.splitlines() if not line.startswith("#")}
    assert 'controlplane_mrr_minor_units{currency="EUR"} 38796.0' in lines
    assert "controlplane_active_tenants 8.0" in lines
    assert 'controlplane_subscriptions{status="trialing"} 1.0' in lines


async def test_one_third_of_a_yearly_price_is_rounded_once_per_currency(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    # 100.00 a year is 8.3333… a month: three subscriptions make 25.00, not 3 x 8.33 = 24.99.
    await plan(client, staff.headers, "tiny", [{"type": "flat", "amount_minor": 10000}], interval="year")
    for _ in range(3):
        tenant = await factory.tenant(staff)
        await subscribe(client, staff.headers, tenant["id"], "tiny")
    figures: Any = await read_figures()
    assert figures.mrr_minor == {"EUR": 2500}
