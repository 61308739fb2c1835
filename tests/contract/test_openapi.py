"""Schemathesis over the whole OpenAPI document: no 5xx, and every answer is one the document describes.

Hypothesis runs in a worker thread (its engine is synchronous); each generated request goes through the
session's async `client` on the test's own event loop, where the lifespan opened the connection pool, and
the response is judged by schemathesis' own checks. Generation is derandomized, so a run is reproducible.

Cases reach real rows: the ids of known tenants, members and API keys are mixed into the path parameters
(and real credentials into the token request), DELETE operations run last so the others still see live
data, and every operation must answer 2xx at least once, so a broken token cannot pass as "all 401s".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from httpx import AsyncClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from litestar.routes import HTTPRoute
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billing import service as billing
from controlplane.core.secrets import STRIPE_PATH, SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.factories import PASSWORD, Actor, Factory

pytestmark = pytest.mark.slow

SCHEMA_PATH = "/schema/openapi.json"
BASE_URL = "http://testserver"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 10}
# Other principals are mostly refused: fewer examples find the same refusals.
OTHER_EXAMPLES = {GenerationMode.POSITIVE: 5, GenerationMode.NEGATIVE: 3}

Send = Callable[[dict[str, Any]], httpx.Response]


async def test_openapi_document_lists_every_v1_route(client: AsyncClient, app: Litestar) -> None:
    response = await client.get(SCHEMA_PATH)
    assert response.status_code == 200, response.text
    paths = response.json()["paths"]
    served = {
        (route.path_format, method.lower())
        for route in app.routes
        if isinstance(route, HTTPRoute) and route.path.startswith("/v1/")
        for handler in route.route_handlers
        if handler.include_in_schema
        for method in handler.http_methods
        if method not in {"HEAD", "OPTIONS"}
    }
    assert len(served) >= 15, served
    documented = {(path, method) for path, operations in paths.items() for method in operations}
    assert served - documented == set()


async def _seed(
    client: AsyncClient, factory: Factory, settings: Settings
) -> tuple[Actor, list[dict[str, str]], dict[str, Any]]:
    """Real rows for the cases to reach: two tenants with members and keys, billing, escrow, plugins, partners;
    their ids as path parameters and valid bodies by operation."""
    staff = await factory.staff()
    known_paths: list[dict[str, str]] = []
    for _ in range(2):
        tenant_id = (await factory.tenant(staff))["id"]
        known_paths.append({"tenant_id": tenant_id})
        for role in ("tenant_admin", "tenant_admin", "tenant_member"):
            member = await factory.member(tenant_id, role)
            known_paths.append({"tenant_id": tenant_id, "user_id": str(member.user_id)})
        key = await client.post(f"/v1/tenants/{tenant_id}/api-keys", json={"name": "ci"}, headers=staff.headers)
        assert key.status_code == 201, key.text
        known_paths.append({"tenant_id": tenant_id, "key_id": key.json()["id"]})
    known_bodies: dict[str, Any] = {"POST /v1/auth/token": {"email": staff.email, "password": PASSWORD}}
    known_paths += await _billing_examples(
        client, staff.headers, known_paths[0]["tenant_id"], known_bodies, SecretStore.connect(settings), settings
    )
    await _escrow_examples(client, staff.headers, known_bodies, settings)
    await _plugin_examples(client, staff.headers, known_paths[0]["tenant_id"], known_bodies)
    await _partner_examples(client, staff.headers, known_bodies)
    # The GET of an endpoint comes before its PUT in the order below: one is set for the first tenant.
    endpoint = {"url": "https://hooks.example.com/in"}
    known_bodies["PUT /v1/tenants/{tenant_id}/webhook-endpoint"] = endpoint
    put = await client.put(
        f"/v1/tenants/{known_paths[0]['tenant_id']}/webhook-endpoint", json=endpoint, headers=staff.headers
    )
    assert put.status_code == 200, put.text
    return staff, known_paths, known_bodies


async def _operations(client: AsyncClient) -> list[Any]:
    document = (await client.get(SCHEMA_PATH)).json()
    schema = schemathesis.openapi.from_dict(document, config=schemathesis.Config())
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),
        # Erasing a tenant, removing its members, cancelling its subscription or voiding its invoice first
        # would leave the other operations only 404s and 409s.
        # The paid invoice is refunded before credit notes can use up what is left to credit.
        key=lambda operation: (
            operation.method.upper() == "DELETE" or operation.path.endswith(("/cancel", "/void")),
            -operation.path.count("/"),
            {"/pay": 0, "/refunds": 1}.get(operation.path[operation.path.rfind("/") :], 2),
            operation.label,
        ),
    )
    assert len(operations) >= 17, [operation.label for operation in operations]
    return operations


def _sender(client: AsyncClient) -> Send:
    loop = asyncio.get_running_loop()

    def send(kwargs: dict[str, Any]) -> httpx.Response:
        # Exactly what schemathesis' own transport would send, through our client on our loop.
        prepared = requests.Request(**kwargs).prepare()
        request = client.request(
            str(prepared.method), str(prepared.url), headers=dict(prepared.headers), content=prepared.body
        )
        return asyncio.run_coroutine_threadsafe(request, loop).result(timeout=30)

    return send


async def test_every_operation_conforms_to_the_schema(
    client: AsyncClient, factory: Factory, settings: Settings, report: Callable[[str], None]
) -> None:
    staff, known_paths, known_bodies = await _seed(client, factory, settings)
    operations = await _operations(client)
    fuzz = Fuzz(operations, known_paths, known_bodies, staff.headers, _sender(client), EXAMPLES, require_success=True)
    failures = await asyncio.to_thread(fuzz.run)
    report(f"schemathesis as staff: {fuzz.cases} cases over {len(operations)} operations, {len(failures)} failures")
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("principal", ["tenant_admin", "anonymous"])
async def test_every_operation_answers_other_principals_within_the_schema(
    client: AsyncClient, factory: Factory, settings: Settings, report: Callable[[str], None], principal: str
) -> None:
    """As a tenant admin (of the first tenant, so its own paths answer too) and with no credentials: no 5xx,
    and every refusal is one the document describes."""
    _, known_paths, known_bodies = await _seed(client, factory, settings)
    headers = {}
    if principal == "tenant_admin":
        headers = (await factory.member(known_paths[0]["tenant_id"], "tenant_admin")).headers
    operations = await _operations(client)
    fuzz = Fuzz(operations, known_paths, known_bodies, headers, _sender(client), OTHER_EXAMPLES, require_success=False)
    failures = await asyncio.to_thread(fuzz.run)
    report(
        f"schemathesis as {principal}: {fuzz.cases} cases over {len(operations)} operations, {len(failures)} failures"
    )
    assert not failures, "\n\n".join(failures)


async def test_every_path_answers_options_and_head_for_every_principal(
    client: AsyncClient, factory: Factory, settings: Settings, report: Callable[[str], None]
) -> None:
    """Methods the document does not list still answer without a server error: OPTIONS (2xx, with Allow) and
    HEAD, on every path, as staff, as a tenant admin and with no credentials."""
    staff, known_paths, _ = await _seed(client, factory, settings)
    admin = await factory.member(known_paths[0]["tenant_id"], "tenant_admin")
    values = {name: value for path in reversed(known_paths) for name, value in path.items()}
    values.update({"slug": "ci-reports", "version": "1.0.0", "month": "2026-01", "code": "pro"})
    document = (await client.get(SCHEMA_PATH)).json()
    failures, requests_sent = [], 0
    for template in document["paths"]:
        path = re.sub(r"\{(\w+)\}", lambda match: values.get(match.group(1), str(uuid.UUID(int=1))), template)
        for caller in (staff.headers, admin.headers, {}):
            for method in ("OPTIONS", "HEAD"):
                response = await client.request(method, path, headers=caller)
                requests_sent += 1
                if response.status_code >= 500 or (method == "OPTIONS" and not 200 <= response.status_code < 300):
                    failures.append(f"{method} {path} -> {response.status_code} {response.text[:200]}")
    report(f"OPTIONS and HEAD: {requests_sent} requests over {len(document['paths'])} paths, {len(failures)} failures")
    assert not failures, "\n".join(failures)


async def _billing_examples(
    client: AsyncClient,
    headers: dict[str, str],
    tenant_id: str,
    known_bodies: dict[str, Any],
    secrets: SecretStore,
    settings: Settings,
) -> list[dict[str, str]]:
    """A plan, a subscription with usage, its first invoice and a card in the first tenant (the second has
    none, so a subscription can be created there); their ids as path parameters and valid bodies for the
    POSTs, and a Stripe event signed as Stripe would (`SIGNED_BODIES`)."""
    metric = {"code": "calls", "name": "Calls", "aggregation": "count"}
    plan = {
        "code": "pro",
        "name": "Pro",
        "currency": "EUR",
        "interval": "month",
        "charges": [
            {"type": "flat", "amount_minor": 1000},
            {"type": "metered", "metric_code": "calls", "model": "per_unit", "unit_amount_minor": "0.5"},
        ],
    }
    assert (await client.post("/v1/metrics", json=metric, headers=headers)).status_code == 201
    assert (await client.post("/v1/plans", json=plan, headers=headers)).status_code == 201
    # A tax rate under the code path parameter every `{code}` route is given.
    tax_rate = {"code": "pro", "name": "VAT", "rate_bps": 2000, "jurisdiction": "EU"}
    assert (await client.post("/v1/tax-rates", json=tax_rate, headers=headers)).status_code == 201
    response = await client.post(
        f"/v1/tenants/{tenant_id}/subscriptions", json={"plan_code": "pro", "seats": 1}, headers=headers
    )
    assert response.status_code == 201, response.text
    subscription_id = response.json()["id"]
    invoices = (await client.get(f"/v1/tenants/{tenant_id}/invoices", headers=headers)).json()["items"]
    stripe_client = make_stripe_client(settings, secrets)
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    method_id = stripe_client.v1.payment_methods.create(params={"type": "card", "card": card}).id
    method = {"stripe_payment_method_id": method_id, "default": True}
    added = await client.post(f"/v1/tenants/{tenant_id}/payment-methods", json=method, headers=headers)
    assert added.status_code == 201, added.text
    # Paid before the fuzzing: `pay` then answers with that payment, and `refunds` has something to refund.
    paid = await client.post(f"/v1/invoices/{invoices[0]['id']}/pay", headers=headers)
    assert paid.status_code == 200, paid.text
    SIGNED_BODIES["POST /v1/webhooks/stripe"] = (
        {"id": "evt_contract", "object": "event", "type": "customer.created", "data": {"object": {}}},
        secrets.read(STRIPE_PATH)["webhook_secret"],
    )
    event = {"idempotency_key": "e1", "metric_code": "calls", "timestamp": "2026-01-01T00:00:00Z"}
    known_bodies.update(
        {
            "POST /v1/metrics": metric,
            "POST /v1/plans": plan,
            "POST /v1/tax-rates": tax_rate,
            "PUT /v1/tenants/{tenant_id}/tax-rates": {"codes": ["pro"]},
            "POST /v1/usage": {"tenant_id": tenant_id, "events": [{**event, "timestamp": _now()}]},
            "POST /v1/tenants/{tenant_id}/subscriptions": {"plan_code": "pro", "seats": 1},
            "POST /v1/subscriptions/{subscription_id}/change": {"seats": 2},
            "POST /v1/subscriptions/{subscription_id}/cancel": {"at_period_end": True},
            "POST /v1/invoices/{invoice_id}/credit-notes": {"amount_minor": 1, "reason": "goodwill"},
            "POST /v1/tenants/{tenant_id}/invoices": {
                "currency": "EUR",
                "lines": [{"description": "Setup", "quantity": "1.5", "unit_amount_minor": 100}],
            },
            "POST /v1/tenants/{tenant_id}/payment-methods": method,
            "POST /v1/invoices/{invoice_id}/refunds": {"amount_minor": 1, "reason": "goodwill"},
        }
    )
    # A tenant without a card: its invoice stays unpaid, so it can still be voided after the fuzzing of `pay`.
    unpaid_tenant = await client.post(
        "/v1/tenants", json={"name": "Unpaid", "slug": "unpaid-contract", "currency": "EUR"}, headers=headers
    )
    assert unpaid_tenant.status_code == 201, unpaid_tenant.text
    unpaid_url = f"/v1/tenants/{unpaid_tenant.json()['id']}"
    subscribed = await client.post(f"{unpaid_url}/subscriptions", json={"plan_code": "pro"}, headers=headers)
    assert subscribed.status_code == 201, subscribed.text
    unpaid = (await client.get(f"{unpaid_url}/invoices", headers=headers)).json()["items"][0]
    # A credit note for `GET /v1/credit-notes/{credit_note_id}` (and its PDF) to find.
    note = await client.post(
        f"/v1/invoices/{unpaid['id']}/credit-notes", json={"amount_minor": 1, "reason": "goodwill"}, headers=headers
    )
    assert note.status_code == 201, note.text
    # A tenant of its own for subscribing, which no other operation subscribes first.
    unsubscribed = await client.post(
        "/v1/tenants", json={"name": "New", "slug": "unsubscribed-contract", "currency": "EUR"}, headers=headers
    )
    assert unsubscribed.status_code == 201, unsubscribed.text
    PATHS_BY_OPERATION["POST /v1/tenants/{tenant_id}/subscriptions"] = [{"tenant_id": unsubscribed.json()["id"]}]
    known_bodies.update(
        {
            "POST /v1/tenants": {"name": "Known", "slug": "known-contract", "currency": "EUR"},
            "POST /v1/tenants/{tenant_id}/trial-grants": {"plan_code": "pro"},
        }
    )
    # Coupons: "pro" shares the plan's known code (GET and archive find it), "launch" waits to be redeemed
    # and "seeded" is redeemed already, so its discount can be removed.
    for code in ("pro", "launch", "seeded"):
        coupon = {"code": code, "name": code.title(), "percent_off_bps": 1000, "duration": "forever"}
        assert (await client.post("/v1/coupons", json=coupon, headers=headers)).status_code == 201
    discounts = f"/v1/subscriptions/{subscription_id}/discounts"
    seeded = await client.post(discounts, json={"coupon_code": "seeded"}, headers=headers)
    assert seeded.status_code == 201, seeded.text
    PATHS_BY_OPERATION["DELETE /v1/subscriptions/{subscription_id}/discounts/{discount_id}"] = [
        {"subscription_id": subscription_id, "discount_id": seeded.json()["id"]}
    ]
    known_bodies.update(
        {
            "POST /v1/coupons": {"code": "known", "name": "Known", "amount_off_minor": 100, "currency": "EUR",
                                 "duration": "once"},
            "POST /v1/subscriptions/{subscription_id}/discounts": {"coupon_code": "launch"},
        }
    )  # fmt: skip
    return [
        {"subscription_id": subscription_id},
        {"invoice_id": invoices[0]["id"]},
        {"invoice_id": unpaid["id"]},
        {"credit_note_id": note.json()["id"]},
        {"code": "pro"},
    ]


# Operations that change a milestone or an agreement get agreements of their own, each in the state the
# operation needs, so that one operation's fuzzing does not use up another's.
PATHS_BY_OPERATION: dict[str, list[dict[str, str]]] = {}
ESCROW = "/v1/escrows/{escrow_id}"
MILESTONE_STEPS = {"submit": [], "accept": ["submit"], "reject": ["submit"], "resolve": ["submit", "reject"]}


async def _escrow_examples(
    client: AsyncClient, headers: dict[str, str], known_bodies: dict[str, Any], settings: Settings
) -> None:
    # A payer with a card of its own, outside the fuzzed tenants, whose currency no generated PATCH can change.
    payer = await client.post(
        "/v1/tenants", json={"name": "Payer", "slug": "escrow-payer", "currency": "EUR"}, headers=headers
    )
    assert payer.status_code == 201, payer.text
    tenant_id = payer.json()["id"]
    stripe_client = make_stripe_client(settings, SecretStore.connect(settings))
    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2031, "cvc": "123"}
    method_id = stripe_client.v1.payment_methods.create(params={"type": "card", "card": card}).id
    method = {"stripe_payment_method_id": method_id, "default": True}
    added = await client.post(f"/v1/tenants/{tenant_id}/payment-methods", json=method, headers=headers)
    assert added.status_code == 201, added.text
    body = {
        "tenant_id": tenant_id,
        "payee": {"type": "vendor", "id": "8a7c3f0e-1d2b-4c5a-9e8f-7a6b5c4d3e2f"},
        "currency": "EUR",
        "amount_minor": 300,
        "milestones": [{"title": f"Part {n}", "amount_minor": 100} for n in range(3)],
    }
    known_bodies.update(
        {
            "POST /v1/escrows": body,
            f"POST {ESCROW}/milestones/{{milestone_id}}/reject": {"reason": "not as agreed"},
            f"POST {ESCROW}/milestones/{{milestone_id}}/resolve": {"outcome": "release"},
        }
    )

    async def agreement(funded: bool) -> dict[str, Any]:
        created = await client.post("/v1/escrows", json=body, headers=headers)
        assert created.status_code == 201, created.text
        if funded:
            paid = await client.post(f"/v1/escrows/{created.json()['id']}/fund", headers=headers)
            assert paid.status_code == 200, paid.text
        return created.json()

    draft, funded = await agreement(False), await agreement(True)
    PATHS_BY_OPERATION[f"POST {ESCROW}/fund"] = [{"escrow_id": draft["id"]}]
    PATHS_BY_OPERATION[f"POST {ESCROW}/cancel"] = [{"escrow_id": funded["id"]}]
    PATHS_BY_OPERATION[f"GET {ESCROW}"] = [{"escrow_id": funded["id"]}]
    for step, before in MILESTONE_STEPS.items():
        ready = await agreement(True)
        for milestone in ready["milestones"]:
            url = f"/v1/escrows/{ready['id']}/milestones/{milestone['id']}"
            for earlier in before:
                moved = await client.post(
                    f"{url}/{earlier}",
                    json=known_bodies.get(f"POST {ESCROW}/milestones/{{milestone_id}}/{earlier}"),
                    headers=headers,
                )
                assert moved.status_code == 200, moved.text
        PATHS_BY_OPERATION[f"POST {ESCROW}/milestones/{{milestone_id}}/{step}"] = [
            {"escrow_id": ready["id"], "milestone_id": milestone["id"]} for milestone in ready["milestones"]
        ]


# Operations whose body must carry a Stripe-Signature: label -> (body, signing secret). The header is made
# when the operation's turn comes, so it is fresh (Stripe's tolerance is 5 minutes).
SIGNED_BODIES: dict[str, tuple[dict[str, Any], str]] = {}
# Queries that name something real (random months are mostly refused): this month, in the currency in use.
_THIS_MONTH = datetime.now(UTC).strftime("%Y-%m")
KNOWN_QUERIES = {"GET /v1/analytics/revenue": {"from": _THIS_MONTH, "to": _THIS_MONTH, "currency": "EUR"}}
# Operations that answer only another kind of caller than staff (the entitlement check: a tenant API key).
HEADERS_BY_OPERATION: dict[str, dict[str, str]] = {}


async def _partner_examples(client: AsyncClient, headers: dict[str, str], known_bodies: dict[str, Any]) -> None:
    """Three resellers: one with a checkpoint awaiting approval, an agreement and a closed (empty) month; one
    awaiting a rejection; one with nothing submitted yet."""
    partners = []
    for name in ("Approve", "Reject", "Submit"):
        created = await client.post(
            "/v1/resellers", json={"name": name, "email": f"{name.lower()}@example.com"}, headers=headers
        )
        assert created.status_code == 201, created.text
        partners.append(created.json()["id"])
    for partner_id in partners[:2]:
        submitted = await client.post(
            f"/v1/partners/{partner_id}/checkpoints/profile_approved/submit", json={"evidence": "ok"}, headers=headers
        )
        assert submitted.status_code == 200, submitted.text
    agreement = {"currency": "EUR", "rate_bps": 1000}
    assert (
        await client.put(f"/v1/resellers/{partners[0]}/agreement", json=agreement, headers=headers)
    ).status_code == 200
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).date().replace(day=1)
    await billing.close_month(last_month)
    checkpoint = "/v1/partners/{partner_id}/checkpoints/{code}"
    known_bodies.update(
        {
            "POST /v1/partners": {"kind": "publisher", "name": "Pub", "email": "pub@example.com"},
            f"POST {checkpoint}/submit": {"evidence": "ok"},
            f"POST {checkpoint}/reject": {"reason": "incomplete"},
            "POST /v1/partners/{partner_id}/members": {"email": "viewer@example.com", "role": "reseller_viewer"},
            "POST /v1/tenants/{tenant_id}/reseller": {"reseller_id": None},
            "PUT /v1/resellers/{partner_id}/agreement": agreement,
        }
    )
    first = [{"partner_id": partners[0]}]
    for label in (
        "GET /v1/partners/{partner_id}/qualification",
        "GET /v1/partners/{partner_id}/history",
        "GET /v1/partners/{partner_id}/notifications",
        "POST /v1/partners/{partner_id}/members",
        "GET /v1/resellers/{partner_id}/tenants",
        "GET /v1/resellers/{partner_id}/agreement",
        "PUT /v1/resellers/{partner_id}/agreement",
        "GET /v1/resellers/{partner_id}/statements",
        "GET /v1/resellers/{partner_id}/payouts",
    ):
        PATHS_BY_OPERATION[label] = first
    PATHS_BY_OPERATION["GET /v1/resellers/{partner_id}/statements/{month}"] = [
        {"partner_id": partners[0], "month": f"{last_month:%Y-%m}"}
    ]
    for action, partner_id in zip(("approve", "reject", "submit"), partners, strict=True):
        PATHS_BY_OPERATION[f"POST {checkpoint}/{action}"] = [{"partner_id": partner_id, "code": "profile_approved"}]


async def _plugin_examples(
    client: AsyncClient, headers: dict[str, str], tenant_id: str, known_bodies: dict[str, Any]
) -> None:
    """A published plugin installed in the first tenant (1.0.0, then updated to 1.1.0, so it can roll back),
    its license with one activation, a version that may be yanked, and a machine key for the check."""
    publisher = await client.post("/v1/publishers", json={"name": "CI", "email": "ci@example.com"}, headers=headers)
    plugin = {
        "slug": "ci-reports",
        "name": "Reports",
        "publisher_id": publisher.json()["id"],
        "pricing": {"model": "free"},
        "entitlements": {"features": ["export"], "limits": {"reports": 10}, "seats": 5},
    }
    assert (await client.post("/v1/plugins", json=plugin, headers=headers)).status_code == 201
    slug = "/v1/plugins/{slug}"
    for version in ("0.9.0", "1.0.0", "1.1.0"):
        body = {"version": version, "min_platform_version": "1.0.0", "artifact_sha256": "a" * 64}
        response = await client.post("/v1/plugins/ci-reports/versions", json=body, headers=headers)
        assert response.status_code == 201, response.text
    installs = f"/v1/tenants/{tenant_id}/plugins"
    installed = await client.post(installs, json={"slug": "ci-reports", "version": "1.0.0"}, headers=headers)
    assert installed.status_code == 201, installed.text
    assert (await client.patch(f"{installs}/ci-reports", json={"version": "1.1.0"}, headers=headers)).status_code == 200
    license_id = installed.json()["license"]["id"]
    activation = await client.post(
        f"/v1/licenses/{license_id}/activations", json={"fingerprint": "ci"}, headers=headers
    )
    assert activation.status_code == 201, activation.text
    key = await client.post(
        f"/v1/tenants/{tenant_id}/api-keys", json={"name": "m", "role": "tenant_member"}, headers=headers
    )
    HEADERS_BY_OPERATION["GET /v1/entitlements/check"] = {"Authorization": f"Bearer {key.json()['secret']}"}
    known_bodies.update(
        {
            "POST /v1/publishers": {"name": "CI", "email": "ci@example.com"},
            "POST /v1/plugins": plugin,
            f"POST {slug}/versions": {"version": "1.1.0", "min_platform_version": "1.0.0", "artifact_sha256": "a" * 64},
            f"POST {slug}/versions/{{version}}/yank": {"reason": "superseded"},
            "POST /v1/tenants/{tenant_id}/plugins": {"slug": "ci-reports"},
            "PATCH /v1/tenants/{tenant_id}/plugins/{slug}": {"version": "1.1.0"},
            "POST /v1/licenses/{license_id}/activations": {"fingerprint": "ci"},
        }
    )
    on_plugin = [{"slug": "ci-reports"}]
    on_install = [{"tenant_id": tenant_id, "slug": "ci-reports"}]
    on_license = [{"license_id": license_id}]
    PATHS_BY_OPERATION.update(
        {
            f"GET {slug}": on_plugin,
            f"GET {slug}/versions": on_plugin,
            f"POST {slug}/versions": on_plugin,
            f"POST {slug}/versions/{{version}}/yank": [{"slug": "ci-reports", "version": "0.9.0"}],
            "PATCH /v1/tenants/{tenant_id}/plugins/{slug}": on_install,
            "POST /v1/tenants/{tenant_id}/plugins/{slug}/rollback": on_install,
            "DELETE /v1/tenants/{tenant_id}/plugins/{slug}": on_install,
            "GET /v1/publishers/{publisher_id}": [{"publisher_id": publisher.json()["id"]}],
            "GET /v1/licenses/{license_id}": on_license,
            "POST /v1/licenses/{license_id}/refresh": on_license,
            "POST /v1/licenses/{license_id}/activations": on_license,
            "GET /v1/licenses/{license_id}/activations": on_license,
            "POST /v1/licenses/{license_id}/activations/{activation_id}/heartbeat": [
                {"license_id": license_id, "activation_id": activation.json()["id"]}
            ],
            "DELETE /v1/licenses/{license_id}/activations/{activation_id}": [
                {"license_id": license_id, "activation_id": activation.json()["id"]}
            ],
        }
    )


def _stripe_signature(body: dict[str, Any], secret: str) -> dict[str, str]:
    # The exact bytes `requests` sends for a JSON body.
    payload = json.dumps(body).encode()
    stamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={digest}"}


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Fuzz:
    """Schemathesis over the operations, as one caller; `cases` counts what was sent."""

    def __init__(
        self,
        operations: list[Any],
        known_paths: list[dict[str, str]],
        known_bodies: dict[str, Any],
        headers: dict[str, str],
        send: Send,
        examples: dict[GenerationMode, int],
        *,
        require_success: bool,
    ) -> None:
        self.operations, self.known_paths, self.known_bodies = operations, known_paths, known_bodies
        self.headers, self.send, self.examples, self.require_success = headers, send, examples, require_success
        self.cases = 0

    def run(self) -> list[str]:
        known_paths, known_bodies, headers, send = self.known_paths, self.known_bodies, self.headers, self.send
        failures = []
        statuses: dict[str, set[int]] = defaultdict(set)
        answers: dict[tuple[str, int], str] = {}  # the last body of each status, to explain a failure
        for number, operation in enumerate(self.operations):
            names = {parameter.name for parameter in operation.path_parameters}
            paths = PATHS_BY_OPERATION.get(operation.label, known_paths)
            for mode, examples in self.examples.items():
                strategies = [operation.as_strategy(generation_mode=mode)]
                if mode is GenerationMode.POSITIVE:
                    strategies += [
                        operation.as_strategy(generation_mode=mode, path_parameters=values)
                        for values in paths
                        if names and set(values) == names
                    ]
                    if operation.label in KNOWN_QUERIES:
                        strategies.append(
                            operation.as_strategy(generation_mode=mode, query=KNOWN_QUERIES[operation.label])
                        )
                    if operation.label in SIGNED_BODIES:
                        body, secret = SIGNED_BODIES[operation.label]
                        strategies.append(
                            operation.as_strategy(
                                generation_mode=mode, body=body, headers=_stripe_signature(body, secret)
                            )
                        )
                    if operation.label in known_bodies:
                        body = known_bodies[operation.label]
                        strategies.append(operation.as_strategy(generation_mode=mode, body=body))
                        if not names:
                            strategies.append(
                                operation.as_strategy(
                                    generation_mode=mode, body=body, headers={"Idempotency-Key": f"known-{number}"}
                                )
                            )
                        # Each its own Idempotency-Key: a generated one may have been used elsewhere already.
                        strategies += [
                            operation.as_strategy(
                                generation_mode=mode,
                                path_parameters=values,
                                body=body,
                                headers={"Idempotency-Key": f"known-{number}-{index}"},
                            )
                            for index, values in enumerate(paths)
                            if names and set(values) == names
                        ]

                @settings(
                    max_examples=examples,
                    derandomize=True,
                    database=None,
                    deadline=None,
                    phases=[Phase.generate, Phase.shrink],
                    suppress_health_check=list(HealthCheck),
                )
                @given(case=st.one_of(strategies))
                def check(case: schemathesis.Case) -> None:
                    caller = (
                        HEADERS_BY_OPERATION.get(case.operation.label, headers) if self.require_success else headers
                    )
                    self.cases += 1
                    response = send(case.as_transport_kwargs(base_url=BASE_URL, headers=caller))
                    statuses[case.operation.label].add(response.status_code)
                    answers[(case.operation.label, response.status_code)] = response.text[:300]
                    case.validate_response(response, checks=CHECKS, headers=caller)

                try:
                    check()
                except Unsatisfiable:
                    # Negative mode needs something to break: an operation without parameters, body or
                    # security (GET /health/live) has no invalid request, which is not a failure.
                    if mode is GenerationMode.POSITIVE:
                        failures.append(f"{operation.label} [{mode.value}]: no valid request could be generated")
                except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
                    failures.append(f"{operation.label} [{mode.value}]: {exc}")
            if self.require_success and not any(200 <= status < 300 for status in statuses[operation.label]):
                seen = sorted(statuses[operation.label])
                examples = "; ".join(f"{status}: {answers[(operation.label, status)]}" for status in seen)
                failures.append(f"{operation.label}: never answered 2xx, only {seen} ({examples})")
        return failures
