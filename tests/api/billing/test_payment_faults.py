"""Stripe unreachable in the middle of a collection run: every attempt stays pending with its key stored,
and the next run sends the same keys, so each invoice is charged exactly once and the ledger verifies."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from httpx import AsyncClient

from billing import service
from billing.payments.gateway import StripeGateway
from controlplane.core import metrics
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import assert_problem
from tests.api.billing._support import invoices, plan, subscribe
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.api.billing.test_webhooks import _invoice_with_a_pending_attempt
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, shared
SCHEDULE = (1, 3, 5, 7)


async def test_a_run_with_stripe_down_then_up_charges_each_invoice_once(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    stack_env: dict[str, str],
    report: Any,
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenants = [await factory.tenant(staff) for _ in range(3)]
    for tenant in tenants:
        await subscribe(client, staff.headers, tenant["id"], "pro")
        await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    secrets = SecretStore.connect(settings)
    down = StripeGateway(
        make_stripe_client(dataclasses.replace(settings, stripe_api_base="http://127.0.0.1:9"), secrets)
    )
    up = StripeGateway(make_stripe_client(settings, secrets))
    now = datetime.now(UTC) + timedelta(minutes=1)

    first = await service.collect_due_invoices(down, now, SCHEDULE)
    assert (first.attempted, first.succeeded, len(first.unreachable)) == (3, 0, 3)
    inspector = await connect_as_inspector(stack_env)
    try:
        pending = await inspector.fetch("select idempotency_key from payments where status = 'pending'")
        keys = sorted(row["idempotency_key"] for row in pending)
        assert len(keys) == 3 and all(key.endswith(":attempt:1") for key in keys)

        second = await service.collect_due_invoices(up, now, SCHEDULE)
        assert (second.attempted, second.succeeded, second.unreachable) == (3, 3, [])
        settled = await inspector.fetch("select idempotency_key, status, invoice_id::text from payments")
    finally:
        await inspector.close()
    assert sorted(row["idempotency_key"] for row in settled) == keys  # the same keys, no new attempt
    assert {row["status"] for row in settled} == {"succeeded"}
    invoice_ids = {row["invoice_id"] for row in settled}
    intents = list(stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter())
    charged = [i for i in intents if i.metadata.to_dict().get("invoice_id") in invoice_ids]
    assert len(charged) == 3
    assert (await service.collect_due_invoices(up, now, SCHEDULE)).attempted == 0
    assert (await service.verify_ledger()).ok
    report(f"payments fault: Stripe down for {len(keys)} attempts, retried with the same keys, {len(charged)} charges")


async def test_a_charge_stripe_refuses_is_recorded_on_its_invoice_and_the_run_goes_on_for_everyone_else(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    stack_env: dict[str, str],
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    refused = await factory.tenant(staff)
    healthy = await factory.tenant(staff)
    for tenant in (refused, healthy):
        await subscribe(client, staff.headers, tenant["id"], "pro")
        await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    [refused_invoice] = await invoices(client, staff.headers, refused["id"])
    [healthy_invoice] = await invoices(client, staff.headers, healthy["id"])
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    inspector = await connect_as_inspector(stack_env)
    try:
        # The card was deleted at Stripe: charging it is an InvalidRequestError (resource_missing), not a decline.
        await inspector.execute(
            "update payment_methods set stripe_payment_method_id = 'pm_deleted_at_stripe' where tenant_id = $1::uuid",
            refused["id"],
        )
        refusals = metrics.COLLECTION_FAILURES_TOTAL.labels(reason="refused")._value.get()
        now = datetime.now(UTC) + timedelta(minutes=1)

        first = await service.collect_due_invoices(gateway, now, SCHEDULE)
        assert (first.attempted, first.succeeded, first.failed, first.refused, first.errors) == (2, 1, 1, 1, []), first
        assert metrics.COLLECTION_FAILURES_TOTAL.labels(reason="refused")._value.get() == refusals + 1
        attempts = await inspector.fetch(
            "select invoice_id::text, attempt, status, decline_code from payments order by created_at"
        )
        # Recorded on the refused invoice (state and reason), not left pending for the next run to trip on.
        assert {row["invoice_id"]: (row["status"], row["decline_code"]) for row in attempts} == {
            refused_invoice["id"]: ("failed", "resource_missing"),
            healthy_invoice["id"]: ("succeeded", None),
        }
        # The next hour: the refused invoice waits for its dunning retry instead of being tried first again.
        again = await service.collect_due_invoices(gateway, now + timedelta(hours=1), SCHEDULE)
        assert (again.attempted, again.refused) == (0, 0), again
        retry = await service.collect_due_invoices(gateway, now + timedelta(days=SCHEDULE[0]), SCHEDULE)
        assert (retry.attempted, retry.failed, retry.refused) == (1, 1, 1), retry
    finally:
        await inspector.close()
    paid = (await client.get(f"/v1/invoices/{healthy_invoice['id']}", headers=staff.headers)).json()
    assert paid["status"] == "paid"
    still_due = (await client.get(f"/v1/invoices/{refused_invoice['id']}", headers=staff.headers)).json()
    assert still_due["status"] == "finalized"
    assert (await service.verify_ledger()).ok


async def test_an_invoice_with_a_payment_in_flight_cannot_be_voided_or_credited_until_it_settles(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    staff, _, invoice = await _invoice_with_a_pending_attempt(client, factory, settings, stripe_client)
    url = f"/v1/invoices/{invoice['id']}"
    # Stripe may have charged it: voiding or crediting now could leave money taken for nothing owed.
    body = assert_problem(await client.post(f"{url}/void", headers=staff.headers), 409, "payment_in_flight")
    assert "pending" in body["detail"]
    credit = {"amount_minor": 100, "reason": "goodwill"}
    assert_problem(
        await client.post(f"{url}/credit-notes", json=credit, headers=staff.headers), 409, "payment_in_flight"
    )
    unchanged = (await client.get(url, headers=staff.headers)).json()
    assert (unchanged["status"], unchanged["credited_minor"]) == ("finalized", 0)

    # The attempt settles (sent again with its key): the invoice is paid, and can be credited (not voided).
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    settled = await service.collect_invoice(gateway, uuid.UUID(invoice["tenant_id"]), uuid.UUID(invoice["id"]))
    assert settled.status == "succeeded"
    assert_problem(await client.post(f"{url}/void", headers=staff.headers), 409, "invalid_invoice_transition")
    noted = await client.post(f"{url}/credit-notes", json=credit, headers=staff.headers)
    assert noted.status_code == 201, noted.text
    assert (await service.verify_ledger()).ok


async def test_a_fault_of_ours_on_one_invoice_is_counted_and_the_run_collects_the_others(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    stack_env: dict[str, str],
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    broken = await factory.tenant(staff)
    healthy = await factory.tenant(staff)
    for tenant in (broken, healthy):
        await subscribe(client, staff.headers, tenant["id"], "pro")
        await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    [broken_invoice] = await invoices(client, staff.headers, broken["id"])
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    inspector = await connect_as_inspector(stack_env)
    try:
        # A row no code path can handle: an attempt in flight in a currency the platform does not know (written
        # behind the application's back). Sending it again raises, unexpectedly.
        await inspector.execute(
            "insert into payments (id, tenant_id, invoice_id, attempt, idempotency_key, status, amount_minor, "
            "currency, stripe_customer_id, stripe_payment_method_id, dunning_step) "
            "select gen_random_uuid(), i.tenant_id, i.id, 1, 'invoice:' || i.id || ':attempt:1', 'pending', "
            "i.amount_due_minor, 'XXX', c.stripe_customer_id, m.stripe_payment_method_id, 0 "
            "from invoices i join billing_customers c on c.tenant_id = i.tenant_id "
            "join payment_methods m on m.tenant_id = i.tenant_id where i.id = $1::uuid",
            broken_invoice["id"],
        )
        errors = metrics.COLLECTION_FAILURES_TOTAL.labels(reason="error")._value.get()
        now = datetime.now(UTC) + timedelta(minutes=1)
        run = await service.collect_due_invoices(gateway, now, SCHEDULE)
        assert (run.attempted, run.succeeded, run.errors) == (2, 1, [broken_invoice["id"]]), run
        assert metrics.COLLECTION_FAILURES_TOTAL.labels(reason="error")._value.get() == errors + 1
        # Its attempt stays pending with its key, and the failure is recorded on the invoice: sent again after
        # a back-off (an hour, doubling), never ahead of healthy work.
        pending = await inspector.fetch("select invoice_id::text from payments where status = 'pending'")
        assert [row["invoice_id"] for row in pending] == [broken_invoice["id"]]
        recorded = await inspector.fetchrow(
            "select collection_error, collection_attempts, collection_retry_at from invoices where id = $1::uuid",
            broken_invoice["id"],
        )
        assert (recorded["collection_error"], recorded["collection_attempts"]) == ("unknown_currency", 1)
        assert recorded["collection_retry_at"] == now + timedelta(hours=1)
        soon = await service.collect_due_invoices(gateway, now + timedelta(minutes=30), SCHEDULE)
        assert (soon.attempted, soon.errors) == (0, []), soon
        await inspector.execute(
            "update payments set currency = 'EUR' where invoice_id = $1::uuid", broken_invoice["id"]
        )
        again = await service.collect_due_invoices(gateway, now + timedelta(hours=1), SCHEDULE)
        assert (again.attempted, again.succeeded, again.errors) == (1, 1, []), again
        cleared = await inspector.fetchrow(
            "select status, collection_error from invoices where id = $1::uuid", broken_invoice["id"]
        )
        assert (cleared["status"], cleared["collection_error"]) == ("paid", None)
    finally:
        await inspector.close()
    assert (await service.verify_ledger()).ok
