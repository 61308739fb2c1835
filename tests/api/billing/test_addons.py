"""Add-ons (paid plugins) on a real subscription: attached through the service inside `tenant_tx`, as the plugin
registry does, billed by the cycle at each boundary, shown on the upcoming invoice; the invoice-paid hook
fires once when such an invoice is paid, by collection or by webhook."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from billing import hooks, service
from billing.errors import (
    CurrencyMismatch,
    InvalidCharge,
    MetricNotFound,
    PaymentProviderUnavailable,
    SubscriptionNotFound,
)
from billing.invoices import repository as invoices_repository
from billing.payments.gateway import StripeGateway
from controlplane.core.db import tenant_tx
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import create_api_key
from tests.api.billing._support import event, invoices, metric, plan, post_usage, subscribe
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.api.billing.test_webhooks import event as stripe_event
from tests.api.billing.test_webhooks import signed, webhook_secret
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

__all__ = ["stripe_client", "webhook_secret"]  # the fixtures, shared


def utc(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


SEO = {"type": "flat", "name": "Licence", "amount_minor": "1000"}
EDITOR = {"type": "per_seat", "name": "Editor", "unit_amount_minor": "250"}
SCANS = {
    "type": "metered",
    "name": "Scans",
    "metric_code": "seo_scans",
    "model": "per_unit",
    "unit_amount_minor": "0.5",
}


@pytest.fixture(autouse=True)
def no_hooks() -> Any:
    # Only this module's callbacks; the app's own (the plugin registry's renewal) come back afterwards.
    registered = list(hooks._INVOICE_PAID)
    disputes = list(hooks._DISPUTE_CHANGED)
    hooks.clear_hooks()
    yield
    hooks.clear_hooks()
    for callback in registered:
        hooks.on_invoice_paid(callback)
    for dispute_callback in disputes:
        hooks.on_dispute_changed(dispute_callback)


async def attach(tenant_id: uuid.UUID, source_id: uuid.UUID, name: str, charge: dict[str, Any], **extra: Any) -> Any:
    values: dict[str, Any] = {"currency": "EUR", "quantity": 1, "billable_from": utc(2026, 1, 20, 10), **extra}
    async with tenant_tx(tenant_id):
        return await service.attach_addon(tenant_id=tenant_id, source_id=source_id, name=name, charge=charge, **values)


async def run(as_of: datetime) -> int:
    report = await service.run_cycle(as_of + timedelta(hours=2), grace=timedelta(hours=1))
    assert report.failed == [], report.failed
    return report.invoices_created


def described(invoice: dict[str, Any]) -> list[tuple[str, int]]:
    return [(line["description"], line["amount_minor"]) for line in invoice["lines"]]


async def _subscribed(client: AsyncClient, factory: Factory) -> tuple[Actor, dict[str, Any], uuid.UUID]:
    """A tenant (10 % tax) on a 2000 flat monthly EUR plan since 1 January 2026 (January invoiced)."""
    staff = await factory.staff()
    await metric(client, staff.headers, "seo_scans")
    await plan(client, staff.headers, "base", [{"type": "flat", "name": "Base", "amount_minor": 2000}])
    tenant = await factory.tenant(staff, tax_rate_bps=1000)
    await subscribe(client, staff.headers, tenant["id"], "base", start_at=utc(2026, 1, 1))
    return staff, tenant, uuid.UUID(tenant["id"])


async def test_paid_plugins_are_billed_at_each_boundary_with_a_line_each(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, tenant_id = await _subscribed(client, factory)
    seo, editor, scans = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    # Installed on 20 January; the editor plugin has a trial to 15 February; scans are metered from 1 January.
    seo_id = await attach(tenant_id, seo, "SEO Booster", SEO)
    await attach(tenant_id, editor, "Editor Pro", EDITOR, quantity=3, billable_from=utc(2026, 2, 15))
    await attach(tenant_id, scans, "Scan Plus", SCANS, billable_from=utc(2025, 12, 1))
    # Attaching the same install again changes nothing, whatever else it says.
    assert await attach(tenant_id, seo, "SEO Booster", SEO, quantity=9) == seo_id

    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    member = {"Authorization": f"Bearer {key}"}
    used = [event(f"jan-{n}", "seo_scans", utc(2026, 1, 25, n)) for n in range(7)]
    assert (await post_usage(client, member, used)).json()["accepted"] == 7

    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=staff.headers)).json()
    february_lines = [
        ("Base: Base, 2026-02-01 to 2026-03-01", 2000),
        # 1000 x 12/31 = 387.09… → 387 for 20-31 January, in arrears; then February in advance.
        ("Remaining time on SEO Booster: Licence from 2026-01-20 to 2026-02-01 (12/31 days)", 387),
        ("SEO Booster: Licence, 2026-02-01 to 2026-03-01", 1000),
        # 7 x 0.5 = 3.5 → 4.
        ("Scan Plus: Scans: 7 unit(s), 2026-01-01 to 2026-02-01", 4),
    ]
    assert described(upcoming) == february_lines
    assert (upcoming["subtotal_minor"], upcoming["tax_minor"], upcoming["total_minor"]) == (3391, 339, 3730)

    assert await run(utc(2026, 2, 1)) == 1
    assert await run(utc(2026, 2, 1)) == 0  # a rerun bills nothing twice
    january, february = await invoices(client, staff.headers, tenant["id"])
    assert described(january) == [("Base: Base, 2026-01-01 to 2026-02-01", 2000)]
    assert described(february) == february_lines
    assert (february["subtotal_minor"], february["tax_minor"], february["total_minor"]) == (3391, 339, 3730)

    # SEO uninstalled on 10 February (February stays paid for, no credit); 3 scans in February.
    async with tenant_tx(tenant_id):
        await service.end_addon(tenant_id, seo, utc(2026, 2, 10, 9))
        await service.end_addon(tenant_id, seo, utc(2026, 2, 20))  # the first end stands
    used = [event(f"feb-{n}", "seo_scans", utc(2026, 2, 12, n)) for n in range(3)]
    assert (await post_usage(client, member, used)).json()["accepted"] == 3
    assert await run(utc(2026, 3, 1)) == 1
    march = (await invoices(client, staff.headers, tenant["id"]))[2]
    assert described(march) == [
        ("Base: Base, 2026-03-01 to 2026-04-01", 2000),
        # The editor's trial ended on 15 February: 3 x 250 x 14/28 = 375, then March in advance.
        ("Remaining time on Editor Pro: Editor x 3 from 2026-02-15 to 2026-03-01 (14/28 days)", 375),
        ("Editor Pro: Editor x 3, 2026-03-01 to 2026-04-01", 750),
        ("Scan Plus: Scans: 3 unit(s), 2026-02-01 to 2026-03-01", 2),  # 1.5 → 2
    ]
    assert (march["subtotal_minor"], march["tax_minor"], march["total_minor"]) == (3127, 313, 3440)

    # Two more editor seats during March: March is not re-billed, April bills 5.
    async with tenant_tx(tenant_id):
        await service.set_addon_quantity(tenant_id, editor, 5)
    assert await run(utc(2026, 4, 1)) == 1
    april = (await invoices(client, staff.headers, tenant["id"]))[3]
    assert described(april) == [
        ("Base: Base, 2026-04-01 to 2026-05-01", 2000),
        ("Editor Pro: Editor x 5, 2026-04-01 to 2026-05-01", 1250),
        ("Scan Plus: Scans: 0 unit(s), 2026-03-01 to 2026-04-01", 0),
    ]
    assert april["total_minor"] == 3575  # 3250 + 325 tax
    report = await service.verify_ledger()
    assert report.ok, report


async def test_attach_checks_its_input_and_the_subscription(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff, _, tenant_id = await _subscribed(client, factory)
    with pytest.raises(CurrencyMismatch):
        await attach(tenant_id, uuid.uuid4(), "Dollars", SEO, currency="USD")
    with pytest.raises(InvalidCharge):
        await attach(tenant_id, uuid.uuid4(), "Broken", {"type": "flat"})
    with pytest.raises(MetricNotFound):
        await attach(tenant_id, uuid.uuid4(), "Unknown", {**SCANS, "metric_code": "nope"})
    with pytest.raises(InvalidCharge):
        service.validate_addon_charge({"type": "tiered"}, "EUR")
    assert service.validate_addon_charge(EDITOR, "EUR").kind == "per_seat"
    with pytest.raises(service.AddonNotFound):
        async with tenant_tx(tenant_id):
            await service.set_addon_quantity(tenant_id, uuid.uuid4(), 2)
    with pytest.raises(service.AddonNotFound):
        async with tenant_tx(tenant_id):
            await service.end_addon(tenant_id, uuid.uuid4(), utc(2026, 2, 1))

    unsubscribed = uuid.UUID((await factory.tenant(staff))["id"])
    with pytest.raises(SubscriptionNotFound):
        await attach(unsubscribed, uuid.uuid4(), "SEO Booster", SEO)
    # An install id is one tenant's: another tenant cannot attach it (nor see it).
    taken = uuid.uuid4()
    await attach(tenant_id, taken, "SEO Booster", SEO)
    other = uuid.UUID((await factory.tenant(staff))["id"])
    await subscribe(client, staff.headers, str(other), "base", start_at=utc(2026, 1, 1))
    with pytest.raises(service.AddonSourceTaken):
        await attach(other, taken, "SEO Booster", SEO)
    with pytest.raises(service.AddonNotFound):
        async with tenant_tx(other):
            await service.end_addon(other, taken, utc(2026, 2, 1))

    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch("select tenant_id, billable_from, ended_at from subscription_addons")
    finally:
        await inspector.close()
    assert [(row["tenant_id"], row["billable_from"], row["ended_at"]) for row in rows] == [
        (tenant_id, utc(2026, 1, 20, 10), None)
    ]


async def test_a_billable_from_already_invoiced_is_billed_from_the_current_period_start(
    client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, tenant_id = await _subscribed(client, factory)
    await attach(tenant_id, uuid.uuid4(), "SEO Booster", SEO, billable_from=utc(2025, 11, 1))
    await run(utc(2026, 2, 1))
    february = (await invoices(client, staff.headers, tenant["id"]))[1]
    # January was invoiced without it: all of January in arrears (31/31), then February in advance.
    assert [amount for _, amount in described(february)] == [2000, 1000, 1000]


async def test_a_trialing_subscription_bills_its_addons_at_the_trial_end(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "trial", [{"type": "flat", "name": "Base", "amount_minor": 2000}], trial_days=14)
    tenant = await factory.tenant(staff)
    tenant_id = uuid.UUID(tenant["id"])
    await subscribe(client, staff.headers, tenant["id"], "trial", start_at=utc(2026, 1, 20))  # trial to 3 Feb
    await attach(tenant_id, uuid.uuid4(), "SEO Booster", SEO, billable_from=utc(2026, 1, 25, 15))
    assert await run(utc(2026, 2, 3)) == 1
    [first] = await invoices(client, staff.headers, tenant["id"])
    # 25-31 January 1000 x 7/31 → 226, 1-2 February 1000 x 2/28 → 71 (the plugin is billed during the
    # subscription's trial); from 3 February both in advance for 26/28 days: 2000 → 1857, 1000 → 929.
    assert [amount for _, amount in described(first)] == [1857, 226, 71, 929]


async def _addon_invoice(client: AsyncClient, factory: Factory, stripe_client: Any) -> tuple[Actor, uuid.UUID, str]:
    staff, tenant, tenant_id = await _subscribed(client, factory)
    await attach(tenant_id, uuid.uuid4(), "SEO Booster", SEO)
    await run(utc(2026, 2, 1))
    february = (await invoices(client, staff.headers, tenant["id"]))[1]
    assert february["total_minor"] == 3726  # 2000 + 387 + 1000, + 339 tax
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    return staff, tenant_id, february["id"]


def recorder() -> list[tuple[uuid.UUID, uuid.UUID, str]]:
    """Registers a callback that notes each call and the invoice's status as its transaction sees it."""
    calls: list[tuple[uuid.UUID, uuid.UUID, str]] = []

    async def renew(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> None:
        row = await invoices_repository.get_invoice(invoice_id)
        assert row is not None
        calls.append((tenant_id, invoice_id, row["status"]))

    hooks.on_invoice_paid(renew)
    hooks.on_invoice_paid(renew)  # registered once
    return calls


async def test_the_invoice_paid_hook_fires_once_inside_the_paying_transaction(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff, tenant_id, invoice_id = await _addon_invoice(client, factory, stripe_client)
    calls = recorder()
    paid = await client.post(f"/v1/invoices/{invoice_id}/pay", headers=staff.headers)
    assert (paid.status_code, paid.json()["status"]) == (200, "succeeded"), paid.text
    again = await client.post(f"/v1/invoices/{invoice_id}/pay", headers=staff.headers)
    assert again.status_code == 200, again.text
    assert calls == [(tenant_id, uuid.UUID(invoice_id), "paid")]


async def test_a_failing_hook_rolls_the_payment_back_and_it_settles_later(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    staff, tenant_id, invoice_id = await _addon_invoice(client, factory, stripe_client)

    async def broken(tenant_id: uuid.UUID, invoice_id: uuid.UUID) -> None:
        raise RuntimeError("the registry is down")

    hooks.on_invoice_paid(broken)
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    with pytest.raises(RuntimeError):
        await service.collect_invoice(gateway, tenant_id, uuid.UUID(invoice_id))
    unpaid = (await client.get(f"/v1/invoices/{invoice_id}", headers=staff.headers)).json()
    assert unpaid["status"] == "finalized"
    hooks.clear_hooks()
    calls = recorder()
    payment = await service.collect_invoice(gateway, tenant_id, uuid.UUID(invoice_id))
    assert (payment.status, payment.attempt) == ("succeeded", 1)  # the pending attempt, settled
    assert calls == [(tenant_id, uuid.UUID(invoice_id), "paid")]


async def test_the_hook_fires_once_when_a_webhook_settles_the_payment(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any, webhook_secret: str
) -> None:
    staff, tenant_id, invoice_id = await _addon_invoice(client, factory, stripe_client)
    unreachable = dataclasses.replace(settings, stripe_api_base="http://127.0.0.1:9")
    gateway = StripeGateway(make_stripe_client(unreachable, SecretStore.connect(settings)))
    with pytest.raises(PaymentProviderUnavailable):
        await service.collect_invoice(gateway, tenant_id, uuid.UUID(invoice_id))
    calls = recorder()
    succeeded = stripe_event(
        "evt_addon_paid", "payment_intent.succeeded", {"id": "pi_addon", "metadata": {"invoice_id": invoice_id}}
    )
    for _ in range(3):
        answer = await client.post("/v1/webhooks/stripe", content=succeeded, headers=signed(succeeded, webhook_secret))
        assert answer.status_code == 200, answer.text
    assert calls == [(tenant_id, uuid.UUID(invoice_id), "paid")]
    paid = (await client.get(f"/v1/invoices/{invoice_id}", headers=staff.headers)).json()
    assert paid["status"] == "paid"
