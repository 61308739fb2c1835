"""Dunning: retries on the schedule, then uncollectible and suspended (402 outside billing), and back on
payment. The clock is moved by running the collection as of later moments."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from billing import service
from billing.payments.gateway import StripeGateway
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import assert_problem
from tests.api.billing._support import invoices, subscribe
from tests.api.billing.test_payments import (
    DECLINED_CARD,
    GOOD_CARD,
    _add_card,
    _invoiced_tenant,
    card,
    stripe_client,
)
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, shared
SCHEDULE = (1, 3, 5, 7)


async def test_dunning_retries_then_suspends_and_a_payment_reactivates(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    start = datetime.now(UTC) + timedelta(minutes=1)

    first = await service.collect_due_invoices(gateway, start, SCHEDULE)
    assert (first.attempted, first.failed, first.uncollectible) == (1, 1, 0)
    # Nothing is due again until a day after the first failure.
    assert (await service.collect_due_invoices(gateway, start + timedelta(hours=23), SCHEDULE)).attempted == 0
    for day in SCHEDULE[:-1]:
        retry = await service.collect_due_invoices(gateway, start + timedelta(days=day), SCHEDULE)
        assert (retry.attempted, retry.failed, retry.uncollectible) == (1, 1, 0), day
    tenant_url = f"/v1/tenants/{tenant['id']}"
    assert (await client.get(tenant_url, headers=admin.headers)).status_code == 200
    last = await service.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[-1]), SCHEDULE)
    assert (last.attempted, last.failed, last.uncollectible) == (1, 1, 1)
    assert (await service.collect_due_invoices(gateway, start + timedelta(days=30), SCHEDULE)).attempted == 0

    uncollectible = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert uncollectible["status"] == "uncollectible"
    body = assert_problem(await client.get(tenant_url, headers=admin.headers), 402, "suspended_for_non_payment")
    assert body["required_actions"] == ["pay_overdue_invoice", "add_payment_method"]
    members = await client.get(f"{tenant_url}/members", headers=admin.headers)
    assert_problem(members, 402, "suspended_for_non_payment")
    # Billing stays open: the admin sees the invoice, adds a working card and pays.
    await client.post(
        f"{tenant_url}/payment-methods",
        json={"stripe_payment_method_id": card(stripe_client, GOOD_CARD), "default": True},
        headers=admin.headers,
    )
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["attempt"]) == ("succeeded", len(SCHEDULE) + 2)
    reactivated = await client.get(tenant_url, headers=admin.headers)
    assert reactivated.status_code == 200, reactivated.text
    assert reactivated.json()["status"] == "active"
    subscription = (
        await client.get(f"/v1/subscriptions/{invoice['subscription']['id']}", headers=admin.headers)
    ).json()
    assert subscription["status"] == "active"
    actions = [
        event["action"]
        for event in (await client.get(f"{tenant_url}/audit-events", headers=staff.headers)).json()["items"]
    ]
    assert actions.count("payment.failed") == len(SCHEDULE) + 1
    assert {"invoice.uncollectible", "tenant.suspended_for_non_payment", "tenant.reactivated"} <= set(actions)
    assert (await service.verify_ledger()).ok


async def test_payments_tried_by_hand_neither_use_up_nor_escape_the_dunning_schedule(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    _, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    pay_url = f"/v1/invoices/{invoice['id']}/pay"

    async def pay_by_hand(times: int) -> None:
        for _ in range(times):
            tried = await client.post(pay_url, headers=admin.headers)
            assert tried.status_code == 200, tried.text
            assert tried.json()["status"] == "failed"

    # The first failure is by hand: it starts the schedule's clock, as the collection's first attempt would.
    await pay_by_hand(1)
    start = datetime.now(UTC) + timedelta(minutes=1)
    assert (await service.collect_due_invoices(gateway, start, SCHEDULE)).attempted == 0
    await pay_by_hand(len(SCHEDULE) + 2)  # more attempts than the schedule has retries
    # Attempts by hand do not bring a retry forward...
    assert (await service.collect_due_invoices(gateway, start + timedelta(hours=23), SCHEDULE)).attempted == 0
    for day in SCHEDULE[:-1]:
        # ...nor use one up: every retry still comes on its date.
        retry = await service.collect_due_invoices(gateway, start + timedelta(days=day), SCHEDULE)
        assert (retry.attempted, retry.failed, retry.uncollectible) == (1, 1, 0), (day, retry)
        await pay_by_hand(1)
    tenant_url = f"/v1/tenants/{tenant['id']}"
    assert (await client.get(tenant_url, headers=admin.headers)).status_code == 200
    # Past the last dunning date the invoice is given up and the tenant suspended, whatever was tried by hand.
    last = await service.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[-1]), SCHEDULE)
    assert (last.attempted, last.failed, last.uncollectible) == (1, 1, 1), last
    given_up = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert given_up["status"] == "uncollectible"
    assert_problem(await client.get(tenant_url, headers=admin.headers), 402, "suspended_for_non_payment")
    assert (await service.collect_due_invoices(gateway, start + timedelta(days=30), SCHEDULE)).attempted == 0


async def test_missed_collection_runs_make_one_attempt_for_the_steps_whose_dates_have_passed(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    _, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    start = datetime.now(UTC) + timedelta(minutes=1)
    assert (await service.collect_due_invoices(gateway, start, SCHEDULE)).failed == 1
    # Missed runs do not pile up attempts: one run well past every date makes the last step's attempt only.
    late = await service.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[-1] + 3), SCHEDULE)
    assert (late.attempted, late.failed, late.uncollectible) == (1, 1, 1), late
    given_up = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert given_up["status"] == "uncollectible"


async def test_an_invoice_left_without_a_card_past_the_last_dunning_date_is_given_up(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    _, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    start = datetime.now(UTC) + timedelta(minutes=1)
    first = await service.collect_due_invoices(gateway, start, SCHEDULE)
    assert (first.attempted, first.without_payment_method, first.uncollectible) == (1, 1, 0), first
    early = await service.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[-1] - 1), SCHEDULE)
    assert (early.without_payment_method, early.uncollectible) == (1, 0), early
    # Never a card: the schedule counts from the invoice's issue, and ends as it would after declines.
    last = await service.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[-1]), SCHEDULE)
    assert (last.without_payment_method, last.uncollectible) == (1, 1), last
    given_up = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert given_up["status"] == "uncollectible"
    body = assert_problem(await client.get(f"/v1/tenants/{tenant['id']}", headers=admin.headers), 402)
    assert "add_payment_method" in body["required_actions"]


async def test_one_tenant_with_many_unpaid_invoices_never_starves_another_tenants_collection(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    """A tenant that piles up invoices (each seat bump an upgrade invoice), without a card so that none of them
    ever gets an attempt, takes at most its share of a run: another tenant's invoice is still collected."""
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    staff, bully, first = await _invoiced_tenant(client, factory)
    inspector = await connect_as_inspector(stack_env)
    try:
        columns = [
            row["column_name"]
            for row in await inspector.fetch(
                "select column_name from information_schema.columns where table_name = 'invoices' "
                "and column_name not in ('id', 'number', 'cycle_boundary', 'issued_at')"
            )
        ]
        names = ", ".join(columns)
        # 59 more, all issued before the other tenant's invoice.
        copies = (
            "select gen_random_uuid(), number || '-' || g, cycle_boundary - make_interval(secs => g), "
            "issued_at - make_interval(mins => g), {names} from invoices, generate_series(1, 59) g where id = $1"
        )
        insert = f"insert into invoices (id, number, cycle_boundary, issued_at, {names}) " + copies.format(names=names)
        await inspector.execute(insert, uuid.UUID(first["id"]))
    finally:
        await inspector.close()
    tenant = await factory.tenant(staff)
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    start = datetime.now(UTC) + timedelta(minutes=1)

    for hour in range(2):  # the bully's invoices stay unpaid run after run; the other tenant is collected at once
        report = await service.collect_due_invoices(gateway, start + timedelta(hours=hour), SCHEDULE, limit=50)
        assert report.without_payment_method <= 20, report
    paid = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert paid["status"] == "paid", paid
    assert bully["id"] != tenant["id"]


