"""The rules where one domain's state changes another's (README, "Tenancy": cross-domain rules), one test each.

Tenant status is owned by the tenants domain; billing asks for a suspension for non-payment and for its lift.
Tenant status -> entitlements: a suspended or erased tenant is denied, and its cached answers go at once.
Tenant status -> licensing: a suspended tenant holds no new seat. Tenant status -> collection: a suspended
tenant still owes, and is collected. Tenant status -> payouts: commission follows payments, not status.
Erasure -> billing, collection, licensing, payments: the subscription ends (final invoice per the cancel
rules), add-ons end, licenses are revoked, nothing is billed or charged again, and the card leaves Stripe.
Erasure -> plugin adoption: the install history stays, a trial in progress ends, the tenant is no longer active.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from httpx import AsyncClient
from litestar import Litestar

from billing import service as billing
from billing.payments.gateway import StripeGateway
from billing.payments.service import give_up
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import ServiceUnavailable
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from controlplane.core.tenant_vault import TenantVault
from plugins_registry import service as plugins
from tenants import hooks as tenant_hooks
from tests.api._helpers import assert_problem
from tests.api.billing._support import metric, parse, plan, subscribe
from tests.api.billing.test_payments import GOOD_CARD, _add_card, _invoiced_tenant, card, stripe_client
from tests.api.partners.test_commissions import _closed_month_with_payable
from tests.api.plugins._support import check, install, machine_key, plugin, publisher
from tests.api.plugins.test_activations import activate
from tests.conftest import connect_as_inspector
from tests.factories import Factory

__all__ = ["stripe_client"]  # the fixture, used by name
ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEDULE = (1, 3, 5, 7)
# What other domains may take from the tenants repository: reads of a tenant, nothing that writes.
REPOSITORY_READERS = {"get_tenant"}
STATUS_WRITE = re.compile(r"update\s+tenants\s+set\b[^;\"']*\b(status|billing_suspended_at)\b", re.IGNORECASE)


# -- one owner per state ---------------------------------------------------------------------------


def test_only_the_tenants_domain_writes_the_tenant_status() -> None:
    """No module outside `tenants/` updates the tenants table or reaches the tenants repository for anything
    but reading a tenant (in any form of import: the module itself, or a name from it)."""
    offenders = []
    for folder in ("billing", "plugins_registry", "workers", "controlplane"):
        for path in (ROOT / folder).rglob("*.py"):
            source = path.read_text()
            if STATUS_WRITE.search(source):
                offenders.append(f"{path}: writes the tenant status in SQL")
            for node in ast.walk(ast.parse(source)):
                if isinstance(node, ast.ImportFrom) and node.module == "tenants.repository":
                    writers = {alias.name for alias in node.names} - REPOSITORY_READERS
                    if writers:
                        offenders.append(f"{path}: imports {sorted(writers)} from tenants.repository")
                elif isinstance(node, ast.ImportFrom) and node.module == "tenants":
                    if any(alias.name == "repository" for alias in node.names):
                        offenders.append(f"{path}: imports the tenants repository module")
                elif isinstance(node, ast.Import):
                    if any(alias.name == "tenants.repository" for alias in node.names):
                        offenders.append(f"{path}: imports the tenants repository module")
    assert offenders == []


# -- tenant status -> entitlements -----------------------------------------------------------------


async def _entitled(client: AsyncClient, factory: Factory) -> tuple[Any, dict[str, Any], Any, dict[str, str], str]:
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    pub = await publisher(client, staff.headers)
    slug = (await plugin(client, staff.headers, pub["id"]))["slug"]
    await install(client, admin.headers, tenant["id"], slug)
    key = await machine_key(client, admin.headers, tenant["id"])
    assert (await check(client, key, slug))["allowed"] is True  # cached from here on
    return staff, tenant, invoice, key, slug


async def test_tenant_status_to_entitlements_a_tenant_suspended_for_non_payment_is_denied(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    staff, tenant, invoice, key, slug = await _entitled(client, factory)
    tenant_id = uuid.UUID(tenant["id"])
    await give_up(tenant_id, uuid.UUID(invoice["id"]), datetime.now(UTC))
    assert_problem(await client.get(f"/v1/tenants/{tenant['id']}", headers=key), 402, "suspended_for_non_payment")

    denied = await check(client, key, slug)
    assert (denied["allowed"], denied["reason"]) == (False, "tenant_suspended_for_non_payment")

    # Paying lifts the suspension, and the very next check is allowed again.
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert paid.status_code == 200, paid.text
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).json()["status"] == "active"
    assert (await check(client, key, slug))["allowed"] is True


async def test_tenant_status_to_entitlements_a_suspended_tenant_is_denied_until_reactivated(
    client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, _, key, slug = await _entitled(client, factory)
    url = f"/v1/tenants/{tenant['id']}"
    assert (await client.post(f"{url}/suspend", headers=staff.headers)).status_code == 200
    denied = await check(client, key, slug)
    assert (denied["allowed"], denied["reason"]) == (False, "tenant_suspended")
    assert (await client.post(f"{url}/reactivate", headers=staff.headers)).status_code == 200
    assert (await check(client, key, slug))["allowed"] is True


# -- tenant status -> licensing and collection ------------------------------------------------------


async def test_tenant_status_to_licensing_a_suspended_tenant_holds_no_new_seat_until_reactivated(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    slug = (await plugin(client, staff.headers, pub["id"]))["slug"]
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    license_id = (await install(client, admin.headers, tenant["id"], slug))["license"]["id"]
    key = await machine_key(client, admin.headers, tenant["id"])
    url = f"/v1/tenants/{tenant['id']}"
    assert (await client.post(f"{url}/suspend", headers=staff.headers)).status_code == 200
    await activate(client, key, license_id, "build-box", expected=403)
    assert (await client.post(f"{url}/reactivate", headers=staff.headers)).status_code == 200
    await activate(client, key, license_id, "build-box")


async def test_tenant_status_to_collection_a_suspended_tenant_still_owes_and_is_collected(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    """Staff's suspension stops the tenant's own writes, not what it owes: the collection run charges its card
    as for anyone (only an erased tenant is never charged again)."""
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    await _add_card(client, staff.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    assert (await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=staff.headers)).status_code == 200
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    run = await billing.collect_due_invoices(gateway, datetime.now(UTC) + timedelta(minutes=1), SCHEDULE)
    assert (run.attempted, run.succeeded) == (1, 1), run
    collected = await client.get(f"/v1/invoices/{invoice['id']}", headers=staff.headers)
    assert collected.json()["status"] == "paid"
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).json()["status"] == "suspended"


async def test_tenant_status_to_payouts_a_suspended_tenants_paid_invoice_still_earns_and_is_paid_out(
    client: AsyncClient, factory: Factory, stripe_client: Any, app: Litestar
) -> None:
    reseller, founder, statement = await _closed_month_with_payable(
        client, factory, stripe_client, "acct_1Northwind", suspend_tenant=True
    )
    assert statement["payable_minor"] > 0
    sent = await billing.send_payouts(app.state.payments)
    assert (sent.paid, sent.failed) == (1, [])
    [payout] = (await client.get(f"/v1/resellers/{reseller}/payouts", headers=founder.headers)).json()["items"]
    assert (payout["status"], payout["amount_minor"]) == ("paid", statement["payable_minor"])


async def test_tenant_status_to_entitlements_an_erased_tenant_is_denied(client: AsyncClient, factory: Factory) -> None:
    staff, tenant, _, key, slug = await _entitled(client, factory)
    tenant_id = uuid.UUID(tenant["id"])
    # The key's principal as the middleware made it before the erasure (its cache may lag).
    principal = Principal(kind="api_key", id=uuid.uuid4(), tenant_id=tenant_id, api_key_role="tenant_member")
    assert (await plugins.check(principal, slug, "export")).allowed is True
    assert (await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).status_code == 202
    denied = await plugins.check(principal, slug, "export")
    assert (denied.allowed, denied.reason) == (False, "tenant_erased")
    assert_problem(await client.get("/v1/entitlements/check", params={"plugin": slug}, headers=key), 401)


# -- erasure -> billing, collection, licensing, payments ----------------------------------------------


async def _paying_tenant(client: AsyncClient, factory: Factory, stripe_client: Any) -> dict[str, Any]:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    subscription = await subscribe(client, staff.headers, tenant["id"], "pro")
    paid = await plugin(
        client, staff.headers, pub["id"], pricing={"model": "flat", "amount_minor": 900, "currency": "EUR"}
    )
    installed = await install(client, admin.headers, tenant["id"], paid["slug"])
    method = card(stripe_client, GOOD_CARD)
    await _add_card(client, admin.headers, tenant["id"], method)
    return {
        "staff": staff,
        "admin": admin,
        "tenant": tenant,
        "subscription": subscription,
        "license_id": installed["license"]["id"],
        "method": method,
    }


async def test_erasure_to_billing_the_subscription_and_add_ons_end_and_nothing_is_billed_or_charged_again(
    client: AsyncClient, factory: Factory, settings: Settings, stack_env: dict[str, str], stripe_client: Any
) -> None:
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    world = await _paying_tenant(client, factory, stripe_client)
    staff, tenant = world["staff"], world["tenant"]
    tenant_id = uuid.UUID(tenant["id"])

    assert (await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).status_code == 202

    subscription = (await client.get(f"/v1/subscriptions/{world['subscription']['id']}", headers=staff.headers)).json()
    assert subscription["status"] == "canceled"
    inspector = await connect_as_inspector(stack_env)
    try:
        addons = await inspector.fetch("select ended_at from subscription_addons where tenant_id = $1", tenant_id)
        charges = await inspector.fetch("select count(*) as n from payments where tenant_id = $1", tenant_id)
    finally:
        await inspector.close()
    assert addons and all(row["ended_at"] is not None for row in addons)
    invoices_before = (await client.get(f"/v1/tenants/{tenant['id']}/invoices", headers=staff.headers)).json()["items"]

    # No later run bills or charges it: the cycle past the period's end, collection and dunning.
    later = parse(world["subscription"]["current_period_end"]) + timedelta(hours=2)
    cycle = await billing.run_cycle(later, grace=timedelta(hours=1))
    assert cycle.invoices_created == 0 and not cycle.failed
    for day in (0, *SCHEDULE, 30):
        collection = await billing.collect_due_invoices(gateway, later + timedelta(days=day), SCHEDULE)
        assert collection.attempted == 0
    invoices_after = (await client.get(f"/v1/tenants/{tenant['id']}/invoices", headers=staff.headers)).json()["items"]
    assert len(invoices_after) == len(invoices_before)
    inspector = await connect_as_inspector(stack_env)
    try:
        after = await inspector.fetch("select count(*) as n from payments where tenant_id = $1", tenant_id)
    finally:
        await inspector.close()
    assert after[0]["n"] == charges[0]["n"] == 0


async def test_erasure_to_licensing_licenses_are_revoked_and_never_renewed(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    world = await _paying_tenant(client, factory, stripe_client)
    staff, tenant = world["staff"], world["tenant"]
    assert (await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).status_code == 202
    license_ = (await client.get(f"/v1/licenses/{world['license_id']}", headers=staff.headers)).json()
    assert (license_["status"], license_["revoke_reason"]) == ("revoked", "tenant_erased")
    counts = await plugins.expire_due(datetime.now(UTC) + timedelta(days=90))
    assert dataclasses.asdict(counts) == {"converted": 0, "expired": 0}
    again = (await client.get(f"/v1/licenses/{world['license_id']}", headers=staff.headers)).json()
    assert again["status"] == "revoked"


async def test_erasure_to_plugin_adoption_the_history_stays_a_trial_in_progress_ends_and_the_tenant_leaves_the_active(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    pricing = {"model": "flat", "amount_minor": 900, "currency": "EUR", "trial_days": 7}
    paid = await plugin(client, staff.headers, pub["id"], pricing=pricing)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    assert (await install(client, admin.headers, tenant["id"], paid["slug"]))["license"]["trial"] is True

    assert (await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers)).status_code == 202
    inspector = await connect_as_inspector(stack_env)
    try:
        steps = await inspector.fetch(
            "select kind from plugin_install_events where tenant_id = $1 order by id", uuid.UUID(tenant["id"])
        )
    finally:
        await inspector.close()
    assert [row["kind"] for row in steps] == ["installed", "trial_started", "trial_ended"]
    adoption = await client.get("/v1/analytics/plugins", headers=staff.headers)
    assert adoption.status_code == 200, adoption.text
    body = adoption.json()
    # Its install stays installed (as its row does), but an erased tenant is not active: no rate.
    assert (body["tenants_with_plugins"], body["active_tenants"], body["adoption_rate"]) == (0, 0, None)
    assert [(row["installed_tenants"], row["trials_started"]) for row in body["plugins"]] == [(1, 1)]


async def test_erasure_to_payments_the_card_leaves_stripe_and_a_failed_detach_finishes_on_retry(
    client: AsyncClient, app: Litestar, factory: Factory, stack_env: dict[str, str], stripe_client: Any
) -> None:
    world = await _paying_tenant(client, factory, stripe_client)
    staff, tenant = world["staff"], world["tenant"]
    url = f"/v1/tenants/{tenant['id']}"
    assert stripe_client.v1.payment_methods.retrieve(world["method"]).customer is not None

    working = app.state.payments
    unreachable = stripe.StripeClient("sk_test_unreachable", base_addresses={"api": "http://127.0.0.1:9"})
    app.state.payments = StripeGateway(unreachable)
    try:
        assert_problem(await client.delete(url, headers=staff.headers), 503, "payment_provider_unavailable")
    finally:
        app.state.payments = working
    # The database part is done: erased, nothing to bill, and the card is no longer anyone's default.
    assert (await client.get(url, headers=staff.headers)).json()["status"] == "pending_deletion"
    assert stripe_client.v1.payment_methods.retrieve(world["method"]).customer is not None

    retried = await client.delete(url, headers=staff.headers)
    assert retried.status_code == 202, retried.text
    assert stripe_client.v1.payment_methods.retrieve(world["method"]).customer is None
    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch(
            "select is_default, detached_at from payment_methods where tenant_id = $1", uuid.UUID(tenant["id"])
        )
    finally:
        await inspector.close()
    assert rows and all(not row["is_default"] and row["detached_at"] is not None for row in rows)


async def test_erasure_to_billing_an_erased_tenant_is_not_billed_while_its_erasure_waits_for_a_retry(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    world = await _paying_tenant(client, factory, stripe_client)
    staff, tenant = world["staff"], world["tenant"]
    url = f"/v1/tenants/{tenant['id']}"

    async def unavailable(tenant_id: uuid.UUID, now: datetime) -> None:
        raise ServiceUnavailable("a dependency of the erasure is down")

    tenant_hooks.on_tenant_erased(unavailable)
    try:
        assert_problem(await client.delete(url, headers=staff.headers), 503)
    finally:
        tenant_hooks._ERASED.remove(unavailable)
    # Erased, but the other domains' part rolled back: the subscription is still live, and yet no run bills it.
    assert (await client.get(url, headers=staff.headers)).json()["status"] == "pending_deletion"
    subscription_url = f"/v1/subscriptions/{world['subscription']['id']}"
    assert (await client.get(subscription_url, headers=staff.headers)).json()["status"] == "active"
    later = parse(world["subscription"]["current_period_end"]) + timedelta(hours=2)
    cycle = await billing.run_cycle(later, grace=timedelta(hours=1))
    assert cycle.invoices_created == 0 and not cycle.failed

    assert (await client.delete(url, headers=staff.headers)).status_code == 202
    assert (await client.get(subscription_url, headers=staff.headers)).json()["status"] == "canceled"


async def test_erasure_to_billing_a_final_invoice_that_cannot_be_computed_never_blocks_the_erasure(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], stripe_client: Any, tenant_vault: TenantVault
) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "bytes", "sum")
    heavy = [{"type": "metered", "metric_code": "bytes", "model": "per_unit", "unit_amount_minor": "1000000000"}]
    await plan(client, staff.headers, "heavy", [{"type": "flat", "amount_minor": 1000}, *heavy])
    tenant = await factory.tenant(staff)
    tenant_id = uuid.UUID(tenant["id"])
    admin = await factory.member(tenant["id"], "tenant_admin")
    subscription = await subscribe(client, staff.headers, tenant["id"], "heavy")
    method = card(stripe_client, GOOD_CARD)
    await _add_card(client, admin.headers, tenant["id"], method)
    await client.post(f"/v1/tenants/{tenant['id']}/webhook-secret/rotations", headers=admin.headers)
    assert tenant_vault.exists(tenant_id)
    # Usage stored before the ingestion bounds (as the owner): its final invoice is beyond any line.
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "insert into usage_events (tenant_id, idempotency_key, metric_code, occurred_at, value) "
            "values ($1, 'legacy', 'bytes', $2, $3)",
            tenant_id,
            parse(subscription["current_period_start"]),
            10**12,
        )
    finally:
        await inspector.close()

    # The tenant's own admin erases it, once: everything is finished in that one request.
    erased = await client.delete(f"/v1/tenants/{tenant['id']}", headers=admin.headers)
    assert erased.status_code == 202, erased.text
    ended = (await client.get(f"/v1/subscriptions/{subscription['id']}", headers=staff.headers)).json()
    assert ended["status"] == "canceled"
    assert ended["billing_error"].startswith("amount_out_of_range")
    assert not tenant_vault.exists(tenant_id)
    assert stripe_client.v1.payment_methods.retrieve(method).customer is None


async def test_erasure_destroys_the_secrets_and_detaches_the_cards_even_when_a_domain_hook_fails(
    client: AsyncClient, factory: Factory, stripe_client: Any, tenant_vault: TenantVault
) -> None:
    world = await _paying_tenant(client, factory, stripe_client)
    staff, tenant = world["staff"], world["tenant"]
    await client.post(f"/v1/tenants/{tenant['id']}/webhook-secret/rotations", headers=staff.headers)
    assert tenant_vault.exists(uuid.UUID(tenant["id"]))

    async def unavailable(tenant_id: uuid.UUID, now: datetime) -> None:
        raise ServiceUnavailable("a dependency of the erasure is down")

    tenant_hooks.on_tenant_erased(unavailable)
    try:
        assert_problem(await client.delete(f"/v1/tenants/{tenant['id']}", headers=staff.headers), 503)
    finally:
        tenant_hooks._ERASED.remove(unavailable)
    assert not tenant_vault.exists(uuid.UUID(tenant["id"]))
    assert stripe_client.v1.payment_methods.retrieve(world["method"]).customer is None
