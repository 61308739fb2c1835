"""Prepaid credits over HTTP: a tenant's wallet, paid top-ups through localstripe, staff grants, credit applied
as invoices are finalized, given back on a void, expiry, refunds of the unapplied part, and the ledger check."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import assert_problem
from tests.api.billing._support import parse, plan, stamp, subscribe, utcnow
from tests.factories import Actor, Factory

GOOD_CARD = "4242424242424242"
DECLINED_CARD = "4000000000000341"
# EUR, 10 % tax: the plan's 31.00 is 34.10 due.
PLAN_TOTAL = 3410


@pytest.fixture
def stripe_client(settings: Settings) -> Any:
    return make_stripe_client(settings, SecretStore.connect(settings))


def card(stripe_client: Any, number: str) -> str:
    method = stripe_client.v1.payment_methods.create(
        params={"type": "card", "card": {"number": number, "exp_month": 12, "exp_year": 2031, "cvc": "123"}}
    )
    return str(method.id)


async def add_card(client: AsyncClient, headers: dict[str, str], tenant_id: str, method_id: str) -> None:
    response = await client.post(
        f"/v1/tenants/{tenant_id}/payment-methods",
        json={"stripe_payment_method_id": method_id, "default": True},
        headers=headers,
    )
    assert response.status_code == 201, response.text


async def setup(client: AsyncClient, factory: Factory) -> tuple[Actor, Actor, dict[str, Any]]:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff, tax_rate_bps=1000)
    admin = await factory.member(tenant["id"], "tenant_admin")
    return staff, admin, tenant


async def top_up(client: AsyncClient, actor: Actor, tenant_id: str, **body: Any) -> Any:
    return await client.post(f"/v1/tenants/{tenant_id}/wallet/top-ups", json=body, headers=actor.headers)


async def wallet(client: AsyncClient, actor: Actor, tenant_id: str, query: str = "") -> dict[str, Any]:
    response = await client.get(f"/v1/tenants/{tenant_id}/wallet{query}", headers=actor.headers)
    assert response.status_code == 200, response.text
    return response.json()


def movements(body: dict[str, Any]) -> list[tuple[str, int]]:
    return [(item["kind"], item["amount_minor"]) for item in body["transactions"]]


async def invoices_of(client: AsyncClient, actor: Actor, tenant_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/tenants/{tenant_id}/invoices", headers=actor.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def assert_ledger_clean() -> None:
    report = await service.verify_ledger()
    assert report.ok, report


async def test_an_empty_wallet_in_the_tenants_currency(client: AsyncClient, factory: Factory) -> None:
    _, admin, tenant = await setup(client, factory)
    body = await wallet(client, admin, tenant["id"])
    assert body == {
        "currency": "EUR",
        "balance_minor": 0,
        "purchased_minor": 0,
        "granted_minor": 0,
        "transactions": [],
        "next_cursor": None,
    }
    assert (await wallet(client, admin, tenant["id"], "?currency=JPY"))["currency"] == "JPY"


async def test_a_paid_top_up_buys_credit_by_card_through_an_untaxed_credit_purchase(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    _staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    response = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True)
    assert response.status_code == 201, response.text
    lot = response.json()
    assert (lot["source"], lot["amount_minor"], lot["currency"]) == ("purchased", 5000, "EUR")
    invoice = (await client.get(f"/v1/invoices/{lot['invoice_id']}", headers=admin.headers)).json()
    assert (invoice["kind"], invoice["status"], invoice["subscription_id"]) == ("credit_purchase", "paid", None)
    # Not taxed: the credit is taxed on the invoices it pays.
    assert (invoice["subtotal_minor"], invoice["tax_minor"], invoice["total_minor"]) == (5000, 0, 5000)
    assert [line["description"] for line in invoice["lines"]] == ["Prepaid credit"]
    body = await wallet(client, admin, tenant["id"])
    assert (body["balance_minor"], body["purchased_minor"], body["granted_minor"]) == (5000, 5000, 0)
    assert movements(body) == [("top_up", 5000)]
    assert body["transactions"][0]["invoice_id"] == lot["invoice_id"]
    await assert_ledger_clean()


async def test_a_declined_top_up_adds_no_credit_and_voids_its_purchase(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    response = await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True)
    assert_problem(response, 402, "top_up_declined")
    [purchase] = await invoices_of(client, staff, tenant["id"])
    assert (purchase["kind"], purchase["status"], purchase["amount_due_minor"]) == ("credit_purchase", "void", 0)
    assert (await wallet(client, admin, tenant["id"]))["balance_minor"] == 0
    await assert_ledger_clean()


async def test_a_grant_is_staff_only_and_pays_the_next_cycle_invoice_first(
    client: AsyncClient, factory: Factory
) -> None:
    staff, admin, tenant = await setup(client, factory)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    assert_problem(
        await top_up(client, admin, tenant["id"], amount_minor=1000, paid=False), 403, "credit_grant_staff_only"
    )
    granted = await top_up(client, staff, tenant["id"], amount_minor=1000, paid=False)
    assert granted.status_code == 201, granted.text
    assert (granted.json()["source"], granted.json()["invoice_id"]) == ("granted", None)

    # The next boundary's invoice takes the credit at finalization: 34.10 - 10.00 = 24.10 due; its preview says so.
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=admin.headers)).json()
    assert (upcoming["credits_applied_minor"], upcoming["amount_due_minor"]) == (1000, PLAN_TOTAL - 1000)
    report = await service.run_cycle(parse(subscription["current_period_end"]) + timedelta(hours=2))
    assert report.failed == [], report.failed
    latest = (await invoices_of(client, staff, tenant["id"]))[-1]
    assert latest["kind"] == "cycle"
    assert (latest["total_minor"], latest["credits_applied_minor"], latest["amount_due_minor"]) == (
        PLAN_TOTAL,
        1000,
        PLAN_TOTAL - latest["credited_minor"] - 1000,
    )
    body = await wallet(client, admin, tenant["id"])
    assert body["balance_minor"] == 0
    assert movements(body) == [("grant", 1000), ("applied", -1000)]
    assert body["transactions"][1]["invoice_id"] == latest["id"]
    assert (latest["credits_applied_minor"], latest["amount_due_minor"]) == (
        upcoming["credits_applied_minor"],
        upcoming["amount_due_minor"],
    )
    await assert_ledger_clean()

    # Voiding the invoice gives the credit back to its lot.
    voided = await client.post(f"/v1/invoices/{latest['id']}/void", headers=staff.headers)
    assert voided.status_code == 200, voided.text
    body = await wallet(client, admin, tenant["id"])
    assert (body["balance_minor"], body["granted_minor"]) == (1000, 1000)
    assert movements(body) == [("grant", 1000), ("applied", -1000), ("restored", 1000)]
    await assert_ledger_clean()


async def test_the_upcoming_invoice_counts_only_the_credit_still_good_at_its_boundary(
    client: AsyncClient, factory: Factory
) -> None:
    staff, admin, tenant = await setup(client, factory)
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    before_boundary = stamp(parse(subscription["current_period_end"]) - timedelta(hours=1))
    expiring = await top_up(client, staff, tenant["id"], amount_minor=700, paid=False, expires_at=before_boundary)
    assert expiring.status_code == 201, expiring.text
    assert (await top_up(client, staff, tenant["id"], amount_minor=300, paid=False)).status_code == 201
    upcoming = (await client.get(f"/v1/tenants/{tenant['id']}/invoices/upcoming", headers=admin.headers)).json()
    assert (upcoming["credits_applied_minor"], upcoming["amount_due_minor"]) == (300, PLAN_TOTAL - 300)
    assert (await wallet(client, admin, tenant["id"]))["balance_minor"] == 1000  # a preview moves nothing


async def test_credit_that_covers_the_amount_due_pays_the_invoice(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    assert (await top_up(client, admin, tenant["id"], amount_minor=5000, paid=True)).status_code == 201
    assert (await top_up(client, staff, tenant["id"], amount_minor=500, paid=False)).status_code == 201
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    first = next(i for i in await invoices_of(client, staff, tenant["id"]) if i["kind"] != "credit_purchase")
    total = first["total_minor"]  # the first period may be prorated
    assert 500 < total <= PLAN_TOTAL
    assert (first["status"], first["credits_applied_minor"], first["amount_due_minor"]) == ("paid", total, 0)
    body = await wallet(client, admin, tenant["id"])
    # Granted first (5.00), then the rest from the purchase.
    assert movements(body)[-2:] == [("applied", -500), ("applied", -(total - 500))]
    assert (body["granted_minor"], body["purchased_minor"]) == (0, 5000 - (total - 500))
    live = (await client.get(f"/v1/subscriptions/{subscription['id']}", headers=staff.headers)).json()
    assert live["status"] == "active"
    await assert_ledger_clean()

    # A refund of the purchase gives back only the unapplied credit.
    purchase = next(i for i in await invoices_of(client, staff, tenant["id"]) if i["kind"] == "credit_purchase")
    unapplied = 5000 - (total - 500)
    url = f"/v1/invoices/{purchase['id']}/refunds"
    too_much = await client.post(url, json={"amount_minor": unapplied + 1, "reason": "back"}, headers=staff.headers)
    assert_problem(too_much, 409, "refund_exceeds_paid")
    refunded = await client.post(url, json={"amount_minor": unapplied, "reason": "back"}, headers=staff.headers)
    assert refunded.status_code == 201, refunded.text
    assert refunded.json()["status"] == "succeeded"
    body = await wallet(client, admin, tenant["id"])
    assert body["balance_minor"] == 0
    assert movements(body)[-1] == ("refunded", -unapplied)
    await assert_ledger_clean()
    # A credit purchase is given back by a refund only, never by a plain credit note.
    note = await client.post(
        f"/v1/invoices/{purchase['id']}/credit-notes", json={"amount_minor": 1, "reason": "x"}, headers=staff.headers
    )
    assert_problem(note, 409, "credit_purchase_not_creditable")


async def test_expiry_task_expires_unused_credit_once(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    soon = stamp(utcnow() + timedelta(hours=1))
    assert (await top_up(client, admin, tenant["id"], amount_minor=2500, paid=True, expires_at=soon)).status_code == 201
    assert (await top_up(client, staff, tenant["id"], amount_minor=700, paid=False, expires_at=soon)).status_code == 201
    assert (await top_up(client, staff, tenant["id"], amount_minor=300, paid=False)).status_code == 201
    later = utcnow() + timedelta(hours=2)
    report = await service.expire_credits(later)
    assert (report.expired, report.failed) == (2, 0)
    assert (await service.expire_credits(later)).expired == 0  # idempotent
    body = await wallet(client, admin, tenant["id"])
    assert (body["balance_minor"], body["purchased_minor"], body["granted_minor"]) == (300, 0, 300)
    assert sorted(kind_amount for kind_amount in movements(body) if kind_amount[0] == "expired") == [
        ("expired", -2500),
        ("expired", -700),
    ]
    await assert_ledger_clean()


async def test_bad_top_ups_answer_4xx_with_codes(client: AsyncClient, factory: Factory) -> None:
    staff, admin, tenant = await setup(client, factory)
    tid = tenant["id"]
    assert_problem(await top_up(client, admin, tid, amount_minor=5000, paid=True), 409, "no_payment_method")
    past = stamp(utcnow() - timedelta(hours=1))
    assert_problem(await top_up(client, staff, tid, amount_minor=5, paid=False, expires_at=past), 422, "invalid_top_up")
    assert (await top_up(client, staff, tid, amount_minor=0, paid=False)).status_code == 400
    assert (await top_up(client, staff, tid, amount_minor=10**16, paid=False)).status_code == 400
    assert (await top_up(client, staff, tid, amount_minor=5, paid=False, bonus=1)).status_code == 400
    assert (await top_up(client, staff, tid, amount_minor=5)).status_code == 400
    # A moment without a UTC offset names no instant: refused as malformed (it was a 500 comparing it to now).
    naive = (utcnow() + timedelta(days=3)).replace(tzinfo=None).isoformat()
    naive_expiry = await top_up(client, staff, tid, amount_minor=5, paid=False, expires_at=naive)
    assert_problem(naive_expiry, 400, "validation_error")
    far = stamp(utcnow() + timedelta(days=5000))
    assert_problem(await top_up(client, staff, tid, amount_minor=5, paid=False, expires_at=far), 422, "invalid_top_up")
    bad_currency = await client.get(f"/v1/tenants/{tid}/wallet?currency=ZZZ", headers=admin.headers)
    assert_problem(bad_currency, 422, "unknown_currency")
    lower = await client.get(f"/v1/tenants/{tid}/wallet?currency=eur", headers=admin.headers)
    assert_problem(lower, 400, "validation_error")
    other = await factory.tenant(staff)
    outsider = await factory.member(other["id"], "tenant_admin")
    assert (await client.get(f"/v1/tenants/{tid}/wallet", headers=outsider.headers)).status_code in (403, 404)


async def test_wallet_transactions_page_with_a_cursor(client: AsyncClient, factory: Factory) -> None:
    staff, admin, tenant = await setup(client, factory)
    for amount in (1, 2, 3):
        assert (await top_up(client, staff, tenant["id"], amount_minor=amount, paid=False)).status_code == 201
    first = await wallet(client, admin, tenant["id"], "?limit=2")
    assert movements(first) == [("grant", 1), ("grant", 2)]
    assert first["next_cursor"]
    second = await wallet(client, admin, tenant["id"], f"?limit=2&cursor={first['next_cursor']}")
    assert movements(second) == [("grant", 3)]
    assert second["next_cursor"] is None
    assert second["balance_minor"] == 6


async def test_a_retried_paid_top_up_charges_once(client: AsyncClient, factory: Factory, stripe_client: Any) -> None:
    _, admin, tenant = await setup(client, factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    url = f"/v1/tenants/{tenant['id']}/wallet/top-ups"
    headers = {**admin.headers, "Idempotency-Key": "top-up-1"}
    first = await client.post(url, json={"amount_minor": 1200, "paid": True}, headers=headers)
    again = await client.post(url, json={"amount_minor": 1200, "paid": True}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 201), again.text
    assert again.json() == first.json()
    body = await wallet(client, admin, tenant["id"])
    assert (body["balance_minor"], movements(body)) == (1200, [("top_up", 1200)])
    # Every page: localstripe keeps the whole session's intents, oldest first.
    intents = list(stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter())
    invoice_id = first.json()["invoice_id"]
    assert sum(1 for intent in intents if intent.metadata.to_dict().get("invoice_id") == invoice_id) == 1


async def test_one_lot_failing_to_expire_does_not_stop_the_others(
    client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing.wallets import service as wallets_service

    staff, admin, tenant = await setup(client, factory)
    soon = stamp(utcnow() + timedelta(hours=1))
    lots = []
    for amount in (100, 200):
        response = await top_up(client, staff, tenant["id"], amount_minor=amount, paid=False, expires_at=soon)
        assert response.status_code == 201, response.text
        lots.append(response.json()["id"])
    real = wallets_service._expire_lot

    async def failing_on_the_first(tenant_id: Any, lot_id: Any, as_of: Any) -> bool:
        if str(lot_id) == lots[0]:
            raise RuntimeError("a fault of ours on this lot")
        return await real(tenant_id, lot_id, as_of)

    monkeypatch.setattr(wallets_service, "_expire_lot", failing_on_the_first)
    report = await service.expire_credits(utcnow() + timedelta(hours=2))
    assert (report.expired, report.failed) == (1, 1)
    monkeypatch.setattr(wallets_service, "_expire_lot", real)
    report = await service.expire_credits(utcnow() + timedelta(hours=2))
    assert (report.expired, report.failed) == (1, 0)
    assert (await wallet(client, admin, tenant["id"]))["balance_minor"] == 0
    await assert_ledger_clean()
