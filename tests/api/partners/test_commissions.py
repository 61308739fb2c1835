"""Reseller commissions end to end: a paid invoice of an owned tenant, a partial refund, the month close,
its statement (JSON and CSV), the ledger, a rerun, another reseller's view, and bad agreements."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient
from prometheus_client import REGISTRY

from billing import service as billing
from billing.commissions import service as _commissions
from billing.errors import LaterMonthClosed, PaymentProviderUnavailable
from billing.payments.gateway import StripeGateway
from controlplane.core.db import SystemReason, system_tx
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tenants import partners_repository
from tests.api._helpers import assert_problem
from tests.api.billing._support import invoices, plan, subscribe
from tests.api.billing.test_payments import GOOD_CARD, _add_card, card, stripe_client
from tests.api.partners.test_publishers import PUBLISHER_CHAIN
from tests.api.partners.test_resellers import RESELLER_CHAIN, _qualify, _sign_up
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, used by name

AGREEMENT = {"currency": "EUR", "rate_bps": 1000, "pending_days": 0}


def _this_month() -> date:
    return datetime.now(UTC).date().replace(day=1)


def _after_this_month() -> datetime:
    start = _this_month()
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, 1, tzinfo=UTC)


async def test_a_paid_invoice_earns_a_refund_claws_back_and_the_month_closes_once(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff = await factory.staff()
    founder = await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    await _qualify(client, founder, staff, reseller, RESELLER_CHAIN)
    put = await client.put(f"/v1/resellers/{reseller}/agreement", json=AGREEMENT, headers=staff.headers)
    assert put.status_code == 200, put.text
    assert_problem(
        await client.put(f"/v1/resellers/{reseller}/agreement", json=AGREEMENT, headers=founder.headers), 403
    )

    body = {
        "name": "Client",
        "slug": f"c-{uuid.uuid4().hex[:8]}",
        "reseller_id": reseller,
    }
    tenant = (await client.post("/v1/tenants", json=body, headers=founder.headers)).json()
    # Tax is a commercial term: staff set it (the reseller's tenant is billed in the agreement's currency).
    taxed = await client.patch(f"/v1/tenants/{tenant['id']}", json={"tax_rate_bps": 2000}, headers=staff.headers)
    assert taxed.status_code == 200, taxed.text
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 10000}])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    # A first partial period may be prorated: the commission is computed on whatever the net is.
    net = invoice["subtotal_minor"]
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200, paid.text
    refund_total = invoice["total_minor"] // 2
    refund = await client.post(
        f"/v1/invoices/{invoice['id']}/refunds",
        json={"amount_minor": refund_total, "reason": "downgrade"},
        headers=staff.headers,
    )
    assert refund.status_code == 201, refund.text

    assert_problem(
        await client.get(f"/v1/resellers/{reseller}/statements/{_this_month():%Y-%m}", headers=founder.headers), 404
    )
    report = await billing.close_month(_this_month(), now=_after_this_month())
    assert (report.closed, report.already_closed) == (1, 0)
    again = await billing.close_month(_this_month(), now=_after_this_month())
    assert (again.closed, again.already_closed) == (0, 1)

    statement = (
        await client.get(f"/v1/resellers/{reseller}/statements/{_this_month():%Y-%m}", headers=founder.headers)
    ).json()
    commission = (net * 1000 + 5000) // 10000  # 10 %, half up, in integers
    refunded_net = (refund_total * invoice["subtotal_minor"]) // invoice["total_minor"]
    lines = [(line["kind"], line["net_minor"], line["commission_minor"]) for line in statement["lines"]]
    assert lines[0] == ("commission", net, commission)
    assert lines[1][0] == "clawback" and abs(lines[1][1] + refunded_net) <= 1
    assert abs(lines[1][2] + commission * refunded_net / net) <= 1  # the same proportion, within a minor unit
    total = commission + lines[1][2]
    assert (statement["carried_in_minor"], statement["total_minor"], statement["payable_minor"]) == (0, total, total)
    csv = await client.get(
        f"/v1/resellers/{reseller}/statements/{_this_month():%Y-%m}", headers={**founder.headers, "Accept": "text/csv"}
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("tenant_id,invoice_number,kind")
    assert f"payable_minor,,,,,{total},EUR" in csv.text
    listed = (await client.get(f"/v1/resellers/{reseller}/statements", headers=founder.headers)).json()["items"]
    assert [item["id"] for item in listed] == [statement["id"]]
    assert (await billing.verify_ledger()).ok

    # Another reseller sees nothing of it.
    other = await factory.user()
    other_id = (await _sign_up(client, other))["id"]
    for path in (f"/v1/resellers/{reseller}/statements", f"/v1/resellers/{reseller}/agreement"):
        assert_problem(await client.get(path, headers=other.headers), 404, "partner_not_found")
    assert_problem(
        await client.get(f"/v1/resellers/{other_id}/agreement", headers=other.headers), 404, "agreement_not_found"
    )


async def test_bad_agreements_and_months_are_refused_and_write_nothing(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    founder = await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    url = f"/v1/resellers/{reseller}/agreement"
    cases = [
        {**AGREEMENT, "rate_bps": 10_001},
        {**AGREEMENT, "rate_bps": -1},
        {**AGREEMENT, "tiers": [{"from_minor": 0, "rate_bps": 1000}, {"from_minor": 0, "rate_bps": 1500}]},
        {**AGREEMENT, "tiers": [{"from_minor": 100, "rate_bps": 1000}]},
        {**AGREEMENT, "currency": "XXX"},
        {**AGREEMENT, "pending_days": -3},
    ]
    for body in cases:
        response = await client.put(url, json=body, headers=staff.headers)
        assert 400 <= response.status_code < 500, (body, response.text)
    assert_problem(await client.get(url, headers=staff.headers), 404, "agreement_not_found")
    future = (_after_this_month() + timedelta(days=40)).date().replace(day=1)
    try:
        await billing.close_month(future)
    except billing.MonthNotOver:
        pass
    else:
        raise AssertionError("a month that has not ended was closed")
    statements = f"/v1/resellers/{reseller}/statements"
    assert_problem(await client.get(f"{statements}/2026-13", headers=staff.headers), 400, "validation_error")
    assert_problem(await client.get(f"{statements}/0000-01", headers=staff.headers), 422, "invalid_month")


async def _closed_month_with_payable(
    client: AsyncClient, factory: Factory, stripe_client: Any, account: str, *, suspend_tenant: bool = False
) -> tuple[str, Any, dict[str, Any]]:
    """A qualified reseller whose tenant paid an invoice this month (then was suspended by staff, with
    `suspend_tenant`), and the month closed: its statement."""
    staff = await factory.staff()
    founder = await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    for code in RESELLER_CHAIN:
        evidence = account if code == "payout_account_verified" else "ok"
        await client.post(
            f"/v1/partners/{reseller}/checkpoints/{code}/submit", json={"evidence": evidence}, headers=founder.headers
        )
        await client.post(f"/v1/partners/{reseller}/checkpoints/{code}/approve", headers=staff.headers)
    await client.put(f"/v1/resellers/{reseller}/agreement", json=AGREEMENT, headers=staff.headers)
    body = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "reseller_id": reseller}
    tenant = (await client.post("/v1/tenants", json=body, headers=founder.headers)).json()
    await plan(client, staff.headers, f"p{uuid.uuid4().hex[:6]}", [{"type": "flat", "amount_minor": 10000}])
    plans = (await client.get("/v1/plans", headers=staff.headers)).json()["items"]
    await subscribe(client, staff.headers, tenant["id"], plans[-1]["code"])
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    assert (await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)).status_code == 200
    if suspend_tenant:
        suspended = await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=staff.headers)
        assert suspended.status_code == 200, suspended.text
    await billing.close_month(_this_month(), now=_after_this_month())
    statement = (
        await client.get(f"/v1/resellers/{reseller}/statements/{_this_month():%Y-%m}", headers=founder.headers)
    ).json()
    assert statement["payable_minor"] > 0
    return reseller, founder, statement


async def test_a_payable_statement_is_paid_out_once_and_a_refused_one_stays_visible(
    client: AsyncClient, factory: Factory, stripe_client: Any, app: Any
) -> None:
    gateway = app.state.payments
    reseller, founder, statement = await _closed_month_with_payable(client, factory, stripe_client, "acct_1Northwind")
    first = await billing.send_payouts(gateway)
    assert (first.paid, first.failed) == (1, [])
    assert (await billing.send_payouts(gateway)).paid == 0  # nothing left to send
    [payout] = (await client.get(f"/v1/resellers/{reseller}/payouts", headers=founder.headers)).json()["items"]
    assert (payout["status"], payout["amount_minor"], payout["attempts"]) == ("paid", statement["payable_minor"], 1)
    # The transfer is keyed by the statement: asking Stripe again with the same key answers the same transfer.
    again = gateway.transfer(f"payout:{payout['id']}", payout["amount_minor"], "EUR", "acct_1Northwind")
    assert again == payout["stripe_transfer_id"]
    assert (await billing.verify_ledger()).ok

    closed, closed_founder, _ = await _closed_month_with_payable(client, factory, stripe_client, "acct_closedAccount")
    failed = await billing.send_payouts(gateway)
    assert failed.paid == 0 and len(failed.failed) == 1
    [refused] = (await client.get(f"/v1/resellers/{closed}/payouts", headers=closed_founder.headers)).json()["items"]
    assert refused["status"] == "failed" and refused["attempts"] == 1 and "closed" in refused["last_error"]
    # Not retried before its back-off has passed; then retried on the schedule until its attempts are used up.
    assert (await billing.send_payouts(gateway)).failed == []
    for days in range(1, 7):
        await billing.send_payouts(gateway, now=datetime.now(UTC) + timedelta(days=days))
    [refused] = (await client.get(f"/v1/resellers/{closed}/payouts", headers=closed_founder.headers)).json()["items"]
    assert refused["status"] == "failed" and refused["attempts"] == 5


async def test_a_stripe_outage_uses_up_no_payout_attempt_and_stops_the_run(
    client: AsyncClient, factory: Factory, stripe_client: Any, app: Any, settings: Settings
) -> None:
    """Nothing listens at Stripe's address: the outage is not the payout's fault, so it keeps its attempts and
    status, and the run stops (the beat runs it again); once Stripe answers, the payout is sent once."""
    reseller, founder, statement = await _closed_month_with_payable(client, factory, stripe_client, "acct_1Northwind")
    unreachable = dataclasses.replace(settings, stripe_api_base="http://127.0.0.1:9")
    down = StripeGateway(make_stripe_client(unreachable, SecretStore.connect(settings)))
    for _ in range(6):
        with pytest.raises(PaymentProviderUnavailable):
            await billing.send_payouts(down)
    [payout] = (await client.get(f"/v1/resellers/{reseller}/payouts", headers=founder.headers)).json()["items"]
    assert (payout["status"], payout["attempts"]) == ("pending", 0)
    sent = await billing.send_payouts(app.state.payments)
    assert (sent.paid, sent.failed) == (1, [])
    [payout] = (await client.get(f"/v1/resellers/{reseller}/payouts", headers=founder.headers)).json()["items"]
    assert (payout["status"], payout["amount_minor"], payout["attempts"]) == ("paid", statement["payable_minor"], 1)
    assert (await billing.verify_ledger()).ok


async def test_an_escrow_payee_partner_is_paid_out_what_releases_owe_it(
    client: AsyncClient, factory: Factory, stripe_client: Any, app: Any
) -> None:
    gateway = app.state.payments
    staff = await factory.staff()
    author = await factory.user()
    publisher = (
        await client.post(
            "/v1/partners",
            json={"kind": "publisher", "name": "Plugin House", "email": "p@h.test"},
            headers=author.headers,
        )
    ).json()["id"]
    await _qualify(client, author, staff, publisher, PUBLISHER_CHAIN)  # an escrow pays qualified partners only
    # A publisher's payout account is its connected account, recorded like a reseller's.
    async with system_tx(SystemReason.STAFF_CHANGE):
        await partners_repository.set_stripe_account(uuid.UUID(publisher), "acct_1PluginHouse")
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    body = {
        "tenant_id": tenant["id"],
        "payee": {"type": "publisher", "id": publisher},
        "currency": "EUR",
        "amount_minor": 5_000,
        "milestones": [{"title": "Port", "amount_minor": 3_000}, {"title": "Polish", "amount_minor": 2_000}],
    }
    escrow = (await client.post("/v1/escrows", json=body, headers=admin.headers)).json()
    url = f"/v1/escrows/{escrow['id']}"
    assert (await client.post(f"{url}/fund", headers=admin.headers)).status_code == 200
    port = escrow["milestones"][0]["id"]
    assert (await client.post(f"{url}/milestones/{port}/submit", headers=staff.headers)).status_code == 200
    assert (await client.post(f"{url}/milestones/{port}/accept", headers=admin.headers)).status_code == 200

    report = await billing.send_payouts(gateway)
    assert (report.paid, report.failed) == (1, [])
    assert (await billing.send_payouts(gateway)).paid == 0  # the balance is paid; nothing new is owed
    [payout] = (await client.get(f"/v1/resellers/{publisher}/payouts", headers=author.headers)).json()["items"]
    assert (payout["source"], payout["amount_minor"], payout["status"]) == ("escrow", 3_000, "paid")
    assert (await billing.verify_ledger()).ok


def _failures(job: str, reason: str) -> float:
    labels = {"batch_job": job, "reason": reason}
    return REGISTRY.get_sample_value("controlplane_batch_item_failures_total", labels) or 0.0


async def test_one_bad_escrow_payee_never_stops_the_other_payouts(
    client: AsyncClient, factory: Factory, stripe_client: Any, app: Any, stack_env: dict[str, str]
) -> None:
    gateway = app.state.payments
    reseller, founder, statement = await _closed_month_with_payable(client, factory, stripe_client, "acct_1Northwind")
    # An agreement from before payees were validated names a reseller that does not exist; its release is owed
    # to nobody the platform can pay.
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    body = {
        "tenant_id": tenant["id"],
        "payee": {"type": "vendor", "id": str(uuid.uuid4())},
        "currency": "EUR",
        "amount_minor": 4_000,
        "milestones": [{"title": "All", "amount_minor": 4_000}],
    }
    escrow = (await client.post("/v1/escrows", json=body, headers=admin.headers)).json()
    ghost = uuid.uuid4()
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update escrows set payee_type = 'reseller', payee_id = $1 where id = $2", ghost, uuid.UUID(escrow["id"])
        )
    finally:
        await inspector.close()
    url = f"/v1/escrows/{escrow['id']}"
    milestone = escrow["milestones"][0]["id"]
    assert (await client.post(f"{url}/fund", headers=admin.headers)).status_code == 200
    assert (await client.post(f"{url}/milestones/{milestone}/submit", headers=staff.headers)).status_code == 200
    assert (await client.post(f"{url}/milestones/{milestone}/accept", headers=admin.headers)).status_code == 200

    before = _failures("send_payouts", "payout_payee_unknown")
    report = await billing.send_payouts(gateway)
    assert report.paid == 1
    assert report.failed == [(f"payee_payable:reseller:{ghost}", "payout_payee_unknown")]
    assert _failures("send_payouts", "payout_payee_unknown") == before + 1
    [payout] = (await client.get(f"/v1/resellers/{reseller}/payouts", headers=founder.headers)).json()["items"]
    assert (payout["status"], payout["amount_minor"]) == ("paid", statement["payable_minor"])
    # The bad balance stays owed and visible on every run (for staff to settle); it stops nothing.
    again = await billing.send_payouts(gateway)
    assert (again.paid, again.failed) == (0, [(f"payee_payable:reseller:{ghost}", "payout_payee_unknown")])
    assert (await billing.verify_ledger()).ok


# --- the month close goes on for every reseller ------------------------------------------------------------


async def _qualified_reseller(
    client: AsyncClient, factory: Factory, staff: Any, agreement: dict[str, Any]
) -> tuple[str, Any]:
    founder = await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    await _qualify(client, founder, staff, reseller, RESELLER_CHAIN)
    put = await client.put(f"/v1/resellers/{reseller}/agreement", json=agreement, headers=staff.headers)
    assert put.status_code == 200, put.text
    return reseller, founder


async def _paid_owned_invoice(
    client: AsyncClient, staff: Any, founder: Any, reseller: str, stripe_client: Any, currency: str
) -> dict[str, Any]:
    # Staff set a tenant's currency (a commercial term), even apart from the reseller's agreement.
    body = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "currency": currency, "reseller_id": reseller}
    created = await client.post("/v1/tenants", json=body, headers=staff.headers)
    assert created.status_code == 201, created.text
    tenant = created.json()
    code = f"p{uuid.uuid4().hex[:6]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 10000}], currency=currency)
    await subscribe(client, staff.headers, tenant["id"], code)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)
    assert paid.status_code == 200, paid.text
    return invoice


async def _statement(client: AsyncClient, founder: Any, reseller: str, month: date) -> Any:
    return await client.get(f"/v1/resellers/{reseller}/statements/{month:%Y-%m}", headers=founder.headers)


async def test_an_invoice_in_another_currency_is_skipped_with_its_reason_and_every_reseller_closes(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff = await factory.staff()
    mixed, mixed_founder = await _qualified_reseller(client, factory, staff, AGREEMENT)
    plain, plain_founder = await _qualified_reseller(client, factory, staff, AGREEMENT)
    euros = await _paid_owned_invoice(client, staff, mixed_founder, mixed, stripe_client, "EUR")
    dollars = await _paid_owned_invoice(client, staff, mixed_founder, mixed, stripe_client, "USD")
    await _paid_owned_invoice(client, staff, plain_founder, plain, stripe_client, "EUR")

    before = _failures("close_month", "currency_mismatch")
    report = await billing.close_month(_this_month(), now=_after_this_month())
    assert (report.closed, report.failed, report.skipped) == (2, [], 1)
    assert _failures("close_month", "currency_mismatch") == before + 1

    statement = (await _statement(client, mixed_founder, mixed, _this_month())).json()
    assert [line["invoice_number"] for line in statement["lines"]] == [euros["number"]]
    [skipped] = statement["skipped"]
    assert (skipped["invoice_id"], skipped["invoice_number"], skipped["currency"], skipped["reason"]) == (
        dollars["id"],
        dollars["number"],
        "USD",
        "currency_mismatch",
    )
    assert skipped["net_minor"] == dollars["subtotal_minor"] and "USD" in skipped["detail"]
    plain_statement = (await _statement(client, plain_founder, plain, _this_month())).json()
    assert (len(plain_statement["lines"]), plain_statement["skipped"]) == (1, [])

    # Closing again changes nothing and skips nothing twice.
    again = await billing.close_month(_this_month(), now=_after_this_month())
    assert (again.closed, again.already_closed, again.skipped, again.failed) == (0, 2, 0, [])
    assert _failures("close_month", "currency_mismatch") == before + 1
    assert len((await _statement(client, mixed_founder, mixed, _this_month())).json()["skipped"]) == 1
    assert (await billing.verify_ledger()).ok


async def test_a_reseller_whose_close_fails_is_recorded_retried_and_stops_no_other(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    # Its line waits past next month's close; then its agreement moves to another currency.
    broken, broken_founder = await _qualified_reseller(client, factory, staff, {**AGREEMENT, "pending_days": 70})
    fine, fine_founder = await _qualified_reseller(client, factory, staff, AGREEMENT)
    await _paid_owned_invoice(client, staff, broken_founder, broken, stripe_client, "EUR")
    await _paid_owned_invoice(client, staff, fine_founder, fine, stripe_client, "EUR")
    assert (await billing.close_month(_this_month(), now=_after_this_month())).closed == 2
    moved = await client.put(
        f"/v1/resellers/{broken}/agreement",
        json={**AGREEMENT, "currency": "USD", "pending_days": 70},
        headers=staff.headers,
    )
    assert moved.status_code == 200, moved.text

    next_month = _after_this_month().date().replace(day=1)
    later = _after_this_month() + timedelta(days=40)
    before = _failures("close_month", "currency_mismatch")
    report = await billing.close_month(next_month, now=later)
    assert (report.closed, report.failed) == (1, [(broken, "currency_mismatch")])
    assert _failures("close_month", "currency_mismatch") == before + 1
    assert (await _statement(client, fine_founder, fine, next_month)).status_code == 200
    assert_problem(await _statement(client, broken_founder, broken, next_month), 404, "statement_not_found")

    async def issue() -> Any:
        inspector = await connect_as_inspector(stack_env)
        try:
            return await inspector.fetchrow(
                "select kind, reason, attempts, resolved_at from commission_close_issues "
                "where reseller_id = $1 and month = $2",
                uuid.UUID(broken),
                next_month,
            )
        finally:
            await inspector.close()

    recorded = await issue()
    assert (recorded["kind"], recorded["reason"], recorded["attempts"], recorded["resolved_at"]) == (
        "close_failed",
        "currency_mismatch",
        1,
        None,
    )
    # The next run retries it (and only it: the others are closed); once the cause is fixed it closes.
    retried = await billing.close_month(next_month, now=later)
    assert (retried.closed, retried.already_closed, retried.failed) == (0, 1, [(broken, "currency_mismatch")])
    assert (await issue())["attempts"] == 2
    await client.put(f"/v1/resellers/{broken}/agreement", json={**AGREEMENT, "pending_days": 70}, headers=staff.headers)
    fixed = await billing.close_month(next_month, now=later)
    assert (fixed.closed, fixed.failed) == (1, [])
    assert (await issue())["resolved_at"] is not None
    assert (await _statement(client, broken_founder, broken, next_month)).status_code == 200
    assert (await billing.verify_ledger()).ok


async def test_a_month_whose_close_failed_is_closed_before_any_later_month_of_that_reseller(
    client: AsyncClient,
    factory: Factory,
    stripe_client: Any,
    stack_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A close that failed on the 1st to 3rd is not lost: the next month's run closes it first (its events
    commissioned, its balance carried once), and no later month of that reseller closes while it is open."""
    staff = await factory.staff()
    reseller, founder = await _qualified_reseller(client, factory, staff, AGREEMENT)
    invoice = await _paid_owned_invoice(client, staff, founder, reseller, stripe_client, "EUR")
    month, next_month = _this_month(), _after_this_month().date().replace(day=1)
    later = _after_this_month() + timedelta(days=40)
    real = _commissions.close_reseller_month

    async def fails_for_this_month(reseller_id: uuid.UUID, closing: date, report: Any = None) -> Any:
        if closing == month:
            raise RuntimeError("a fault met by this month's close only")
        return await real(reseller_id, closing, report)

    monkeypatch.setattr(_commissions, "close_reseller_month", fails_for_this_month)
    assert (await billing.close_month(month, now=_after_this_month())).failed == [(reseller, "unexpected")]
    # Still failing next month: the earlier month is tried first, and the later one is refused, with its reason.
    refused = await billing.close_month(next_month, now=later)
    assert (refused.closed, refused.failed) == (0, [(reseller, "unexpected"), (reseller, "earlier_month_not_closed")])
    assert_problem(await _statement(client, founder, reseller, next_month), 404, "statement_not_found")

    async def issues() -> dict[date, Any]:
        inspector = await connect_as_inspector(stack_env)
        try:
            rows = await inspector.fetch(
                "select month, reason, resolved_at from commission_close_issues "
                "where reseller_id = $1 and kind = 'close_failed'",
                uuid.UUID(reseller),
            )
        finally:
            await inspector.close()
        return {row["month"]: row for row in rows}

    recorded = await issues()
    assert (recorded[month]["reason"], recorded[next_month]["reason"]) == ("unexpected", "earlier_month_not_closed")
    # The fault is gone: next month's run closes the failed month first, then its own, each once.
    monkeypatch.setattr(_commissions, "close_reseller_month", real)
    fixed = await billing.close_month(next_month, now=later)
    assert (fixed.closed, fixed.failed) == (2, [])
    first = (await _statement(client, founder, reseller, month)).json()
    assert [line["invoice_number"] for line in first["lines"]] == [invoice["number"]]
    second = (await _statement(client, founder, reseller, next_month)).json()
    assert second["lines"] == [] and second["carried_in_minor"] == first["carried_out_minor"]
    assert all(row["resolved_at"] is not None for row in (await issues()).values())
    again = await billing.close_month(next_month, now=later)
    assert (again.closed, again.already_closed, again.failed) == (0, 1, [])
    # A month before a closed one is never closed by hand afterwards: its balance would be carried twice.
    with pytest.raises(LaterMonthClosed):
        async with system_tx(SystemReason.PLATFORM_JOB):
            await _commissions.close_reseller_month(uuid.UUID(reseller), date(month.year - 1, month.month, 1))


