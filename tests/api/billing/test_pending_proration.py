"""Proration that waits for the next invoice: an immediate downgrade's credit, and what happens to it when
the subscription is cancelled before that invoice exists."""

from __future__ import annotations

import calendar
import uuid
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from httpx import AsyncClient

from billing.invoices.cycle import bill_subscription
from tests.api.billing._support import invoices, plan, subscribe, today
from tests.factories import Factory


def _prorated(amount: int) -> int:
    day = today()
    days = calendar.monthrange(day.year, day.month)[1]
    remaining = days - day.day + 1
    return int((Decimal(amount) * remaining / days).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _as_billed(invoice: dict[str, Any]) -> tuple[Any, ...]:
    """What the cycle's invoice and the upcoming invoice before it must agree on (not ids, numbers or dates)."""
    line_keys = ("description", "charge_kind", "quantity", "unit_amount_minor", "amount_minor", "period_start")
    lines = tuple((*(line[key] for key in line_keys), line["period_end"]) for line in invoice["lines"])
    figures = ("kind", "currency", "period_start", "period_end", "subtotal_minor", "discount_minor", "tax_minor")
    return (*(invoice[key] for key in figures), invoice["total_minor"], lines)


async def test_the_upcoming_invoice_carries_a_credit_larger_than_its_charges_as_the_cycle_then_does(
    client: AsyncClient, factory: Factory
) -> None:
    """An immediate downgrade's credit outweighs the next period's charge: the upcoming invoice is 0 with the
    excess carried to the invoice after it (never a negative total), and the cycle writes exactly that."""
    staff = await factory.staff()
    big, small = f"big-{uuid.uuid4().hex[:8]}", f"small-{uuid.uuid4().hex[:8]}"
    immediate = {"upgrade": "immediate", "downgrade": "immediate"}
    await plan(client, staff.headers, big, [{"type": "flat", "amount_minor": 10000}], proration=immediate)
    await plan(client, staff.headers, small, [{"type": "flat", "amount_minor": 100}], proration=immediate)
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    subscription = await subscribe(client, staff.headers, tenant["id"], big)
    changed = await client.post(
        f"/v1/subscriptions/{subscription['id']}/change", json={"plan_code": small}, headers=staff.headers
    )
    assert changed.status_code == 200, changed.text
    credit = _prorated(100) - _prorated(10000)
    assert credit + 100 < 0  # the pending credit is larger than the next period's charge

    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    assert (upcoming["status"], upcoming["subtotal_minor"], upcoming["tax_minor"]) == ("upcoming", 0, 0)
    assert (upcoming["total_minor"], upcoming["amount_due_minor"]) == (0, 0)
    assert upcoming["lines"][-1]["description"] == "Credit carried to the next invoice"
    assert upcoming["lines"][-1]["amount_minor"] == -(credit + 100)

    boundary = datetime.fromisoformat(changed.json()["current_period_end"])
    assert await bill_subscription(uuid.UUID(tenant["id"]), uuid.UUID(subscription["id"]), boundary, timedelta(0)) == 1
    [billed] = [
        each
        for each in await invoices(client, staff.headers, tenant["id"])
        if each["period_start"] == upcoming["period_start"]
    ]
    assert _as_billed(billed) == _as_billed(upcoming)
    # The credit carried waits for the invoice after, as the upcoming invoice now shows.
    after = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    carried = [(line["description"], line["amount_minor"]) for line in after["lines"] if line["amount_minor"] < 0]
    assert carried == [("Credit carried from an earlier invoice", credit + 100)]
    assert after["total_minor"] == 0  # 100 of it pays the next period too, the rest is carried again


async def test_cancel_after_an_immediate_downgrade_credits_what_was_paid_for_the_rest_of_the_period(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    immediate = {"upgrade": "immediate", "downgrade": "immediate"}
    await plan(client, staff.headers, "big", [{"type": "flat", "amount_minor": 3100}], proration=immediate)
    await plan(client, staff.headers, "small", [{"type": "flat", "amount_minor": 1550}], proration=immediate)
    tenant = await factory.tenant(staff)
    subscription = await subscribe(client, staff.headers, tenant["id"], "big")
    invoices_url = f"/v1/tenants/{tenant['id']}/invoices"
    [first] = (await client.get(invoices_url, headers=staff.headers)).json()["items"]
    assert first["total_minor"] == _prorated(3100)

    changed = await client.post(
        f"/v1/subscriptions/{subscription['id']}/change", json={"plan_code": "small"}, headers=staff.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["plan_code"] == "small"
    # The downgrade's credit and the smaller charge wait for the next invoice: nothing is billed now.
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    assert [line["amount_minor"] for line in upcoming["lines"] if line["charge_kind"] == "proration"] == [
        -_prorated(3100),
        _prorated(1550),
    ]

    canceled = await client.post(
        f"/v1/subscriptions/{subscription['id']}/cancel", json={"at_period_end": False}, headers=staff.headers
    )
    assert canceled.status_code == 200, canceled.text
    # Unused time on the small plan plus the downgrade's net credit: all the big plan's rest of the period.
    notes = (await client.get(f"/v1/invoices/{first['id']}/credit-notes", headers=staff.headers)).json()
    assert sum(note["amount_minor"] for note in notes) == _prorated(3100)
    invoices = (await client.get(invoices_url, headers=staff.headers)).json()["items"]
    assert [invoice["id"] for invoice in invoices] == [first["id"]]
    assert invoices[0]["amount_due_minor"] == 0
