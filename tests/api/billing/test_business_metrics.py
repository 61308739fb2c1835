"""The business gauges: active tenants, subscriptions by status, and MRR, ARR, customers and this month's trial
conversion by currency from the MRR history, worked out by hand."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from httpx import AsyncClient

from billing import service as billing
from billing.analytics.report import Month
from billing.business_metrics import BusinessGauges, Revenue, read_figures
from tests.api.billing._support import parse, plan, subscribe
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
    # team: 49.00 + 3 x 9.99 = 78.97 and 49.00 + 9.99 = 58.99; yearly: 1,000.00 / 12 = 83.33 each, rounded once
    # per tenant (3 x 83.33 = 249.99); the trial counts 0 and nobody's trial has ended.
    assert figures.revenue == {"EUR": Revenue(7897 + 5899 + 3 * 8333, 5, None), "USD": Revenue(4 * 1250, 1, None)}

    await BusinessGauges(interval=0).refresh_if_stale()
    scrape = (await client.get("/metrics")).text
    lines = {line for line in scrape.splitlines() if not line.startswith("#")}
    assert 'controlplane_mrr_minor_units{currency="EUR"} 38795.0' in lines
    assert 'controlplane_arr_minor_units{currency="EUR"} 465540.0' in lines
    assert 'controlplane_customers{currency="USD"} 1.0' in lines
    assert not [line for line in lines if line.startswith("controlplane_trial_conversion_ratio")]
    assert "controlplane_active_tenants 8.0" in lines
    assert 'controlplane_subscriptions{status="trialing"} 1.0' in lines


async def test_the_mrr_gauge_is_the_revenue_reports_sum_of_tenants_each_rounded_once(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    # 100.00 a year is 8.3333… a month, 8.33 for each tenant: three make 24.99, as the revenue report says.
    await plan(client, staff.headers, "tiny", [{"type": "flat", "amount_minor": 10000}], interval="year")
    for _ in range(3):
        tenant = await factory.tenant(staff)
        await subscribe(client, staff.headers, tenant["id"], "tiny")
    figures = await read_figures()
    assert figures.revenue["EUR"].mrr_minor == 3 * 833
    month = str(Month.of(datetime.now(UTC)))
    report = await client.get(
        "/v1/analytics/revenue", params={"from": month, "to": month, "currency": "EUR"}, headers=staff.headers
    )
    [figures_of_the_month] = report.json()["months"]
    assert (figures_of_the_month["mrr_end_minor"], figures_of_the_month["customers_end"]) == (3 * 833, 3)


async def test_trial_conversion_counts_the_trials_ended_this_month(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    converting, canceling = await factory.tenant(staff), await factory.tenant(staff)
    converted = await subscribe(client, staff.headers, converting["id"], "trial")
    canceled = await subscribe(client, staff.headers, canceling["id"], "trial")
    response = await client.post(
        f"/v1/subscriptions/{canceled['id']}/cancel", json={"at_period_end": False}, headers=staff.headers
    )
    assert response.status_code == 200, response.text
    assert (await read_figures()).revenue["EUR"].trial_conversion == 0  # one ended: canceled

    # The other converts at its trial's end, billed by the cycle; read an hour later.
    trial_end = parse(converted["trial_end"])
    await billing.bill_subscription(uuid.UUID(converting["id"]), uuid.UUID(converted["id"]), trial_end, timedelta(0))
    then = trial_end + timedelta(hours=1)
    revenue = (await read_figures(then)).revenue["EUR"]
    # Both ended in the same month (1 of 2 converted) unless the trial's end fell in the next month.
    same_month = Month.of(then) == Month.of(datetime.now(UTC))
    assert revenue == Revenue(5000, 1, Fraction(1, 2) if same_month else Fraction(1))

    # Scraped now, the conversion (at the trial's end) is still ahead: 0 of the 1 trial ended so far.
    await BusinessGauges(interval=0).refresh_if_stale()
    scrape = (await client.get("/metrics")).text
    assert 'controlplane_trial_conversion_ratio{currency="EUR"} 0.0' in scrape.splitlines()
