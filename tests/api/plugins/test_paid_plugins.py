"""Paid plugins bill through the tenant's subscription, and their licenses follow what was paid for."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from httpx import AsyncClient

from billing import limits
from billing import service as billing
from plugins_registry import service
from plugins_registry.license_token import verify
from tests.api._helpers import audit_actions, bearer, create_api_key
from tests.api._webhooks import webhook_outbox_events
from tests.api.billing._support import (
    at_midnight,
    event,
    half_up,
    invoices,
    metric,
    parse,
    plan,
    post_usage,
    subscribe,
    today,
    utcnow,
)
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.api.plugins._support import check, install, listening, machine_key, plugin, publisher
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, used by name


def _lines_of(invoice: dict[str, Any], name: str) -> list[int]:
    return [line["amount_minor"] for line in invoice["lines"] if name in line["description"]]


async def _claims(client: AsyncClient, headers: dict[str, str], license_id: str) -> dict[str, Any]:
    body = (await client.get(f"/v1/licenses/{license_id}", headers=headers)).json()
    keys = (await client.get("/v1/licensing/keys")).json()
    return verify(body["token"], keys)


async def test_paid_plugins_add_their_lines_and_a_trial_converts_at_its_end(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    await listening(tenant["id"])  # its license events are queued
    admin = await factory.member(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    flat = await plugin(
        client,
        staff.headers,
        pub["id"],
        pricing={"model": "flat", "amount_minor": 900, "currency": "EUR", "trial_days": 1},
    )
    seats = await plugin(
        client, staff.headers, pub["id"], pricing={"model": "per_seat", "amount_minor": 200, "currency": "EUR"}
    )
    free = await plugin(client, staff.headers, pub["id"])
    trial = await install(client, admin.headers, tenant["id"], flat["slug"])
    await install(client, admin.headers, tenant["id"], seats["slug"], seats=3)
    await install(client, admin.headers, tenant["id"], free["slug"])
    assert trial["license"]["trial"] is True

    boundary = parse(subscription["current_period_end"])
    report = await billing.run_cycle(boundary + timedelta(hours=2), grace=timedelta(hours=1))
    assert report.invoices_created == 1 and not report.failed
    latest = max(await invoices(client, admin.headers, tenant["id"]), key=lambda invoice: invoice["period_start"])
    plugin_lines = [line for line in latest["lines"] if "Reports" in line["description"]]
    amounts = sorted(line["amount_minor"] for line in plugin_lines)
    # A full period in advance for each paid plugin (900 flat, 3 x 200 per seat), none for the free one,
    # plus the part of the ending period each was billable in (prorated by whole days, never more).
    assert 900 in amounts and 600 in amounts
    assert len(plugin_lines) <= 4 and all(0 < amount <= 900 for amount in amounts)
    assert sum(amounts) == sum(line["amount_minor"] for line in latest["lines"]) - 3100

    # The trial's end: the expiry task converts it to a paid license lasting the period plus its grace.
    counts = await service.expire_due(datetime.now(UTC) + timedelta(days=2))
    assert dataclasses.asdict(counts) == {"converted": 1, "expired": 0}
    claims = await _claims(client, admin.headers, trial["license"]["id"])
    assert claims["trial"] is False
    key = await machine_key(client, admin.headers, tenant["id"])
    assert (await check(client, key, flat["slug"]))["trial"] is False
    types = [e.event_type for e in await webhook_outbox_events(uuid.UUID(tenant["id"]))]
    assert "license.converted" in types


async def test_a_paid_invoice_renews_the_license_and_an_unpaid_one_lets_it_expire(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    await listening(tenant["id"])  # its license events are queued
    admin = await factory.member(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    paid = await plugin(
        client, staff.headers, pub["id"], pricing={"model": "flat", "amount_minor": 900, "currency": "EUR"}
    )
    installed = await install(client, admin.headers, tenant["id"], paid["slug"])
    license_id = installed["license"]["id"]
    boundary = parse(subscription["current_period_end"])
    first_end = parse(installed["license"]["expires_at"])
    assert first_end == boundary + timedelta(days=8)  # the dunning window (1,3,5,7 days) and a day

    await billing.run_cycle(boundary + timedelta(hours=2), grace=timedelta(hours=1))
    unpaid = [
        invoice for invoice in await invoices(client, admin.headers, tenant["id"]) if invoice["amount_due_minor"] > 0
    ]
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    for invoice in sorted(unpaid, key=lambda invoice: invoice["period_start"]):
        paid_answer = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
        assert paid_answer.status_code == 200, paid_answer.text

    renewed = (await client.get(f"/v1/licenses/{license_id}", headers=admin.headers)).json()
    new_end = parse(renewed["expires_at"])
    assert new_end > first_end
    claims = await _claims(client, admin.headers, license_id)
    assert claims["exp"] == int(new_end.timestamp())  # re-signed on this read, after the payment
    assert "license.renewed" in [e.event_type for e in await webhook_outbox_events(uuid.UUID(tenant["id"]))]

    # Nobody pays the next period: past the dunning window the expiry task expires the license.
    key = await machine_key(client, admin.headers, tenant["id"])
    assert (await check(client, key, paid["slug"]))["allowed"] is True
    before_end = await service.expire_due(new_end - timedelta(seconds=1))
    assert dataclasses.asdict(before_end) == {"converted": 0, "expired": 0}
    after_end = await service.expire_due(new_end + timedelta(seconds=1))
    assert dataclasses.asdict(after_end) == {"converted": 0, "expired": 1}
    assert (await check(client, key, paid["slug"]))["reason"] == "license_expired"
    refresh = await client.post(f"/v1/licenses/{license_id}/refresh", headers=admin.headers)
    assert refresh.status_code == 409 and refresh.json()["code"] == "license_not_active"
    assert (await client.get(f"/v1/licenses/{license_id}", headers=admin.headers)).json()["status"] == "expired"


async def test_a_tenant_gets_each_plugins_trial_once_unless_staff_grant_another(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    made = await plugin(
        client,
        staff.headers,
        pub["id"],
        pricing={"model": "flat", "amount_minor": 900, "currency": "EUR", "trial_days": 3},
    )
    url = f"/v1/tenants/{tenant['id']}/plugins/{made['slug']}"
    first = await install(client, admin.headers, tenant["id"], made["slug"])
    assert first["license"]["trial"] is True
    assert (await client.delete(url, headers=admin.headers)).status_code == 204

    # Installed again: no new trial; paid from now, its license lasting the period plus the dunning window.
    again = await install(client, admin.headers, tenant["id"], made["slug"])
    boundary = parse(subscription["current_period_end"])
    assert again["license"]["trial"] is False
    assert parse(again["license"]["expires_at"]) == boundary + timedelta(days=8)
    await billing.run_cycle(boundary + timedelta(hours=2), grace=timedelta(hours=1))
    latest = max(await invoices(client, admin.headers, tenant["id"]), key=lambda invoice: invoice["period_start"])
    start = parse(subscription["current_period_start"])
    days, full = (boundary - start).days, (boundary - (boundary - timedelta(days=1)).replace(day=1)).days
    # In arrears for the days it was installed (the first install's trial is never billed), then the next period.
    assert sorted(_lines_of(latest, "Reports")) == sorted([half_up(Decimal(900) * days / full), 900])

    # Staff grant one more trial of this plugin (audited): the next install is a trial again.
    grants = f"/v1/tenants/{tenant['id']}/trial-grants"
    assert (await client.post(grants, json={"plugin_id": made["id"]}, headers=admin.headers)).status_code == 403
    unknown = await client.post(grants, json={"plugin_id": str(uuid.uuid4())}, headers=staff.headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "plugin_not_found"
    granted = await client.post(grants, json={"plugin_id": made["id"]}, headers=staff.headers)
    assert granted.status_code == 201, granted.text
    assert (granted.json()["plugin_id"], granted.json()["plan_code"]) == (made["id"], None)
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert (await install(client, admin.headers, tenant["id"], made["slug"]))["license"]["trial"] is True
    assert (await client.delete(url, headers=admin.headers)).status_code == 204
    assert (await install(client, admin.headers, tenant["id"], made["slug"]))["license"]["trial"] is False
    assert "trial.granted" in await audit_actions(client, staff, tenant["id"])


async def test_a_seat_increase_is_prorated_and_billed_at_once(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    made = await plugin(
        client, staff.headers, pub["id"], pricing={"model": "per_seat", "amount_minor": 200, "currency": "EUR"}
    )
    url = f"/v1/tenants/{tenant['id']}/plugins/{made['slug']}"
    installed = await install(client, admin.headers, tenant["id"], made["slug"], seats=1)
    before = await invoices(client, admin.headers, tenant["id"])
    start, boundary = parse(subscription["current_period_start"]), parse(subscription["current_period_end"])
    remaining = (boundary - at_midnight(today())).days
    full = (boundary - (boundary - timedelta(days=1)).replace(day=1)).days

    raised = await client.patch(url, json={"seats": 5}, headers=admin.headers)
    assert raised.status_code == 200, raised.text
    assert (await _claims(client, admin.headers, installed["license"]["id"]))["entitlements"]["seats"] == 5
    [change] = [
        i for i in await invoices(client, admin.headers, tenant["id"]) if i["id"] not in {b["id"] for b in before}
    ]
    assert change["status"] == "finalized"
    assert _lines_of(change, "Reports") == [half_up(Decimal(4 * 200) * remaining / full)]

    # Lowering and raising again within what was paid for bills nothing more, and nothing is credited.
    for seats in (2, 4):
        response = await client.patch(url, json={"seats": seats}, headers=admin.headers)
        assert response.status_code == 200, response.text
    assert len(await invoices(client, admin.headers, tenant["id"])) == len(before) + 1

    # At the boundary: the seat it started with in arrears (the rest was billed at once), then 4 in advance.
    await billing.run_cycle(boundary + timedelta(hours=2), grace=timedelta(hours=1))
    latest = max(await invoices(client, admin.headers, tenant["id"]), key=lambda invoice: invoice["period_start"])
    days = (boundary - at_midnight(today())).days
    assert start <= at_midnight(today())
    assert sorted(_lines_of(latest, "Reports")) == sorted([half_up(Decimal(200) * days / full), 800])


@pytest.mark.parametrize("plan_meters_it", [False, True], ids=["metric-not-on-plan", "plan-meters-it-cheaper"])
async def test_usage_a_metered_plugin_would_bill_past_the_line_bound_is_rejected(
    client: AsyncClient, factory: Factory, plan_meters_it: bool
) -> None:
    """A metered plugin's charge rates the open window too: its price bounds its metric's usage at ingestion, even
    when the plan does not meter the metric or meters it more cheaply, so the cycle never meets an overflow."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await metric(client, staff.headers, "bytes", "sum")
    charges: list[dict[str, Any]] = [{"type": "flat", "amount_minor": 3100}]
    if plan_meters_it:
        charges.append({"type": "metered", "metric_code": "bytes", "model": "per_unit", "unit_amount_minor": "1"})
    await plan(client, staff.headers, "pro", charges)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    metered = await plugin(
        client,
        staff.headers,
        pub["id"],
        pricing={"model": "metered", "amount_minor": 1000, "currency": "EUR", "metric_code": "bytes"},
    )
    await install(client, admin.headers, tenant["id"], metered["slug"])
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    at = utcnow() + timedelta(seconds=2)  # after the install (stamped to the second): billed by the plugin

    # 10^15 / 1000 is 10^12 units: a thousand events of 10^9 fill the plugin's line, one more unit is refused.
    largest = int(limits.MAX_USAGE_VALUE)
    batch = [event(f"e{index}", "bytes", at, value=largest) for index in range(1000)]
    reply = (await post_usage(client, bearer(key), batch)).json()
    assert (reply["accepted"], reply["rejected"]) == (1000, [])
    one_more = (await post_usage(client, bearer(key), [event("one-more", "bytes", at, value=1)])).json()
    assert [(item["index"], item["code"]) for item in one_more["rejected"]] == [(0, "usage_limit_exceeded")]

    boundary = parse(subscription["current_period_end"])
    report = await billing.run_cycle(boundary + timedelta(hours=2), grace=timedelta(hours=1))
    assert (report.invoices_created, report.failed) == (1, [])
    latest = max(await invoices(client, admin.headers, tenant["id"]), key=lambda invoice: invoice["period_start"])
    assert limits.MAX_LINE_MINOR in _lines_of(latest, "Reports"), latest["lines"]


