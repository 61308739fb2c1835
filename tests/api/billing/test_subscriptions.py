"""Subscriptions over HTTP: starting one, trials, seat changes with proration, cancelling and resuming.

Proration runs on the real current date, so expected amounts are computed here from the period the API
returns and today's UTC date (Decimal, ROUND_HALF_UP), never copied from the response.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from httpx import AsyncClient

from billing import service as billing
from controlplane.core.db import tenant_tx
from tests.api._helpers import all_items, assert_problem, audit_actions, bearer, create_api_key
from tests.api.billing._support import (
    at_midnight,
    credit_notes,
    days_in_month,
    event,
    first_of_month,
    half_up,
    invoices,
    metric,
    parse,
    plan,
    post_usage,
    subscribe,
    today,
    usage_values,
    utcnow,
)
from tests.factories import Actor, Factory

SEAT = 999  # minor units a seat a month


async def _catalogue(client: AsyncClient, staff: Actor) -> None:
    await plan(client, staff.headers, "team", [{"type": "per_seat", "unit_amount_minor": SEAT}])
    await plan(client, staff.headers, "basic", [{"type": "per_seat", "unit_amount_minor": 100}])
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    await plan(client, staff.headers, "dollars", [{"type": "flat", "amount_minor": 5000}], currency="USD")


def _remaining(subscription: dict[str, Any]) -> tuple[int, int]:
    """(days from today to the period's end, days of the whole calendar month the period lies in)."""
    end = parse(subscription["current_period_end"]).date()
    start = parse(subscription["current_period_start"]).date()
    return (end - today()).days, days_in_month(start)


async def _post(client: AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any] | None = None) -> Any:
    return await client.post(path, json=body if body is not None else {}, headers=headers)


# -- creating -------------------------------------------------------------------------------------------


async def test_create_rules(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}/subscriptions"
    now = utcnow()

    past = {"plan_code": "team", "start_at": (now - timedelta(days=2)).isoformat()}
    assert_problem(await client.post(url, json=past, headers=admin.headers), 403, "past_start_forbidden")
    future = {"plan_code": "team", "start_at": (now + timedelta(minutes=30)).isoformat()}
    assert_problem(await client.post(url, json=future, headers=admin.headers), 422, "invalid_start")
    assert_problem(await client.post(url, json=future, headers=staff.headers), 422, "invalid_start")
    naive = {"plan_code": "team", "start_at": now.replace(tzinfo=None).isoformat()}
    assert_problem(await client.post(url, json=naive, headers=staff.headers), 422, "invalid_start")
    other_currency = {"plan_code": "dollars"}
    assert_problem(await client.post(url, json=other_currency, headers=admin.headers), 422, "currency_mismatch")
    assert_problem(await client.post(url, json={"plan_code": "nothing"}, headers=admin.headers), 404, "plan_not_found")
    assert_problem(await client.post(url, json={"plan_code": "team", "seats": 0}, headers=admin.headers), 400)
    for role in ("tenant_member", "billing_viewer"):
        someone = await factory.member(tenant["id"], role)
        assert_problem(await client.post(url, json={"plan_code": "team"}, headers=someone.headers), 403)
    # None of the refusals left a subscription or an invoice behind.
    assert await all_items(client, url, staff.headers) == []
    assert await invoices(client, staff.headers, tenant["id"]) == []

    created = await subscribe(client, admin.headers, tenant["id"], "team", seats=2)
    assert created["status"] == "active"
    assert (created["plan_code"], created["plan_version"], created["seats"]) == ("team", 1, 2)
    assert created["tenant_id"] == tenant["id"]
    assert parse(created["current_period_start"]) == at_midnight(today())
    next_first = at_midnight((first_of_month(today()) + timedelta(days=32)).replace(day=1))
    assert parse(created["current_period_end"]) == next_first
    assert created["trial_end"] is None
    assert (created["cancel_at_period_end"], created["canceled_at"]) == (False, None)
    assert (created["pending_plan_code"], created["pending_seats"]) == (None, None)

    # The first (partial) period is billed at once.
    remaining, full = _remaining(created)
    [first] = await invoices(client, staff.headers, tenant["id"])
    assert first["status"] == "finalized"
    assert [line["amount_minor"] for line in first["lines"]] == [half_up(Decimal(2 * SEAT) * remaining / full)]

    again = await client.post(url, json={"plan_code": "basic"}, headers=admin.headers)
    assert_problem(again, 409, "subscription_exists")
    listed = await all_items(client, url, admin.headers)
    assert [item["id"] for item in listed] == [created["id"]]