async def test_a_payout_in_a_currency_stripe_sends_only_in_steps_is_rounded_down_and_the_rest_stays_owed(
    client: AsyncClient, factory: Factory, stripe_client: Any, app: Any
) -> None:
    """HUF: Stripe sends whole forints only. 12.34 % of a 10 000 invoice is 1234: 1200 is sent, 34 carried to
    the next statement (still owed in the ledger), so the payout never fails for its amount."""
    gateway = app.state.payments
    staff = await factory.staff()
    founder = await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    for code in RESELLER_CHAIN:
        evidence = "acct_1Forint" if code == "payout_account_verified" else "ok"
        await client.post(
            f"/v1/partners/{reseller}/checkpoints/{code}/submit", json={"evidence": evidence}, headers=founder.headers
        )
        await client.post(f"/v1/partners/{reseller}/checkpoints/{code}/approve", headers=staff.headers)
    agreement = {"currency": "HUF", "rate_bps": 1234, "pending_days": 0}
    put = await client.put(f"/v1/resellers/{reseller}/agreement", json=agreement, headers=staff.headers)
    assert put.status_code == 200, put.text
    body = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "currency": "HUF", "reseller_id": reseller}
    created = await client.post("/v1/tenants", json=body, headers=staff.headers)
    assert created.status_code == 201, created.text
    tenant = created.json()
    code = f"p{uuid.uuid4().hex[:6]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 10000}], currency="HUF")
    start = datetime.combine(_this_month(), datetime.min.time(), tzinfo=UTC)
    await subscribe(client, staff.headers, tenant["id"], code, start_at=start)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    assert invoice["total_minor"] == 10000
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    assert (await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=staff.headers)).status_code == 200
    await billing.close_month(_this_month(), now=_after_this_month())
    statement = (await _statement(client, founder, reseller, _this_month())).json()
    assert (statement["total_minor"], statement["payable_minor"], statement["carried_out_minor"]) == (1234, 1200, 34)

    report = await billing.send_payouts(gateway)
    assert (report.paid, report.failed) == (1, [])
    [payout] = (await client.get(f"/v1/resellers/{reseller}/payouts", headers=founder.headers)).json()["items"]
    assert (payout["status"], payout["amount_minor"], payout["currency"]) == ("paid", 1200, "HUF")
    assert (await billing.verify_ledger()).ok
