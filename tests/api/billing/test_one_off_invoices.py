"""One-off invoices over HTTP: staff bill a tenant outside its subscription; taxed, numbered in the tenant's
sequence, paid by card, voided, credited, kept as a draft until finalized, and refused with a code when the input
is bad. Amounts are the worked examples of tests/unit/billing/test_one_off.py."""

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
from tests.api._helpers import assert_problem, create_api_key
from tests.api.billing._support import credit_notes, invoices, plan, subscribe
from tests.api.billing.test_payments import DECLINED_CARD, GOOD_CARD, _add_card, card, stripe_client
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

__all__ = ["stripe_client"]  # the fixture, shared
SCHEDULE = (1, 3, 5, 7)
USD_LINES = [
    {"description": "Setup", "quantity": "2.5", "unit_amount_minor": 1999},
    {"description": "Training hours", "quantity": "1.333", "unit_amount_minor": 1500},
]


def url(tenant: dict[str, Any]) -> str:
    return f"/v1/tenants/{tenant['id']}/invoices"


async def _create(client: AsyncClient, headers: dict[str, str], tenant: dict[str, Any], **body: Any) -> Any:
    return await client.post(url(tenant), json={"currency": "USD", "lines": USD_LINES, **body}, headers=headers)


async def _usd_tenant(client: AsyncClient, factory: Factory) -> tuple[Actor, dict[str, Any]]:
    staff = await factory.staff()
    return staff, await factory.tenant(staff, currency="USD", tax_rate_bps=825)


