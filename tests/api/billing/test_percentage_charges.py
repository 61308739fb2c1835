"""A percentage charge over HTTP: a plan taking 1.5 % + 30 cents of each payment (the first free, each fee
between 50 and 2000 cents), its usage and upcoming invoice, and the cycle invoice's metered line. The fees
are summed in PostgreSQL; the amounts are the worked example of tests/unit/billing/test_percentage.py."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from httpx import AsyncClient

from billing import limits, service
from billing.catalogue.rules import parse_charge
from billing.money import round_minor
from billing.rating import percentage_usage
from tests.api._helpers import assert_problem, bearer, create_api_key
from tests.api.billing._support import (
    event,
    invoices,
    metric,
    plan,
    plan_body,
    post_usage,
    subscribe,
    usage_values,
    utcnow,
)
from tests.factories import Factory

START = datetime(2026, 1, 15, tzinfo=UTC)
CHARGE = {
    "type": "metered",
    "name": "Payments",
    "metric_code": "payments",
    "model": "percentage",
    "rate": "1.5",
    "fixed_amount_minor": "30",
    "free_events": 1,
    "per_event_min_minor": "50",
    "per_event_max_minor": "2000",
}
# In occurrence order (sent shuffled): the first is free; 45 -> 50; 180; 3030 -> 2000; 113.325; 113.175.
VALUES = [10000, 1000, 10000, 200000, 5555, 5545]


async def test_a_percentage_charge_on_the_cycle_invoice(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "payments", "sum")
    await metric(client, staff.headers, "logins", "count")
    refused = await client.post(
        "/v1/plans",
        json=plan_body("cut-bad", [dict(CHARGE, metric_code="logins")], currency="USD"),
        headers=staff.headers,
    )
    assert_problem(refused, 422, "percentage_needs_sum_metric")
    bad_rate = await client.post(
        "/v1/plans", json=plan_body("cut-bad", [dict(CHARGE, rate="150")], currency="USD"), headers=staff.headers
    )
    assert_problem(bad_rate, 422, "invalid_charge")

    created = await plan(client, staff.headers, "cut", [{"type": "flat", "amount_minor": 1000}, CHARGE], "USD")
    assert created["charges"][1] == {**CHARGE, "rate": "1.5"}
    tenant = await factory.tenant(staff, currency="USD")
    subscription = await subscribe(client, staff.headers, tenant["id"], "cut", start_at=START)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    events = [
        event(f"p{i}", "payments", START + timedelta(days=2, hours=i), value=value) for i, value in enumerate(VALUES)
    ]
    sent = await post_usage(client, bearer(key), list(reversed(events)))
    assert sent.json() == {"accepted": 6, "duplicates": 0, "rejected": []}

    usage = (await usage_values(client, staff.headers, tenant["id"]))["payments"]
    assert (usage["aggregation"], usage["value"], usage["amount_minor"]) == ("sum", "232100", 2457)
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    [line] = [line for line in upcoming["lines"] if line["charge_kind"] == "metered"]
    assert (line["metric_code"], line["amount_minor"], line["unit_amount_minor"]) == ("payments", 2457, "2456.5")

    written = await service.bill_subscription(
        uuid.UUID(tenant["id"]), uuid.UUID(subscription["id"]), datetime(2026, 2, 1, 1, tzinfo=UTC), timedelta(0)
    )
    assert written == 1
    cycle = [invoice for invoice in await invoices(client, staff.headers, tenant["id"]) if invoice["kind"] == "cycle"]
    second = next(invoice for invoice in cycle if invoice["period_start"] == "2026-02-01T00:00:00Z")
    [metered] = [line for line in second["lines"] if line["charge_kind"] == "metered"]
    assert metered["amount_minor"] == 2457  # 2456.5 rounded once
    assert metered["description"].startswith("Payments: 232100 unit(s) over 6 event(s), the first 1 free")
    assert second["subtotal_minor"] == 2457 + 1000


async def test_the_fees_summed_in_postgresql_equal_the_rule_in_python(client: AsyncClient, factory: Factory) -> None:
    """Sixty payments with twelve-decimal values, sent shuffled: PostgreSQL's exact sum of clamped fees, free
    events counted in occurrence order, is billing.rating's rule over the same values to the last digit."""
    staff = await factory.staff()
    await metric(client, staff.headers, "payments", "sum")
    raw = dict(
        CHARGE,
        rate="2.345",
        fixed_amount_minor="0.125",
        free_events=3,
        per_event_min_minor="1",
        per_event_max_minor="900",
    )
    await plan(client, staff.headers, "cut", [raw], "USD")
    tenant = await factory.tenant(staff, currency="USD")
    await subscribe(client, staff.headers, tenant["id"], "cut", start_at=START)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    chance = random.Random(15)
    values = [Decimal(chance.randrange(0, 10**17)).scaleb(-12) for _ in range(60)]
    events = [
        event(f"q{i}", "payments", START + timedelta(minutes=i), value=str(value)) for i, value in enumerate(values)
    ]
    chance.shuffle(events)
    assert (await post_usage(client, bearer(key), events)).json()["accepted"] == 60

    expected = percentage_usage(parse_charge(raw, 0), values)
    usage = (await usage_values(client, staff.headers, tenant["id"]))["payments"]
    assert Decimal(usage["value"]) == expected.units
    assert usage["amount_minor"] == round_minor(expected.fees)
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    [line] = [line for line in upcoming["lines"] if line["charge_kind"] == "metered"]
    assert Decimal(line["unit_amount_minor"]) == expected.fees