async def test_trial(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")

    created = await subscribe(client, admin.headers, tenant["id"], "trial")
    assert created["status"] == "trialing"
    trial_end = at_midnight(today()) + timedelta(days=14)
    assert parse(created["trial_end"]) == trial_end
    assert parse(created["current_period_end"]) == trial_end
    assert await invoices(client, staff.headers, tenant["id"]) == []

    # Changing seats during a trial applies at once and bills nothing.
    response = await _post(client, admin.headers, f"/v1/subscriptions/{created['id']}/change", {"seats": 4})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["seats"]) == ("trialing", 4)
    assert response.json()["pending_seats"] is None
    assert await invoices(client, staff.headers, tenant["id"]) == []

    # Cancelling a trial ends it without any invoice or credit note.
    response = await _post(client, admin.headers, f"/v1/subscriptions/{created['id']}/cancel", {"at_period_end": False})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"
    assert await invoices(client, staff.headers, tenant["id"]) == []


# -- changing -------------------------------------------------------------------------------------------


async def test_seat_upgrade_prorates_at_once(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    admin = await factory.member(tenant["id"], "tenant_admin")
    # From the 15th of last month: a prorated first invoice; the change first bills this month's boundary.
    last_month = first_of_month(first_of_month(today()) - timedelta(days=1))
    start = at_midnight(last_month.replace(day=15))
    created = await subscribe(client, staff.headers, tenant["id"], "team", seats=2, start_at=start)
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1

    response = await _post(client, admin.headers, f"/v1/subscriptions/{created['id']}/change", {"seats": 5})
    assert response.status_code == 200, response.text
    changed = response.json()
    assert (changed["seats"], changed["status"], changed["plan_code"]) == (5, "active", "team")
    assert (changed["pending_plan_code"], changed["pending_seats"]) == (None, None)
    assert parse(changed["current_period_start"]) == at_midnight(first_of_month(today()))

    # Ordered by number: the cycle and change invoices are written in one transaction.
    first, cycle, change = sorted(await invoices(client, staff.headers, tenant["id"]), key=lambda i: i["number"])
    days_last_month = days_in_month(last_month)
    first_amount = half_up(Decimal(2 * SEAT) * (days_last_month - 14) / days_last_month)
    assert [line["amount_minor"] for line in first["lines"]] == [first_amount]
    # This month's boundary billed 2 seats for the whole month before the change.
    assert [(line["charge_kind"], line["quantity"], line["amount_minor"]) for line in cycle["lines"]] == [
        ("per_seat", "2", 2 * SEAT)
    ]

    remaining, full = _remaining(changed)
    credit = half_up(-Decimal(2 * SEAT) * remaining / full)
    charge = half_up(Decimal(5 * SEAT) * remaining / full)
    assert credit < 0 < charge
    lines = change["lines"]
    assert [
        (line["charge_kind"], line["quantity"], line["unit_amount_minor"], line["amount_minor"]) for line in lines
    ] == [
        ("proration", "2", str(SEAT), credit),
        ("proration", "5", str(SEAT), charge),
    ]
    assert lines[0]["description"].startswith("Unused time on")
    assert lines[1]["description"].startswith("Remaining time on")
    assert all(f"({remaining}/{full} days)" in line["description"] for line in lines)
    assert all(parse(line["period_start"]) == at_midnight(today()) for line in lines)
    assert all(parse(line["period_end"]) == parse(changed["current_period_end"]) for line in lines)
    subtotal = credit + charge
    tax = half_up(Decimal(subtotal) * 2000 / 10000)
    assert (change["subtotal_minor"], change["tax_minor"], change["total_minor"]) == (subtotal, tax, subtotal + tax)
    assert change["status"] == "finalized"
    assert [invoice["number"] for invoice in (first, cycle, change)] == [
        f"{tenant['slug'].upper()}-00000{n}" for n in (1, 2, 3)
    ]

    # The same change again converges: nothing more is billed.
    again = await _post(client, admin.headers, f"/v1/subscriptions/{created['id']}/change", {"seats": 5})
    assert again.status_code == 200, again.text
    assert again.json()["seats"] == 5
    assert len(await invoices(client, staff.headers, tenant["id"])) == 3


async def test_downgrade_waits_for_the_next_period(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    created = await subscribe(client, admin.headers, tenant["id"], "team", seats=5)
    url = f"/v1/subscriptions/{created['id']}/change"

    response = await _post(client, admin.headers, url, {"seats": 3})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["seats"], body["pending_seats"], body["pending_plan_code"]) == (5, 3, "team")
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=admin.headers)).json()
    assert [(line["quantity"], line["amount_minor"]) for line in upcoming["lines"]] == [("3", 3 * SEAT)]

    response = await _post(client, admin.headers, url, {"plan_code": "basic", "seats": 5})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["plan_code"], body["seats"], body["pending_plan_code"], body["pending_seats"]) == (
        "team",
        5,
        "basic",
        5,
    )
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1

    # Asking for what it has now drops the scheduled change.
    response = await _post(client, admin.headers, url, {"plan_code": "team", "seats": 5})
    assert response.status_code == 200, response.text
    assert (response.json()["pending_plan_code"], response.json()["pending_seats"]) == (None, None)

    assert_problem(await _post(client, admin.headers, url, {"plan_code": "dollars"}), 422, "currency_mismatch")
    assert_problem(await _post(client, admin.headers, url, {"plan_code": "nothing"}), 404, "plan_not_found")
    assert_problem(await _post(client, admin.headers, url, {"seats": 0}), 400)
    assert_problem(await _post(client, admin.headers, url, {"seats": 2, "status": "paused"}), 400)
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1


