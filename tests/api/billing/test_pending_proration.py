"""Proration that waits for the next invoice: an immediate downgrade's credit, and what happens to it when
the subscription is cancelled before that invoice exists."""

from __future__ import annotations

import calendar
from decimal import ROUND_HALF_UP, Decimal

from httpx import AsyncClient

from tests.api.billing._support import plan, subscribe, today
from tests.factories import Factory


def _prorated(amount: int) -> int:
    day = today()
    days = calendar.monthrange(day.year, day.month)[1]
    remaining = days - day.day + 1
    return int((Decimal(amount) * remaining / days).quantize(Decimal(1), rounding=ROUND_HALF_UP))


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