async def test_a_per_event_fee_is_bounded_at_ingestion_so_the_cycle_bills(
    client: AsyncClient, factory: Factory
) -> None:
    """1 % + 10^12 per event: 10^15 bounds the line, so about a thousand events, whatever their values. Each
    event of 100 adds 1 + 10^12: the 1000th (10^15 + 1000) is refused, and the cycle bills the 999 others."""
    staff = await factory.staff()
    await metric(client, staff.headers, "payments", "sum")
    toll = dict(CHARGE, rate="1", fixed_amount_minor=str(limits.MAX_FLAT_MINOR), free_events=0)
    del toll["per_event_min_minor"], toll["per_event_max_minor"]
    await plan(client, staff.headers, "toll", [toll], "USD")
    tenant = await factory.tenant(staff, currency="USD")
    subscription = await subscribe(client, staff.headers, tenant["id"], "toll", start_at=START)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    batch = [event(f"t{i}", "payments", START + timedelta(days=1, seconds=i), value=100) for i in range(1000)]

    reply = (await post_usage(client, bearer(key), batch)).json()
    assert reply["accepted"] == 999
    assert [(item["index"], item["code"]) for item in reply["rejected"]] == [(999, "usage_limit_exceeded")]
    # Stored events count in a later batch too, even one of value 0.
    later = await post_usage(client, bearer(key), [event("zero", "payments", START + timedelta(days=2), value=0)])
    assert [item["code"] for item in later.json()["rejected"]] == ["usage_limit_exceeded"]
    line_minor = 999 * (10**12 + 1)
    assert (await usage_values(client, staff.headers, tenant["id"]))["payments"]["amount_minor"] == line_minor

    written = await service.bill_subscription(
        uuid.UUID(tenant["id"]), uuid.UUID(subscription["id"]), datetime(2026, 2, 1, 1, tzinfo=UTC), timedelta(0)
    )
    assert written == 1
    billed = await invoices(client, staff.headers, tenant["id"])
    [cycle] = [invoice for invoice in billed if invoice["period_start"] == "2026-02-01T00:00:00Z"]
    [metered] = [line for line in cycle["lines"] if line["charge_kind"] == "metered"]
    assert metered["amount_minor"] == line_minor <= limits.MAX_LINE_MINOR


async def test_free_events_are_counted_per_billing_period_across_a_plan_change(
    client: AsyncClient, factory: Factory
) -> None:
    """10 % of each payment, the first two of the billing period free. One payment, then a mid-period upgrade
    (which bills the window before it), then three payments: the first of them is the period's second, still
    free; the two others pay 100 each. The new window does not grant the two free payments again."""
    staff = await factory.staff()
    await metric(client, staff.headers, "payments", "sum")
    cut = {"type": "metered", "metric_code": "payments", "model": "percentage", "rate": "10", "free_events": 2}
    await plan(client, staff.headers, "cut", [{"type": "flat", "amount_minor": 1000}, cut], "USD")
    await plan(client, staff.headers, "cut-plus", [{"type": "flat", "amount_minor": 2000}, cut], "USD")
    tenant = await factory.tenant(staff, currency="USD")
    started = utcnow() - timedelta(minutes=2)
    subscription = await subscribe(client, staff.headers, tenant["id"], "cut", start_at=started)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    before = [event("before", "payments", started + timedelta(seconds=30), value=1000)]
    assert (await post_usage(client, bearer(key), before)).json()["accepted"] == 1

    changed = await client.post(
        f"/v1/subscriptions/{subscription['id']}/change", json={"plan_code": "cut-plus"}, headers=staff.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan_code"] == "cut-plus"
    after = [event(f"after{i}", "payments", utcnow() + timedelta(seconds=2), value=1000) for i in range(3)]
    assert (await post_usage(client, bearer(key), after)).json()["accepted"] == 3

    usage = (await usage_values(client, staff.headers, tenant["id"]))["payments"]
    assert (usage["value"], usage["amount_minor"]) == ("3000", 200)
    charge = parse_charge(cut, 0)
    assert percentage_usage(charge, [Decimal(1000)] * 3, earlier_events=1).fees == 200
    assert percentage_usage(charge, [Decimal(1000)] * 3).fees == 100  # the window alone: the bug this guards
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    [line] = [line for line in upcoming["lines"] if line["charge_kind"] == "metered"]
    assert line["amount_minor"] == 200