# -- cancelling and resuming ----------------------------------------------------------------------------


async def test_cancel_at_period_end_and_resume(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    created = await subscribe(client, admin.headers, tenant["id"], "team")
    base = f"/v1/subscriptions/{created['id']}"

    for _ in range(2):  # the second time answers as it is
        response = await _post(client, admin.headers, f"{base}/cancel", {"at_period_end": True})
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["cancel_at_period_end"]) == ("active", True)
        assert response.json()["canceled_at"] is None
    assert (await client.get(base, headers=admin.headers)).json()["cancel_at_period_end"] is True

    for _ in range(2):
        response = await _post(client, admin.headers, f"{base}/resume")
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["cancel_at_period_end"]) == ("active", False)
    assert (await client.get(base, headers=admin.headers)).json()["cancel_at_period_end"] is False
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1
    assert (
        await credit_notes(client, admin.headers, (await invoices(client, staff.headers, tenant["id"]))[0]["id"]) == []
    )


async def test_cancel_now_credits_the_unused_time(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    start = at_midnight(first_of_month(today()))
    created = await subscribe(client, staff.headers, tenant["id"], "team", seats=3, start_at=start)
    base = f"/v1/subscriptions/{created['id']}"
    remaining, full = _remaining(created)
    [first] = await invoices(client, staff.headers, tenant["id"])
    assert first["total_minor"] == 3 * SEAT

    response = await _post(client, admin.headers, f"{base}/cancel", {"at_period_end": False})
    assert response.status_code == 200, response.text
    canceled = response.json()
    assert canceled["status"] == "canceled"
    assert canceled["canceled_at"] is not None
    assert canceled["cancel_at_period_end"] is False

    expected_credit = half_up(Decimal(3 * SEAT) * remaining / full)
    notes = await credit_notes(client, admin.headers, first["id"])
    assert [(note["amount_minor"], note["currency"]) for note in notes] == [(expected_credit, "EUR")]
    assert notes[0]["invoice_id"] == first["id"]
    invoice = (await client.get(f"/v1/invoices/{first['id']}", headers=admin.headers)).json()
    assert invoice["credited_minor"] == expected_credit
    assert invoice["amount_due_minor"] == 3 * SEAT - expected_credit
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1  # no usage, so no final invoice

    # Cancelling again (either way) answers as it is; nothing more is credited.
    for at_period_end in (False, True):
        again = await _post(client, admin.headers, f"{base}/cancel", {"at_period_end": at_period_end})
        assert again.status_code == 200, again.text
        assert again.json() == canceled
    assert len(await credit_notes(client, admin.headers, first["id"])) == 1

    resumed = await _post(client, admin.headers, f"{base}/resume")
    problem = assert_problem(resumed, 409, "invalid_subscription_transition")
    assert problem.get("current_status") == "canceled", problem
    changed = await _post(client, admin.headers, f"{base}/change", {"seats": 4})
    problem = assert_problem(changed, 409, "invalid_subscription_transition")
    assert problem.get("current_status") == "canceled", problem
    assert (await client.get(base, headers=admin.headers)).json() == canceled
    assert_problem(
        await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=admin.headers),
        404,
        "subscription_not_found",
    )

    # A canceled subscription no longer blocks a new one.
    renewed = await subscribe(client, admin.headers, tenant["id"], "basic")
    assert renewed["id"] != created["id"]


