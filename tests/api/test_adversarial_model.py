"""An adversarial model: a hostile tenant and a reseller act in random order beside two honest tenants.

Hypothesis (stateful) drives, through the real API on the test stack, an attacker tenant (its admin, a member
and an admin API key, all with hostile values: extremes, Unicode, odd dates, repeated and out-of-order calls),
a qualified reseller, and two honest tenants that meter usage. Every response is checked as it comes: never a
5xx, always problem+json on a 4xx, never a 2xx where the attacker acts on another tenant.

After every run, the invariants that make the product trustworthy with money:
- the attacker's commercial terms (tax rate, grace, currency) are what staff set;
- the attacker got a plan's trial at most once;
- the billing cycle bills every honest tenant, whatever the attacker stored, and each honest invoice matches an
  oracle computed here from the usage the honest tenants sent; the collection run then charges every honest
  invoice to its card;
- the ledger verifies (every journal balances, every receivable agrees with its invoices).

The counts of operations and invariants checked print in the run's summary.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from billing import service as billing
from billing.payments.gateway import StripeGateway
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import create_api_key
from tests.api.billing._support import half_up
from tests.api.billing.test_payments import GOOD_CARD, card
from tests.api.partners.test_resellers import RESELLER_CHAIN, _qualify, _sign_up
from tests.factories import Actor, Factory

pytestmark = pytest.mark.slow

T = TypeVar("T")

EXAMPLES = 20
STEPS = 50
JANUARY = datetime(2026, 1, 1, tzinfo=UTC)
IN_JANUARY = "2026-01-20T10:00:00Z"
# One hour past the February boundary and the default one-hour usage grace.
CYCLE_AS_OF = datetime(2026, 2, 1, 2, tzinfo=UTC)
TAX_RATE_BPS = 2000
# The attacker's grace (it must stay what staff set); honest invoices are finalized at once, to be collected.
ATTACKER_GRACE_HOURS = 24
FLAT = 1000
PER_SEAT = 250
PER_CALL = Decimal("0.5")
HONEST_SEATS = 2

# Hostile values for any field: extremes, wrong types, Unicode, odd dates.
HOSTILE_NUMBERS = [
    -1,
    0,
    1,
    10_000,
    10_001,
    2**31,
    2**63 - 1,
    2**63,
    10**20,
    -(2**63),
    1.5,
    "1e400",
    "NaN",
    "99999999999999999999.5",
    None,
    True,
]
HOSTILE_TEXT = [
    "",
    " ",
    "\u0000",
    "e\u0301",
    "\u202eevil",
    "\U0001d518\U0001d52b\U0001d526",
    "A" * 5000,
    "'; drop table tenants; --",
    "EUR",
    "XXX",
    "eur",
]
HOSTILE_DATES = [
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-05:00",
    "2026-02-30T00:00:00Z",
    "2026-01-20T10:00:00",
    "1970-01-01T00:00:00Z",
    "not a date",
    IN_JANUARY,
]
HOSTILE_URLS = [
    "https://ex\u0000ample.com/",
    "https://exa mple.com/",
    "https://a\uff0ecom/",
    "https://" + "a" * 300 + ".com/",
    "http://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/",
    "https://[::ffff:127.0.0.1]/",
    "https://xn--/",
    "https://hooks.example.com/in",
]
hostile_value = st.sampled_from(HOSTILE_NUMBERS + HOSTILE_TEXT)


@dataclass
class Tenant:
    id: str
    admin: Actor
    key_headers: dict[str, str]
    calls: int = 0


@dataclass
class Counts:
    operations: Counter[str] = field(default_factory=Counter)
    invariants: Counter[str] = field(default_factory=Counter)


class Api:
    """Sends each request on the test's event loop from Hypothesis' thread, and judges every answer."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client = client
        self.loop = loop

    def run(self, coroutine: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)  # type: ignore[arg-type]

    def send(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        response = self.run(self.client.request(method, url, headers=headers, **kwargs))
        assert response.status_code < 500, f"{method} {url} {kwargs} -> {response.status_code} {response.text}"
        if response.status_code >= 400 and method != "HEAD":
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
            assert response.json().get("code"), response.text
        return response


class Catalogue:
    """Metrics and plans made once per test; the examples share them."""

    def __init__(self, api: Api, staff: Actor) -> None:
        for body in (
            {"code": "api_calls", "name": "API calls", "aggregation": "count"},
            {"code": "tokens", "name": "Tokens", "aggregation": "sum", "field": "tokens"},
        ):
            created = api.send("POST", "/v1/metrics", staff.headers, json=body)
            assert created.status_code == 201, created.text
        for code, trial_days, charges in (
            (
                "pro",
                0,
                [
                    {"type": "flat", "amount_minor": FLAT},
                    {"type": "per_seat", "unit_amount_minor": str(PER_SEAT)},
                    {"type": "metered", "metric_code": "api_calls", "model": "per_unit", "unit_amount_minor": "0.5"},
                    {"type": "metered", "metric_code": "tokens", "model": "per_unit", "unit_amount_minor": "0.001"},
                ],
            ),
            ("trial-pro", 14, [{"type": "flat", "amount_minor": 5000}]),
        ):
            body = {
                "code": code,
                "name": code,
                "currency": "EUR",
                "interval": "month",
                "trial_days": trial_days,
                "charges": charges,
            }
            created = api.send("POST", "/v1/plans", staff.headers, json=body)
            assert created.status_code == 201, created.text


class AdversarialModel(RuleBasedStateMachine):
    api: Api
    factory: Factory
    staff: Actor
    settings: Settings
    stripe: Any
    reseller_admin: Actor
    reseller_id: str
    counts: Counts

    def __init__(self) -> None:
        super().__init__()
        self.serial = itertools.count()
        self.trials_started = 0

    # -- the world of one run -------------------------------------------------------------------------

    def _tenant(self, slug_prefix: str, grace_hours: int = 0) -> Tenant:
        body = {
            "name": slug_prefix.title(),
            "slug": f"{slug_prefix}-{uuid.uuid4().hex[:10]}",
            "currency": "EUR",
            "tax_rate_bps": TAX_RATE_BPS,
            "invoice_grace_hours": grace_hours,
        }
        created = self.api.send("POST", "/v1/tenants", self.staff.headers, json=body)
        assert created.status_code == 201, created.text
        tenant_id = created.json()["id"]
        admin = self.api.run(self.factory.member(tenant_id, "tenant_admin"))
        _, secret = self.api.run(create_api_key(self.api.client, admin.headers, tenant_id, role="tenant_admin"))
        subscribed = self.api.send(
            "POST",
            f"/v1/tenants/{tenant_id}/subscriptions",
            self.staff.headers,
            json={"plan_code": "pro", "seats": HONEST_SEATS, "start_at": JANUARY.isoformat()},
        )
        assert subscribed.status_code == 201, subscribed.text
        return Tenant(tenant_id, admin, {"Authorization": f"Bearer {secret}"})

    @initialize()
    def world(self) -> None:
        self.honest = [self._tenant("honest"), self._tenant("honest")]
        for tenant in self.honest:
            method = {"stripe_payment_method_id": card(self.stripe, GOOD_CARD), "default": True}
            added = self.api.send("POST", f"/v1/tenants/{tenant.id}/payment-methods", tenant.admin.headers, json=method)
            assert added.status_code == 201, added.text
        self.attacker = self._tenant("attacker", ATTACKER_GRACE_HOURS)
        self.attacker_member = self.api.run(self.factory.member(self.attacker.id, "tenant_member"))
        self.attacker_terms = self._terms(self.attacker.id)
        self.principals = {
            "admin": self.attacker.admin.headers,
            "member": self.attacker_member.headers,
            "key": self.attacker.key_headers,
        }

    def _terms(self, tenant_id: str) -> tuple[Any, ...]:
        tenant = self.api.send("GET", f"/v1/tenants/{tenant_id}", self.staff.headers).json()
        return tenant["tax_rate_bps"], tenant["invoice_grace_hours"], tenant["currency"]

    def _count(self, name: str) -> None:
        self.counts.operations[name] += 1

    # -- honest tenants -------------------------------------------------------------------------------

    @rule(which=st.integers(0, 1), calls=st.integers(1, 5), replay=st.booleans())
    def honest_meters_usage(self, which: int, calls: int, replay: bool) -> None:
        self._count("honest_meters_usage")
        tenant = self.honest[which]
        batch = f"{tenant.id}-{next(self.serial)}"
        events = [
            {"idempotency_key": f"{batch}-{i}", "metric_code": "api_calls", "timestamp": IN_JANUARY}
            for i in range(calls)
        ]
        for attempt in range(2 if replay else 1):
            answer = self.api.send("POST", "/v1/usage", tenant.key_headers, json={"events": events})
            assert answer.status_code == 200, answer.text
            reply = answer.json()
            assert reply["rejected"] == [], reply
            assert (reply["accepted"], reply["duplicates"]) == ((calls, 0) if attempt == 0 else (0, calls)), reply
        tenant.calls += calls

    # -- the attacker -------------------------------------------------------------------------------

    @rule(
        principal=st.sampled_from(["admin", "member", "key"]),
        term=st.sampled_from(["tax_rate_bps", "invoice_grace_hours", "currency"]),
        value=st.one_of(hostile_value, st.integers(0, 10_000), st.sampled_from(["USD", "JPY", "KWD"])),
    )
    def attacker_sets_its_own_terms(self, principal: str, term: str, value: Any) -> None:
        self._count("attacker_sets_its_own_terms")
        answer = self.api.send(
            "PATCH", f"/v1/tenants/{self.attacker.id}", self.principals[principal], json={term: value}
        )
        assert answer.status_code in (400, 403, 422), answer.text

    @rule(
        principal=st.sampled_from(["admin", "key"]),
        metric=st.sampled_from(["tokens", "api_calls", "missing", "\U0001d518", ""]),
        value=hostile_value,
        timestamp=st.sampled_from(HOSTILE_DATES),
        key=st.sampled_from(["k1", "k2", "\u0000", "x" * 500, ""]),
        as_property=st.booleans(),
    )
    def attacker_meters_hostile_usage(
        self, principal: str, metric: str, value: Any, timestamp: str, key: str, as_property: bool
    ) -> None:
        self._count("attacker_meters_hostile_usage")
        event = {"idempotency_key": key, "metric_code": metric, "timestamp": timestamp}
        event.update({"properties": {"tokens": value}} if as_property else {"value": value})
        self.api.send("POST", "/v1/usage", self.principals[principal], json={"events": [event]})

    @rule(
        action=st.sampled_from(["subscribe_trial", "subscribe_pro", "cancel_now", "cancel_later", "seats"]),
        seats=hostile_value,
    )
    def attacker_churns_its_subscription(self, action: str, seats: Any) -> None:
        self._count("attacker_churns_its_subscription")
        headers = self.attacker.admin.headers
        base = f"/v1/tenants/{self.attacker.id}/subscriptions"
        if action.startswith("subscribe"):
            plan = "trial-pro" if action == "subscribe_trial" else "pro"
            answer = self.api.send("POST", base, headers, json={"plan_code": plan})
            if answer.status_code == 201 and answer.json()["status"] == "trialing":
                self.trials_started += 1
            return
        listed = self.api.send("GET", base, headers)
        assert listed.status_code == 200, listed.text
        live = [item for item in listed.json()["items"] if item["status"] != "canceled"]
        if not live:
            return
        target = f"/v1/subscriptions/{live[0]['id']}"
        if action == "seats":
            self.api.send("PATCH", target, headers, json={"seats": seats})
        else:
            self.api.send("POST", f"{target}/cancel", headers, json={"at_period_end": action == "cancel_later"})

    @rule(
        principal=st.sampled_from(["admin", "member", "key"]),
        which=st.integers(0, 1),
        probe=st.sampled_from(["tenant", "patch", "invoices", "members", "subscribe", "api_key", "usage"]),
    )
    def attacker_reaches_for_an_honest_tenant(self, principal: str, which: int, probe: str) -> None:
        self._count("attacker_reaches_for_an_honest_tenant")
        headers = self.principals[principal]
        victim = f"/v1/tenants/{self.honest[which].id}"
        method, url, body = {
            "tenant": ("GET", victim, None),
            "patch": ("PATCH", victim, {"tax_rate_bps": 0}),
            "invoices": ("GET", f"{victim}/invoices", None),
            "members": ("GET", f"{victim}/members", None),
            "subscribe": ("POST", f"{victim}/subscriptions", {"plan_code": "pro"}),
            "api_key": ("POST", f"{victim}/api-keys", {"name": "mine", "role": "tenant_admin"}),
            "usage": ("GET", f"{victim}/usage", None),
        }[probe]
        answer = self.api.send(method, url, headers, json=body)
        assert answer.status_code in (403, 404), answer.text

    @rule(url=st.sampled_from(HOSTILE_URLS))
    def attacker_points_its_webhooks_anywhere(self, url: str) -> None:
        self._count("attacker_points_its_webhooks_anywhere")
        self.api.send(
            "PUT", f"/v1/tenants/{self.attacker.id}/webhook-endpoint", self.attacker.admin.headers, json={"url": url}
        )

    @rule(principal=st.sampled_from(["admin", "key"]))
    def attacker_reuses_an_idempotency_key(self, principal: str) -> None:
        self._count("attacker_reuses_an_idempotency_key")
        headers = {**self.principals[principal], "Idempotency-Key": f"reuse-{next(self.serial)}"}
        first = {"events": [{"idempotency_key": "a", "metric_code": "tokens", "timestamp": IN_JANUARY}]}
        second = {"events": [{"idempotency_key": "b", "metric_code": "tokens", "timestamp": IN_JANUARY}]}
        self.api.send("POST", "/v1/usage", headers, json=first)
        answer = self.api.send("POST", "/v1/usage", headers, json=second)
        assert answer.status_code == 422, answer.text

    @rule(
        method=st.sampled_from(["OPTIONS", "HEAD", "GET"]),
        path=st.sampled_from(
            [
                "/v1/metrics",
                "/v1/plans",
                "/v1/publishers",
                f"/v1/publishers/{uuid.UUID(int=0)}",
                "/v1/licensing/revocations?after=0001-01-01T00:00:00+05:00",
                "/v1/licensing/revocations?after=9999-12-31T23:59:59-05:00",
                "/v1/licensing/keys",
                "/v1/tenants",
                "/health/live",
            ]
        ),
    )
    def anyone_probes_a_route(self, method: str, path: str) -> None:
        self._count("anyone_probes_a_route")
        self.api.send(method, path)

    @rule(with_terms=st.booleans(), tax=st.one_of(st.integers(0, 10_000), hostile_value))
    def reseller_creates_a_tenant(self, with_terms: bool, tax: Any) -> None:
        self._count("reseller_creates_a_tenant")
        body: dict[str, Any] = {
            "name": "Resold",
            "slug": f"resold-{uuid.uuid4().hex[:10]}",
            "reseller_id": self.reseller_id,
        }
        if with_terms:
            body["tax_rate_bps"] = tax
        answer = self.api.send("POST", "/v1/tenants", self.reseller_admin.headers, json=body)
        if with_terms:
            assert answer.status_code in (400, 403, 422), answer.text
        else:
            assert answer.status_code == 201, answer.text

    # -- after every step ---------------------------------------------------------------------------

    @invariant()
    def attacker_started_at_most_one_trial(self) -> None:
        if hasattr(self, "attacker"):
            self.counts.invariants["attacker_started_at_most_one_trial"] += 1
            assert self.trials_started <= 1

    def teardown(self) -> None:
        if not hasattr(self, "attacker"):
            return
        assert self._terms(self.attacker.id) == self.attacker_terms
        self.counts.invariants["attacker_terms_unchanged"] += 1
        self.api.run(billing.run_cycle(CYCLE_AS_OF, grace=timedelta(hours=1)))
        for tenant in self.honest:
            invoices = self.api.send("GET", f"/v1/tenants/{tenant.id}/invoices", self.staff.headers).json()["items"]
            assert [invoice["period_start"][:10] for invoice in invoices] == ["2026-01-01", "2026-02-01"], invoices
            february = invoices[1]
            metered = half_up(PER_CALL * tenant.calls)
            expected_lines = sorted([metered, 0, FLAT, PER_SEAT * HONEST_SEATS])
            assert sorted(line["amount_minor"] for line in february["lines"]) == expected_lines, february
            subtotal = sum(expected_lines)
            tax = half_up(Decimal(subtotal) * TAX_RATE_BPS / 10_000)
            assert (february["subtotal_minor"], february["tax_minor"]) == (subtotal, tax), february
            self.counts.invariants["honest_invoice_matches_the_oracle"] += 1
        gateway = StripeGateway(self.stripe)
        self.api.run(billing.collect_due_invoices(gateway, datetime.now(UTC), self.settings.dunning_days))
        for tenant in self.honest:
            invoices = self.api.send("GET", f"/v1/tenants/{tenant.id}/invoices", self.staff.headers).json()["items"]
            assert [invoice["status"] for invoice in invoices] == ["paid", "paid"], invoices
            self.counts.invariants["honest_invoices_collected"] += 1
        ledger = self.api.run(billing.verify_ledger())
        assert ledger.ok, ledger
        self.counts.invariants["ledger_verifies"] += 1


async def test_a_hostile_tenant_cannot_cheat_its_bill_or_stop_anyone_elses(
    client: httpx.AsyncClient, factory: Factory, settings: Settings, report: Callable[[str], None]
) -> None:
    loop = asyncio.get_running_loop()
    api = Api(client, loop)
    staff = await factory.staff()
    await asyncio.to_thread(Catalogue, api, staff)
    reseller_admin = await factory.user()
    partner = await _sign_up(client, reseller_admin)
    await _qualify(client, reseller_admin, staff, partner["id"], RESELLER_CHAIN)
    agreement = {"currency": "EUR", "rate_bps": 1000}
    agreed = await client.put(f"/v1/resellers/{partner['id']}/agreement", json=agreement, headers=staff.headers)
    assert agreed.status_code == 200, agreed.text
    counts = Counts()

    class Model(AdversarialModel):
        pass

    Model.api, Model.factory, Model.staff = api, factory, staff
    Model.settings, Model.stripe = settings, make_stripe_client(settings, SecretStore.connect(settings))
    Model.reseller_admin, Model.reseller_id, Model.counts = reseller_admin, partner["id"], counts
    await asyncio.to_thread(
        run_state_machine_as_test,
        Model,
        settings=hypothesis_settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
    report(
        f"adversarial model: {sum(counts.operations.values())} operations "
        f"({', '.join(f'{name} {count}' for name, count in sorted(counts.operations.items()))}); "
        f"invariants checked: {', '.join(f'{name} {count}' for name, count in sorted(counts.invariants.items()))}"
    )
    assert sum(counts.operations.values()) >= EXAMPLES * STEPS // 2
