"""The scans of what is about to happen: trials ending within 3 days (`subscription.trial_will_end`, hourly) and
default cards whose last valid month is next month (`payment_method.expiring`, daily). Their windows' edges,
a year's end, once per occurrence however often they run, and one failing item never stopping the others."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from billing.notices import service as notices
from tests.api.billing._support import parse, plan, subscribe
from tests.api.billing.test_payments import GOOD_CARD, _add_card, stripe_client
from tests.factories import Actor, Factory
from tests.integration.notifications._outbox import both, one_occurrence, queued, told_tenant
from workers import tasks
from workers.schedule import BEAT_SCHEDULE

__all__ = ["stripe_client"]  # the fixture, used by name
THREE_DAYS = timedelta(days=3)


@pytest.fixture
def failing_for(monkeypatch: pytest.MonkeyPatch) -> set[uuid.UUID]:
    """Tenants whose notice fails (as a fault of ours would) while they are in the set."""
    failing: set[uuid.UUID] = set()
    real = notices.notify

    async def notify(event: str, key: str, data: Any, **audience: Any) -> int:
        if audience.get("tenant_id") in failing:
            raise RuntimeError("this tenant's notice failed")
        return await real(event, key, data, **audience)

    monkeypatch.setattr(notices, "notify", notify)
    return failing


# -- trials ----------------------------------------------------------------------------------------------


async def _trialing(client: AsyncClient, factory: Factory, staff: Actor) -> tuple[dict[str, Any], Actor, Any]:
    tenant, admin = await told_tenant(factory, staff)
    subscription = await subscribe(client, admin.headers, tenant["id"], "trial")
    assert subscription["status"] == "trialing"
    return tenant, admin, subscription


async def test_a_trial_is_told_once_when_its_end_is_three_days_away(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    tenant, admin, subscription = await _trialing(client, factory, staff)
    trial_end = parse(subscription["trial_end"])

    early = await notices.notify_trials_ending(trial_end - THREE_DAYS - timedelta(seconds=1))
    assert (early.found, early.told) == (0, 0)
    assert await queued("subscription.trial_will_end") == []
    first = await notices.notify_trials_ending(trial_end - THREE_DAYS)
    assert (first.found, first.told, first.failed) == (1, 1, 0)
    for later in (trial_end - THREE_DAYS, trial_end - timedelta(hours=1)):  # every later run: found, told once
        again = await notices.notify_trials_ending(later)
        assert (again.found, again.told) == (1, 0)
    ended = await notices.notify_trials_ending(trial_end)  # ended: no longer ahead
    assert ended.found == 0

    rows = await queued("subscription.trial_will_end")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    row = one_occurrence(rows)
    assert row["event_key"] == f"{subscription['id']}:{trial_end.isoformat()}"
    assert row["data"] == {
        "subscription_id": subscription["id"],
        "plan_code": "trial",
        "trial_end": trial_end.astimezone(UTC).isoformat(),
        "cancel_at_period_end": False,
    }
    assert str(row["tenant_id"]) == tenant["id"]


async def test_one_trial_failing_stops_no_other_and_is_told_on_the_next_run(
    client: AsyncClient, factory: Factory, failing_for: set[uuid.UUID]
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    bad, _, subscription = await _trialing(client, factory, staff)
    good, _, _ = await _trialing(client, factory, staff)
    now = parse(subscription["trial_end"]) - timedelta(days=2)

    failing_for.add(uuid.UUID(bad["id"]))
    report = await notices.notify_trials_ending(now)
    assert (report.found, report.told, report.failed) == (2, 1, 1)
    assert {str(row["tenant_id"]) for row in await queued("subscription.trial_will_end")} == {good["id"]}

    failing_for.clear()
    retried = await notices.notify_trials_ending(now)
    assert (retried.found, retried.told, retried.failed) == (2, 1, 0)
    rows = await queued("subscription.trial_will_end")
    assert {str(row["tenant_id"]) for row in rows} == {bad["id"], good["id"]}
    assert len(rows) == 4


async def test_a_trial_ended_early_or_of_an_erased_tenant_is_not_told(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    await plan(client, staff.headers, "paid", [{"type": "flat", "amount_minor": 9000}])
    _, admin, first = await _trialing(client, factory, staff)
    moved = await client.post(
        f"/v1/subscriptions/{first['id']}/change", json={"plan_code": "paid"}, headers=admin.headers
    )
    assert moved.status_code == 200 and moved.json()["status"] == "active", moved.text
    erased, _, _ = await _trialing(client, factory, staff)
    assert (await client.delete(f"/v1/tenants/{erased['id']}", headers=staff.headers)).status_code == 202

    report = await notices.notify_trials_ending(parse(first["trial_end"]) - timedelta(days=1))
    assert (report.found, report.told) == (0, 0)
    assert await queued("subscription.trial_will_end") == []


async def test_a_run_reads_every_trial_page_after_page(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "trial", [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    trials = [await _trialing(client, factory, staff) for _ in range(3)]
    now = min(parse(subscription["trial_end"]) for _tenant, _admin, subscription in trials) - timedelta(days=2)

    report = await notices.notify_trials_ending(now, page_size=2)

    assert (report.found, report.told, report.failed) == (3, 3, 0)
    told = {str(row["tenant_id"]) for row in await queued("subscription.trial_will_end")}
    assert told == {tenant["id"] for tenant, _admin, _subscription in trials}


# -- cards -----------------------------------------------------------------------------------------------


def _card(stripe_client: Any, exp_month: int, exp_year: int) -> str:
    method = stripe_client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {"number": GOOD_CARD, "exp_month": exp_month, "exp_year": exp_year, "cvc": "123"},
        }
    )
    return str(method.id)


async def test_a_default_card_is_told_once_in_the_month_before_its_last(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff = await factory.staff()
    january, january_admin = await told_tenant(factory, staff)
    december, december_admin = await told_tenant(factory, staff)
    told_card = await _add_card(client, staff.headers, january["id"], _card(stripe_client, 1, 2032))
    assert told_card["default"] is True
    # A second card expiring the same month is not the one collections charge: not told.
    spare = await _add_card(client, staff.headers, january["id"], _card(stripe_client, 1, 2032))
    assert spare["default"] is False
    await _add_card(client, staff.headers, december["id"], _card(stripe_client, 12, 2031))

    async def scan(at: datetime) -> tuple[int, int, int]:
        report = await notices.notify_expiring_cards(at)
        return report.found, report.told, report.failed

    # In November, cards valid through December.
    assert await scan(datetime(2031, 11, 1, tzinfo=UTC)) == (1, 1, 0)
    assert await scan(datetime(2031, 11, 30, 23, 59, 59, tzinfo=UTC)) == (1, 0, 0)
    # In December, cards valid through January of the next year (and not December's again: it is this month).
    assert await scan(datetime(2031, 12, 1, tzinfo=UTC)) == (1, 1, 0)
    assert await scan(datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC)) == (1, 0, 0)
    assert await scan(datetime(2032, 1, 1, tzinfo=UTC)) == (0, 0, 0)

    rows = await queued("payment_method.expiring")
    by_tenant = {str(row["tenant_id"]) for row in rows}
    assert by_tenant == {january["id"], december["id"]}
    january_rows = [row for row in rows if str(row["tenant_id"]) == january["id"]]
    assert sorted(row["recipient"] for row in january_rows) == both(january_admin)
    row = one_occurrence(january_rows)
    assert row["event_key"] == f"{told_card['id']}:2032-01"
    assert row["data"] == {
        "payment_method_id": told_card["id"],
        "brand": "visa",
        "last4": "4242",
        "exp_month": 1,
        "exp_year": 2032,
    }
    december_rows = [row for row in rows if str(row["tenant_id"]) == december["id"]]
    assert sorted(row["recipient"] for row in december_rows) == both(december_admin)
    assert one_occurrence(december_rows)["event_key"].endswith(":2031-12")


async def test_one_card_failing_stops_no_other_and_is_told_on_the_next_run(
    client: AsyncClient, factory: Factory, stripe_client: Any, failing_for: set[uuid.UUID]
) -> None:
    staff = await factory.staff()
    bad, _ = await told_tenant(factory, staff)
    good, _ = await told_tenant(factory, staff)
    for tenant in (bad, good):
        await _add_card(client, staff.headers, tenant["id"], _card(stripe_client, 6, 2033))
    now = datetime(2033, 5, 20, tzinfo=UTC)

    failing_for.add(uuid.UUID(bad["id"]))
    report = await notices.notify_expiring_cards(now)
    assert (report.found, report.told, report.failed) == (2, 1, 1)
    assert {str(row["tenant_id"]) for row in await queued("payment_method.expiring")} == {good["id"]}
    failing_for.clear()
    retried = await notices.notify_expiring_cards(now)
    assert (retried.found, retried.told, retried.failed) == (2, 1, 0)
    assert {str(row["tenant_id"]) for row in await queued("payment_method.expiring")} == {bad["id"], good["id"]}


async def test_a_run_reads_every_card_page_after_page(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff = await factory.staff()
    tenants = [(await told_tenant(factory, staff))[0] for _ in range(3)]
    for tenant in tenants:
        await _add_card(client, staff.headers, tenant["id"], _card(stripe_client, 6, 2033))

    report = await notices.notify_expiring_cards(datetime(2033, 5, 20, tzinfo=UTC), page_size=2)

    assert (report.found, report.told, report.failed) == (3, 3, 0)
    told = {str(row["tenant_id"]) for row in await queued("payment_method.expiring")}
    assert told == {tenant["id"] for tenant in tenants}


def test_the_scans_are_on_the_beat() -> None:
    scheduled = {entry["task"] for entry in BEAT_SCHEDULE.values()}
    assert tasks.notify_trials_ending.name in scheduled
    assert tasks.notify_expiring_cards.name in scheduled