async def test_staff_create_a_taxed_numbered_one_off_invoice_and_a_card_pays_it(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff, tenant = await _usd_tenant(client, factory)
    await plan(client, staff.headers, "basic", [{"type": "flat", "amount_minor": 1000}], currency="USD")
    await subscribe(client, staff.headers, tenant["id"], "basic")
    [cycle] = await invoices(client, staff.headers, tenant["id"])
    admin = await factory.member(tenant["id"], "tenant_admin")
    assert_problem(await _create(client, admin.headers, tenant), 403)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_admin")
    assert_problem(await _create(client, {"Authorization": f"Bearer {key}"}, tenant), 403)

    retry = {**staff.headers, "Idempotency-Key": f"one-off-{uuid.uuid4()}"}
    response = await _create(client, retry, tenant)
    assert response.status_code == 201, response.text
    invoice = response.json()
    # 2.5 x 1999 = 4997.5 -> 4998; 1.333 x 1500 = 1999.5 -> 2000; subtotal 6998; 8.25 % = 577.335 -> 577.
    assert [(line["charge_kind"], line["quantity"], line["amount_minor"]) for line in invoice["lines"]] == [
        ("one_off", "2.5", 4998),
        ("one_off", "1.333", 2000),
    ]
    assert (invoice["subtotal_minor"], invoice["tax_minor"], invoice["total_minor"]) == (6998, 577, 7575)
    assert invoice["taxes"][0]["amount_minor"] == 577
    assert (invoice["kind"], invoice["subscription_id"], invoice["status"]) == ("one_off", None, "finalized")
    assert invoice["amount_due_minor"] == 7575 and invoice["issued_at"] is not None
    # Numbered next in the tenant's sequence, after the subscription's first invoice.
    assert invoice["number"] == cycle["number"][:-4] + f"{int(cycle['number'][-4:]) + 1:04d}"
    again = await _create(client, retry, tenant)
    assert again.status_code == 201 and again.json() == invoice
    assert len(await invoices(client, admin.headers, tenant["id"])) == 2
    assert (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json() == invoice

    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["amount_minor"]) == ("succeeded", 7575)
    after = (await client.get(f"/v1/invoices/{invoice['id']}", headers=admin.headers)).json()
    assert (after["status"], after["amount_due_minor"]) == ("paid", 0)
    assert_problem(
        await client.post(f"/v1/invoices/{invoice['id']}/void", headers=staff.headers),
        409,
        "invalid_invoice_transition",
    )
    report = await service.verify_ledger()
    assert report.ok, report

    conn = await connect_as_inspector(stack_env)
    try:
        actions = await conn.fetch(
            "select action from audit_events where tenant_id = $1 and target_id::text = $2",
            uuid.UUID(tenant["id"]),
            invoice["id"],
        )
    finally:
        await conn.close()
    assert "invoice.one_off_created" in {row["action"] for row in actions}


async def test_a_draft_waits_for_staff_then_is_voided_and_another_credited(
    client: AsyncClient, factory: Factory
) -> None:
    staff, tenant = await _usd_tenant(client, factory)
    created = await _create(client, staff.headers, tenant, finalize=False)
    assert created.status_code == 201, created.text
    draft = created.json()
    assert (draft["status"], draft["number"], draft["total_minor"]) == ("draft", None, 7575)
    # No automatic finalization, however late the job runs.
    assert await service.finalize_due_drafts(datetime.now(UTC) + timedelta(days=3650)) == 0
    admin = await factory.member(tenant["id"], "tenant_admin")
    finalize_url = f"/v1/invoices/{draft['id']}/finalize"
    assert_problem(await client.post(finalize_url, headers=admin.headers), 403)
    assert_problem(await client.post(f"/v1/invoices/{uuid.uuid4()}/finalize", headers=staff.headers), 404)
    final = await client.post(finalize_url, headers=staff.headers)
    assert final.status_code == 200, final.text
    finalized = final.json()
    assert (finalized["status"], finalized["total_minor"]) == ("finalized", 7575)
    assert finalized["number"] is not None
    repeated = await client.post(finalize_url, headers=staff.headers)
    assert repeated.status_code == 200 and repeated.json() == finalized

    voided = await client.post(f"/v1/invoices/{draft['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text
    assert (voided.json()["status"], voided.json()["amount_due_minor"]) == ("void", 0)
    assert_problem(await client.post(finalize_url, headers=staff.headers), 409, "invalid_invoice_transition")

    other = (await _create(client, staff.headers, tenant)).json()
    note = await client.post(
        f"/v1/invoices/{other['id']}/credit-notes",
        json={"amount_minor": 575, "reason": "goodwill"},
        headers=staff.headers,
    )
    assert note.status_code == 201, note.text
    credited = (await client.get(f"/v1/invoices/{other['id']}", headers=staff.headers)).json()
    assert (credited["credited_minor"], credited["amount_due_minor"]) == (575, 7000)
    assert [n["amount_minor"] for n in await credit_notes(client, staff.headers, other["id"])] == [575]
    # Numbers stay gapless: the void draft took its number when finalized, the next one follows it.
    assert int(other["number"][-4:]) == int(finalized["number"][-4:]) + 1
    report = await service.verify_ledger()
    assert report.ok, report


async def test_bad_one_off_invoices_are_refused_with_a_code(client: AsyncClient, factory: Factory) -> None:
    staff, tenant = await _usd_tenant(client, factory)
    line = {"description": "Setup", "quantity": "1", "unit_amount_minor": 100}
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({"currency": "USD", "lines": []}, 400, None),
        ({"currency": "USD", "lines": [line] * 101}, 400, None),
        ({"currency": "USD", "lines": [dict(line, unit_amount_minor=10**16)]}, 400, None),
        ({"currency": "USD", "lines": [dict(line, unit_amount_minor=-1)]}, 400, None),
        (
            {"currency": "USD", "lines": [dict(line, quantity="1000000", unit_amount_minor=10**15)]},
            422,
            "invalid_one_off_invoice",
        ),
        ({"currency": "USD", "lines": [dict(line, quantity="0")]}, 422, "invalid_one_off_invoice"),
        ({"currency": "USD", "lines": [dict(line, quantity="1e999999")]}, 422, "invalid_one_off_invoice"),
        ({"currency": "USD", "lines": [dict(line, quantity=1.5)]}, 400, None),
        ({"currency": "USD", "lines": [dict(line, description="bell\x07")]}, 400, None),
        ({"currency": "USD", "lines": [dict(line, description="   ")]}, 422, "invalid_one_off_invoice"),
        ({"currency": "XXX", "lines": [line]}, 422, "unknown_currency"),
        ({"currency": "EUR", "lines": [line]}, 422, "currency_mismatch"),
        ({"currency": "USD", "lines": [line], "subscription_id": str(uuid.uuid4())}, 400, None),
    ]
    for body, status, code in cases:
        response = await client.post(url(tenant), json=body, headers=staff.headers)
        assert_problem(response, status, code)
    missing = await client.post(
        f"/v1/tenants/{uuid.uuid4()}/invoices", json={"currency": "USD", "lines": [line]}, headers=staff.headers
    )
    assert_problem(missing, 404)
    assert await invoices(client, staff.headers, tenant["id"]) == []


async def test_dunning_collects_a_one_off_invoice_like_any_other(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    staff, tenant = await _usd_tenant(client, factory)
    invoice = (await _create(client, staff.headers, tenant)).json()
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    start = datetime.now(UTC) + timedelta(minutes=1)
    first = await service.collect_due_invoices(gateway, start, SCHEDULE)
    assert (first.attempted, first.failed, first.uncollectible) == (1, 1, 0)
    last = await service.collect_due_invoices(gateway, start + timedelta(days=SCHEDULE[-1]), SCHEDULE)
    assert (last.attempted, last.failed, last.uncollectible) == (1, 1, 1)
    given_up = (await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)).json()
    assert (given_up["status"], given_up["amount_due_minor"]) == ("uncollectible", 7575)
    assert (await service.verify_ledger()).ok