async def _given_up(client: AsyncClient, factory: Factory, settings: Settings, *, staff_first: bool) -> Any:
    """A tenant without a card whose invoice is given up (after staff suspended it, when `staff_first`)."""
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    if staff_first:
        assert (await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=staff.headers)).status_code == 200
    start = datetime.now(UTC) + timedelta(minutes=1)
    report = await service.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[-1]), SCHEDULE)
    assert report.uncollectible == 1, report
    return staff, admin, tenant, invoice


async def test_staff_cannot_reactivate_a_tenant_suspended_for_non_payment_unless_they_lift_it(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    staff, admin, tenant, _ = await _given_up(client, factory, settings, staff_first=False)
    url = f"/v1/tenants/{tenant['id']}"
    refused = await client.post(f"{url}/reactivate", headers=staff.headers)
    assert_problem(refused, 409, "suspended_for_non_payment_open")
    assert (await client.get(url, headers=staff.headers)).json()["status"] == "suspended"
    assert_problem(await client.get(url, headers=admin.headers), 402, "suspended_for_non_payment")
    # Staff lift it explicitly (the invoice stays uncollectible): active, and the tenant is served again.
    lifted = await client.post(f"{url}/reactivate?lift_non_payment_suspension=true", headers=staff.headers)
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["status"] == "active"
    assert (await client.get(url, headers=admin.headers)).status_code == 200
    again = await client.post(f"{url}/reactivate", headers=staff.headers)  # nothing left to lift
    assert again.status_code == 200, again.text


async def test_a_staff_suspended_tenant_whose_invoice_is_given_up_owes_it_and_paying_keeps_staffs_suspension(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    staff, admin, tenant, invoice = await _given_up(client, factory, settings, staff_first=True)
    url = f"/v1/tenants/{tenant['id']}"
    # The uncollectible invoice is recorded on the tenant although staff had suspended it already ...
    assert_problem(await client.get(url, headers=admin.headers), 402, "suspended_for_non_payment")
    assert_problem(await client.post(f"{url}/reactivate", headers=staff.headers), 409, "suspended_for_non_payment_open")
    # ... staff's suspension still stops the tenant's own billing writes (no card, no payment, no escrow) ...
    method = card(stripe_client, GOOD_CARD)
    refused = await client.post(
        f"{url}/payment-methods", json={"stripe_payment_method_id": method}, headers=admin.headers
    )
    assert_problem(refused, 403, "tenant_not_active")
    escrow = {
        "tenant_id": tenant["id"],
        "payee": {"type": "vendor", "id": str(uuid.uuid4())},
        "currency": "EUR",
        "amount_minor": 1000,
        "milestones": [{"title": "All", "amount_minor": 1000}],
    }
    assert_problem(await client.post("/v1/escrows", json=escrow, headers=admin.headers), 403, "tenant_not_active")
    # ... staff settle it on the tenant's behalf: the non-payment suspension is lifted, staff's stands.
    await _add_card(client, staff.headers, tenant["id"], method)
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200, paid.text
    assert (await client.get(url, headers=staff.headers)).json()["status"] == "suspended"
    reactivated = await client.post(f"{url}/reactivate", headers=staff.headers)
    assert reactivated.status_code == 200, reactivated.text
    assert reactivated.json()["status"] == "active"
    assert (await client.get(url, headers=admin.headers)).status_code == 200


async def test_staffs_suspension_of_a_tenant_suspended_for_non_payment_stands_after_it_pays(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    staff, admin, tenant, invoice = await _given_up(client, factory, settings, staff_first=False)
    url = f"/v1/tenants/{tenant['id']}"
    assert (await client.post(f"{url}/suspend", headers=staff.headers)).status_code == 200
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    by_tenant = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert_problem(by_tenant, 403, "tenant_not_active")
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200, paid.text
    assert (await client.get(url, headers=staff.headers)).json()["status"] == "suspended"


async def test_an_erased_tenant_that_owed_an_invoice_cannot_be_reactivated(
    client: AsyncClient, factory: Factory, settings: Settings
) -> None:
    """Nothing brings a tenant back from erasure: staff's reactivation is an invalid transition, not the open
    non-payment suspension it also had."""
    staff, _, tenant, _ = await _given_up(client, factory, settings, staff_first=False)
    url = f"/v1/tenants/{tenant['id']}"
    assert (await client.delete(url, headers=staff.headers)).status_code == 202
    for lift in ("", "?lift_non_payment_suspension=true"):
        assert_problem(
            await client.post(f"{url}/reactivate{lift}", headers=staff.headers), 409, "invalid_status_transition"
        )