async def test_a_metered_plugin_is_not_installed_over_usage_it_would_bill_past_the_line_bound(
    client: AsyncClient, factory: Factory
) -> None:
    """Usage of a metric the plan does not meter is unbounded until a charge meters it: events stamped a few
    minutes ahead, then a dear metered plugin installed before them, would rate a line past the bound at the
    boundary. The install is refused instead (nothing is written), and a cheap enough plugin still installs."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await metric(client, staff.headers, "bytes", "sum")
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    ahead = utcnow() + timedelta(minutes=4)  # within the clock skew: stored in the open window
    largest = int(limits.MAX_USAGE_VALUE)
    for first in (0, 1000):  # a batch holds at most 1000 events
        batch = [event(f"e{first + index}", "bytes", ahead, value=largest) for index in range(1000)]
        posted = await post_usage(client, bearer(key), batch)
        assert posted.json()["accepted"] == 1000, posted.text  # no charge meters it yet

    dear = await plugin(
        client,
        staff.headers,
        pub["id"],
        pricing={"model": "metered", "amount_minor": 1000, "currency": "EUR", "metric_code": "bytes"},
    )
    refused = await install(client, admin.headers, tenant["id"], dear["slug"], expected=409)
    assert refused["code"] == "amount_out_of_range"
    listed = await client.get(f"/v1/tenants/{tenant['id']}/plugins", headers=admin.headers)
    assert listed.json()["items"] == []
    cheap = await plugin(
        client,
        staff.headers,
        pub["id"],
        pricing={"model": "metered", "amount_minor": 1, "currency": "EUR", "metric_code": "bytes"},
    )
    await install(client, admin.headers, tenant["id"], cheap["slug"])
    boundary = parse(subscription["current_period_end"])
    report = await billing.run_cycle(boundary + timedelta(hours=2), grace=timedelta(hours=1))
    assert (report.invoices_created, report.failed) == (1, [])