async def test_cancel_now_on_the_first_day_credits_the_whole_invoice(client: AsyncClient, factory: Factory) -> None:
    """Cancelled on its first day, nothing of the period was used: the credit note covers the invoice's total,
    tax included (credit notes are measured against the tax-inclusive total)."""
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    admin = await factory.member(tenant["id"], "tenant_admin")
    created = await subscribe(client, admin.headers, tenant["id"], "team", seats=3)
    remaining, full = _remaining(created)
    [first] = await invoices(client, staff.headers, tenant["id"])
    net = half_up(Decimal(3 * SEAT) * remaining / full)
    assert (first["subtotal_minor"], first["tax_minor"]) == (net, half_up(Decimal(net) * 2000 / 10000))

    response = await _post(client, admin.headers, f"/v1/subscriptions/{created['id']}/cancel", {"at_period_end": False})
    assert response.status_code == 200, response.text
    notes = await credit_notes(client, admin.headers, first["id"])
    assert [note["amount_minor"] for note in notes] == [first["total_minor"]]
    assert (await client.get(f"/v1/invoices/{first['id']}", headers=admin.headers)).json()["amount_due_minor"] == 0


async def test_cancel_now_bills_usage_so_far(client: AsyncClient, factory: Factory) -> None:
    """Cancelling now bills the usage accrued in the open window at once, including today's."""
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    await plan(
        client,
        staff.headers,
        "metered",
        [{"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "10"}],
    )
    tenant = await factory.tenant(staff)
    start = at_midnight(first_of_month(today()))
    created = await subscribe(client, staff.headers, tenant["id"], "metered", start_at=start)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    now = utcnow() - timedelta(seconds=1)
    events = [event("today-1", "api_calls", now), event("today-2", "api_calls", now)]
    if today().day > 1:
        events.append(event("earlier", "api_calls", start + timedelta(hours=1)))
    assert (await post_usage(client, bearer(key), events)).json()["accepted"] == len(events)
    assert (await usage_values(client, staff.headers, tenant["id"]))["api_calls"]["value"] == str(len(events))

    response = await _post(client, staff.headers, f"/v1/subscriptions/{created['id']}/cancel", {"at_period_end": False})
    assert response.status_code == 200, response.text
    billed = [
        (line["quantity"], line["amount_minor"])
        for invoice in await invoices(client, staff.headers, tenant["id"])
        for line in invoice["lines"]
        if line["metric_code"] == "api_calls"
    ]
    # Every accepted event is billed once; none is left behind in a window that will never be invoiced.
    assert sum(Decimal(quantity) for quantity, _ in billed) == len(events), billed
    assert sum(amount for _, amount in billed) == 10 * len(events), billed


async def test_subscription_list_pages(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    ids = []
    for _ in range(3):
        created = await subscribe(client, staff.headers, tenant["id"], "team")
        ids.append(created["id"])
        response = await _post(
            client, staff.headers, f"/v1/subscriptions/{created['id']}/cancel", {"at_period_end": False}
        )
        assert response.status_code == 200, response.text
    listed = await all_items(client, f"/v1/tenants/{tenant['id']}/subscriptions", staff.headers, limit=2)
    assert [item["id"] for item in listed] == ids


async def test_api_key_manages_its_own_subscription(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_admin")
    created = await subscribe(client, bearer(key), tenant["id"], "team")
    response = await _post(client, bearer(key), f"/v1/subscriptions/{created['id']}/cancel", {"at_period_end": True})
    assert response.status_code == 200, response.text
    assert response.json()["cancel_at_period_end"] is True


# -- trials are given once ------------------------------------------------------------------------------


async def _cancel_now(client: AsyncClient, headers: dict[str, str], subscription_id: str) -> None:
    response = await _post(client, headers, f"/v1/subscriptions/{subscription_id}/cancel", {"at_period_end": False})
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "canceled"


async def test_a_tenant_gets_a_plans_trial_once_whatever_its_version(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")

    first = await subscribe(client, admin.headers, tenant["id"], "trial")
    assert first["status"] == "trialing"
    await _cancel_now(client, admin.headers, first["id"])
    assert await invoices(client, staff.headers, tenant["id"]) == []

    # Subscribing again, even to a newer version of the plan, starts paid and is billed from its start.
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 6000}], trial_days=30)
    again = await subscribe(client, admin.headers, tenant["id"], "trial")
    assert (again["status"], again["plan_version"], again["trial_end"]) == ("active", 2, None)
    assert parse(again["current_period_start"]) == at_midnight(today())
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    remaining, full = _remaining(again)
    assert [line["amount_minor"] for line in invoice["lines"]] == [half_up(Decimal(6000) * remaining / full)]

    # Another plan's trial is its own.
    await plan(client, staff.headers, "other", [{"type": "flat", "amount_minor": 100}], trial_days=7)
    await _cancel_now(client, admin.headers, again["id"])
    assert (await subscribe(client, admin.headers, tenant["id"], "other"))["status"] == "trialing"


async def test_staff_may_grant_one_more_trial_and_it_is_audited(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}/trial-grants"
    first = await subscribe(client, admin.headers, tenant["id"], "trial")
    await _cancel_now(client, admin.headers, first["id"])

    assert_problem(await client.post(url, json={"plan_code": "trial"}, headers=admin.headers), 403)
    assert_problem(await client.post(url, json={}, headers=staff.headers), 422, "invalid_trial_grant")
    both = {"plan_code": "trial", "plugin_id": "00000000-0000-0000-0000-000000000001"}
    assert_problem(await client.post(url, json=both, headers=staff.headers), 422, "invalid_trial_grant")
    assert_problem(await client.post(url, json={"plan_code": "nothing"}, headers=staff.headers), 404, "plan_not_found")
    missing = "/v1/tenants/00000000-0000-0000-0000-000000000001/trial-grants"
    assert_problem(await client.post(missing, json={"plan_code": "trial"}, headers=staff.headers), 404)

    response = await client.post(url, json={"plan_code": "trial"}, headers=staff.headers)
    assert response.status_code == 201, response.text
    grant = response.json()
    assert (grant["plan_code"], grant["plugin_id"], grant["used_at"]) == ("trial", None, None)
    # Granting again while the grant is unused answers with it: one more trial, not two.
    repeat = await client.post(url, json={"plan_code": "trial"}, headers=staff.headers)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json()["id"] == grant["id"]

    second = await subscribe(client, admin.headers, tenant["id"], "trial")
    assert second["status"] == "trialing"
    await _cancel_now(client, admin.headers, second["id"])
    assert (await subscribe(client, admin.headers, tenant["id"], "trial"))["status"] == "active"
    assert "trial.granted" in await audit_actions(client, staff, tenant["id"])


async def test_racing_claims_of_a_trial_yield_one_trial(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    tenant_id = uuid.UUID(tenant["id"])

    async def claim() -> bool:
        async with tenant_tx(tenant_id):
            return await billing.claim_trial(tenant_id, "plan", "trial", uuid.uuid4())

    assert sorted(await asyncio.gather(claim(), claim(), claim())) == [False, False, True]


async def test_a_plan_change_during_a_trial_ends_the_trial_and_bills_the_new_plan_from_today(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    await _catalogue(client, staff)
    await plan(client, staff.headers, "other", [{"type": "flat", "amount_minor": 7000}], trial_days=30)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    created = await subscribe(client, admin.headers, tenant["id"], "trial")
    assert created["status"] == "trialing"
    url = f"/v1/subscriptions/{created['id']}/change"

    # Another plan code: the trial of "trial" does not carry over; "team" is billed from today.
    response = await _post(client, admin.headers, url, {"plan_code": "team", "seats": 2})
    assert response.status_code == 200, response.text
    moved = response.json()
    assert (moved["status"], moved["plan_code"], moved["seats"]) == ("active", "team", 2)
    assert parse(moved["current_period_start"]) == at_midnight(today())
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    remaining, full = _remaining(moved)
    assert [line["amount_minor"] for line in invoice["lines"]] == [half_up(Decimal(2 * SEAT) * remaining / full)]
    # Repeating the change bills nothing more.
    assert (await _post(client, admin.headers, url, {"plan_code": "team", "seats": 2})).status_code == 200
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1

    # A plan with a trial of its own is not a way back into a trial either.
    other = await subscribe(client, staff.headers, (await factory.tenant(staff))["id"], "trial")
    response = await _post(client, staff.headers, f"/v1/subscriptions/{other['id']}/change", {"plan_code": "other"})
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["plan_code"]) == ("active", "other")
