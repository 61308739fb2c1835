"""Escrow through the API, beyond the happy path: auto-accept after the inspection window, a declined
funding card, bad input that writes nothing, another tenant's agreement, refused steps, cancelling, and
that nothing reaches a payee except a milestone release."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient, Response
from prometheus_client import REGISTRY

from billing import service
from billing.escrow import repository as escrow_repository
from billing.escrow import service as _escrow
from billing.escrow.rules import MAX_AUTO_ACCEPT_ATTEMPTS
from billing.payments.gateway import StripeGateway
from controlplane.core.db import SystemReason, system_tx
from controlplane.core.errors import DatabaseUnavailable
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tests.api._helpers import assert_problem, audit_actions, bearer, create_api_key
from tests.api.billing.test_escrow import _agreement
from tests.api.billing.test_payments import (
    DECLINED_CARD,
    GOOD_CARD,
    _add_card,
    _invoiced_tenant,
    card,
    stripe_client,
)
from tests.api.partners.test_resellers import RESELLER_CHAIN, _qualify, _sign_up
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

__all__ = ["stripe_client"]  # the fixture, shared

Headers = dict[str, str]


def _gateway(settings: Settings) -> StripeGateway:
    return StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))


def _body(tenant_id: str, amounts: list[int], **fields: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "payee": {"type": "vendor", "id": str(uuid.uuid4())},
        "currency": "EUR",
        "amount_minor": sum(amounts),
        "milestones": [{"title": f"Part {n}", "amount_minor": amount} for n, amount in enumerate(amounts, 1)],
        "inspection_days": 5,
        **fields,
    }


async def _create(client: AsyncClient, headers: Headers, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/v1/escrows", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def _fund(client: AsyncClient, headers: Headers, agreement: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/v1/escrows/{agreement['id']}/fund", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "funded"
    return response.json()


async def _get(client: AsyncClient, headers: Headers, agreement: dict[str, Any]) -> dict[str, Any]:
    response = await client.get(f"/v1/escrows/{agreement['id']}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def _step(
    client: AsyncClient,
    headers: Headers,
    agreement: dict[str, Any],
    index: int,
    action: str,
    body: dict[str, Any] | None = None,
) -> Response:
    milestone = agreement["milestones"][index]["id"]
    return await client.post(
        f"/v1/escrows/{agreement['id']}/milestones/{milestone}/{action}", json=body, headers=headers
    )


async def _ok(
    client: AsyncClient,
    headers: Headers,
    agreement: dict[str, Any],
    index: int,
    action: str,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    response = await _step(client, headers, agreement, index, action, body)
    assert response.status_code == 200, response.text
    return response.json()


def _statuses(agreement: dict[str, Any]) -> list[str]:
    return [m["status"] for m in agreement["milestones"]]


def _money(agreement: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        agreement["funded_minor"],
        agreement["released_minor"],
        agreement["refunded_minor"],
        agreement["held_minor"],
    )


async def _inspect(stack_env: dict[str, str], query: str, *args: Any) -> list[asyncpg.Record]:
    connection = await connect_as_inspector(stack_env)
    try:
        return list(await connection.fetch(query, *args))
    finally:
        await connection.close()


async def _journals_of(stack_env: dict[str, str], escrow_id: str) -> list[str]:
    """The source types of every journal caused by this agreement or one of its milestones."""
    rows = await _inspect(
        stack_env,
        "select j.source_type from ledger_journals j where j.source_id = $1::uuid "
        "or j.source_id in (select id from escrow_milestones where escrow_id = $1::uuid) order by j.created_at",
        escrow_id,
    )
    return [row["source_type"] for row in rows]


def _escrow_intents(stripe_client: Any, escrow_id: str) -> list[Any]:
    intents = stripe_client.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return [intent for intent in intents if intent.metadata.to_dict().get("escrow_id") == escrow_id]


# --- auto-accept after the inspection window ----------------------------------------------------------


async def test_a_submitted_milestone_is_accepted_once_the_inspection_window_has_passed(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    gateway = _gateway(settings)
    staff, admin, tenant, agreement = await _agreement(client, factory, stripe_client)
    await _fund(client, admin.headers, agreement)
    days = agreement["inspection_days"]
    assert days == 5
    # Design is submitted and left unanswered; Build is submitted and rejected (disputed); Launch stays pending.
    submitted = await _ok(client, staff.headers, agreement, 0, "submit")
    now = datetime.fromisoformat(submitted["milestones"][0]["submitted_at"])
    assert abs(now - datetime.now(UTC)) < timedelta(minutes=1)
    await _ok(client, staff.headers, agreement, 1, "submit")
    await _ok(client, admin.headers, agreement, 1, "reject", {"reason": "late"})

    # Before the window has passed, nothing happens.
    assert await service.accept_overdue(gateway, now + timedelta(days=days) - timedelta(hours=1)) == 0
    waiting = await _get(client, admin.headers, agreement)
    assert _statuses(waiting) == ["submitted", "disputed", "pending"]
    assert _money(waiting) == (10_000, 0, 0, 10_000)

    # Once it has, the payer is taken to accept: Design is released, the dispute and the pending milestone wait.
    assert await service.accept_overdue(gateway, now + timedelta(days=days, minutes=1)) == 1
    accepted = await _get(client, admin.headers, agreement)
    assert _statuses(accepted) == ["released", "disputed", "pending"]
    assert accepted["milestones"][0]["released_minor"] == 3_000
    assert _money(accepted) == (10_000, 3_000, 0, 7_000)
    assert accepted["status"] == "funded"
    # Running the beat again changes nothing; nor does the payer's late answer.
    assert await service.accept_overdue(gateway, now + timedelta(days=days + 30)) == 0
    late = await _step(client, admin.headers, agreement, 0, "accept")
    assert assert_problem(late, 409, "invalid_milestone_transition")["current_status"] == "released"
    assert _money(await _get(client, admin.headers, agreement)) == (10_000, 3_000, 0, 7_000)

    assert await _journals_of(stack_env, agreement["id"]) == ["escrow_funding", "escrow_release"]
    assert "escrow.milestone.accept" in await audit_actions(client, staff, tenant["id"])
    report = await service.verify_ledger()
    assert report.ok, report


async def test_the_beat_carries_on_when_a_payer_answered_meanwhile(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The beat lists overdue milestones, then accepts them one by one. A payer who answers one in between
    (here: accepting the last open milestone, which closes the agreement) must not stop the others."""
    gateway = _gateway(settings)
    staff, admin, tenant, _ = await _agreement(client, factory, stripe_client)
    answered = await _create(client, admin.headers, _body(tenant["id"], [800]))
    open_one = await _create(client, admin.headers, _body(tenant["id"], [300, 900]))
    waiting = await _create(client, admin.headers, _body(tenant["id"], [1_200]))
    for agreement in (answered, open_one, waiting):
        await _fund(client, admin.headers, agreement)
        await _ok(client, staff.headers, agreement, 0, "submit")
    later = datetime.now(UTC) + timedelta(days=6)

    async with system_tx(SystemReason.PLATFORM_JOB):
        listed = await escrow_repository.overdue_submissions(later, 1000)

    async def listed_before_the_answers(now: datetime, limit: int) -> list[dict[str, Any]]:
        return listed

    assert [str(item["escrow_id"]) for item in listed] == [answered["id"], open_one["id"], waiting["id"]]
    # Between the listing and the beat's steps, the payer accepts two of them.
    await _ok(client, admin.headers, answered, 0, "accept")  # its only milestone: the agreement closes
    await _ok(client, admin.headers, open_one, 0, "accept")  # another milestone still pending: stays funded
    assert (await _get(client, admin.headers, answered))["status"] == "closed"
    monkeypatch.setattr(escrow_repository, "overdue_submissions", listed_before_the_answers)

    assert await service.accept_overdue(gateway, later) == 1
    released = await _get(client, admin.headers, waiting)
    assert (released["status"], _statuses(released), released["released_minor"]) == ("closed", ["released"], 1_200)
    assert (await service.verify_ledger()).ok


async def test_a_milestone_that_cannot_be_released_is_recorded_and_never_stops_the_others(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    gateway = _gateway(settings)
    staff, admin, tenant, _ = await _agreement(client, factory, stripe_client)
    broken = await _create(client, admin.headers, _body(tenant["id"], [500]))
    healthy = await _create(client, admin.headers, _body(tenant["id"], [700]))
    for agreement in (broken, healthy):
        await _fund(client, admin.headers, agreement)
        await _ok(client, staff.headers, agreement, 0, "submit")
    # A stored row the ledger refuses (a currency that is no currency): its release cannot be booked.
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute("update escrows set currency = 'e1!' where id = $1", uuid.UUID(broken["id"]))
    finally:
        await inspector.close()
    later = datetime.now(UTC) + timedelta(days=6)

    before = REGISTRY.get_sample_value(
        "controlplane_batch_item_failures_total", {"batch_job": "accept_overdue_milestones", "reason": "unexpected"}
    )
    assert await service.accept_overdue(gateway, later) == 1
    released = await _get(client, admin.headers, healthy)
    assert (released["status"], _statuses(released)) == ("closed", ["released"])
    after = REGISTRY.get_sample_value(
        "controlplane_batch_item_failures_total", {"batch_job": "accept_overdue_milestones", "reason": "unexpected"}
    )
    assert (after or 0) == (before or 0) + 1

    async def recorded() -> Any:
        connection = await connect_as_inspector(stack_env)
        try:
            return await connection.fetchrow(
                "select status, auto_accept_attempts, auto_accept_error from escrow_milestones where escrow_id = $1",
                uuid.UUID(broken["id"]),
            )
        finally:
            await connection.close()

    row = await recorded()
    assert (row["status"], row["auto_accept_attempts"]) == ("submitted", 1)
    assert row["auto_accept_error"] == "unexpected: an internal error; the operators are alerted"  # no SQL shown
    [shown] = (await _get(client, admin.headers, broken))["milestones"]
    assert (shown["auto_accept_attempts"], shown["auto_accept_error"]) == (1, row["auto_accept_error"])
    # Retried by later runs, behind healthy work, and only a bounded number of times.
    for _ in range(8):
        assert await service.accept_overdue(gateway, later + timedelta(days=2)) == 0
    row = await recorded()
    assert (row["status"], row["auto_accept_attempts"]) == ("submitted", MAX_AUTO_ACCEPT_ATTEMPTS)


async def test_a_database_outage_is_not_counted_against_an_overdue_milestone(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    stack_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An outage is not the milestone's fault: the run stops (the task fails, the beat runs it again), and
    nothing is recorded on the milestone nor counted towards its attempts."""
    gateway = _gateway(settings)
    staff, admin, tenant, _ = await _agreement(client, factory, stripe_client)
    waiting = await _create(client, admin.headers, _body(tenant["id"], [600]))
    await _fund(client, admin.headers, waiting)
    await _ok(client, staff.headers, waiting, 0, "submit")
    later = datetime.now(UTC) + timedelta(days=6)
    real = _escrow.milestone_step

    async def outage(*args: Any, **kwargs: Any) -> Any:
        raise DatabaseUnavailable("The database is unavailable; retry shortly")

    monkeypatch.setattr(_escrow, "milestone_step", outage)
    for _ in range(MAX_AUTO_ACCEPT_ATTEMPTS + 1):
        with pytest.raises(DatabaseUnavailable):
            await service.accept_overdue(gateway, later)
    connection = await connect_as_inspector(stack_env)
    try:
        row = await connection.fetchrow(
            "select status, auto_accept_attempts, auto_accept_error from escrow_milestones where escrow_id = $1",
            uuid.UUID(waiting["id"]),
        )
    finally:
        await connection.close()
    assert (row["status"], row["auto_accept_attempts"], row["auto_accept_error"]) == ("submitted", 0, None)
    # Once the database is back, the next run accepts it.
    monkeypatch.setattr(_escrow, "milestone_step", real)
    assert await service.accept_overdue(gateway, later) == 1
    assert _statuses(await _get(client, admin.headers, waiting)) == ["released"]


# --- a declined funding card --------------------------------------------------------------------------


async def test_a_declined_card_leaves_the_agreement_a_draft_and_a_good_card_funds_it(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    declined = await _add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))
    assert declined["default"] is True
    agreement = await _create(client, admin.headers, _body(tenant["id"], [4_000, 6_000]))
    url = f"/v1/escrows/{agreement['id']}"

    body = assert_problem(await client.post(f"{url}/fund", headers=admin.headers), 402, "funding_declined")
    assert body["decline_code"] == "card_declined", body
    assert body["required_actions"] == ["add_payment_method"]
    draft = await _get(client, admin.headers, agreement)
    assert draft["status"] == "draft"
    assert _money(draft) == (0, 0, 0, 0)
    assert await _journals_of(stack_env, agreement["id"]) == []
    assert (await service.verify_ledger()).journals == 0
    # Still a draft: a milestone cannot move.
    assert_problem(await _step(client, staff.headers, agreement, 0, "submit"), 409, "escrow_not_funded")
    # Trying the same card again is declined again, and still nothing is held.
    assert_problem(await client.post(f"{url}/fund", headers=admin.headers), 402, "funding_declined")
    assert (await _get(client, admin.headers, agreement))["status"] == "draft"

    good = await client.post(
        f"/v1/tenants/{tenant['id']}/payment-methods",
        json={"stripe_payment_method_id": card(stripe_client, GOOD_CARD), "default": True},
        headers=admin.headers,
    )
    assert good.status_code == 201, good.text
    funded = await _fund(client, admin.headers, agreement)
    assert _money(funded) == (10_000, 0, 0, 10_000)
    again = await client.post(f"{url}/fund", headers=admin.headers)
    assert again.status_code == 200, again.text
    assert _money(again.json()) == (10_000, 0, 0, 10_000)
    assert await _journals_of(stack_env, agreement["id"]) == ["escrow_funding"]
    # Two declined attempts and one charge that went through; funding again charged nothing.
    intents = _escrow_intents(stripe_client, agreement["id"])
    assert sorted(intent.status for intent in intents).count("succeeded") == 1, [i.status for i in intents]
    actions = await audit_actions(client, staff, tenant["id"])
    assert actions.count("escrow.funding_declined") == 2
    assert actions.count("escrow.funded") == 1
    report = await service.verify_ledger()
    assert report.ok, report


async def test_funding_without_a_card_is_refused(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    agreement = await _create(client, admin.headers, _body(tenant["id"], [500]))
    refused = await client.post(f"/v1/escrows/{agreement['id']}/fund", headers=admin.headers)
    body = assert_problem(refused, 409, "no_payment_method")
    assert body["required_actions"] == ["add_payment_method"]
    assert (await _get(client, admin.headers, agreement))["status"] == "draft"


# --- bad input writes nothing ---------------------------------------------------------------------------


async def test_bad_agreements_are_refused_and_nothing_is_written(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    tid = tenant["id"]
    good = _body(tid, [3_000, 7_000])

    refused_as_malformed = {
        "zero amount": {**good, "amount_minor": 0, "milestones": [{"title": "A", "amount_minor": 0}]},
        "negative amount": {**good, "amount_minor": -10_000},
        "zero milestone": {
            **good,
            "milestones": [{"title": "A", "amount_minor": 10_000}, {"title": "B", "amount_minor": 0}],
        },
        "negative milestone": {
            **good,
            "milestones": [{"title": "A", "amount_minor": 10_500}, {"title": "B", "amount_minor": -500}],
        },
        "no milestones": {**good, "milestones": []},
        "milestones missing": {key: value for key, value in good.items() if key != "milestones"},
        "too many milestones": {
            **good,
            "amount_minor": 51,
            "milestones": [{"title": f"M{n}", "amount_minor": 1} for n in range(51)],
        },
        "unknown payee type": {**good, "payee": {"type": "employee", "id": str(uuid.uuid4())}},
        "payee id not a uuid": {**good, "payee": {"type": "vendor", "id": "bob"}},
        "unknown milestone field": {**good, "milestones": [{"title": "A", "amount_minor": 10_000, "paid": True}]},
        "inspection days 0": {**good, "inspection_days": 0},
    }
    for name, body in refused_as_malformed.items():
        response = await client.post("/v1/escrows", json=body, headers=admin.headers)
        assert response.status_code in (400, 422), (name, response.text)
        assert_problem(response, response.status_code)

    for body, code in [
        ({**good, "amount_minor": 10_001}, "invalid_escrow"),  # the milestones sum to less
        ({**good, "amount_minor": 9_999}, "invalid_escrow"),  # or to more
        ({**good, "currency": "USD"}, "currency_mismatch"),  # the tenant is billed in EUR
    ]:
        assert_problem(await client.post("/v1/escrows", json=body, headers=admin.headers), 422, code)

    # A billing viewer may read but not create; an admin of no tenant here finds no such tenant.
    viewer = await factory.member(tid, "billing_viewer")
    assert_problem(await client.post("/v1/escrows", json=good, headers=viewer.headers), 403)
    stranger_tenant = await factory.tenant(staff)
    stranger = await factory.member(stranger_tenant["id"], "tenant_admin")
    assert_problem(await client.post("/v1/escrows", json=good, headers=stranger.headers), 404)

    counts = await _inspect(
        stack_env,
        "select (select count(*) from escrows) as escrows, (select count(*) from escrow_milestones) as milestones,"
        " (select count(*) from ledger_journals) as journals,"
        " (select count(*) from audit_events where action like 'escrow.%') as audits",
    )
    assert dict(counts[0]) == {"escrows": 0, "milestones": 0, "journals": 0, "audits": 0}
    # The same body, well formed, is accepted: the refusals above were about what was wrong with each.
    created = await _create(client, admin.headers, good)
    assert (created["status"], created["amount_minor"], len(created["milestones"])) == ("draft", 10_000, 2)


async def test_an_escrow_payee_must_be_an_existing_qualified_partner_of_its_kind(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"], "tenant_admin")
    founder, other_founder, author = await factory.user(), await factory.user(), await factory.user()
    unqualified = (await _sign_up(client, founder))["id"]
    qualified = (await _sign_up(client, other_founder))["id"]
    await _qualify(client, other_founder, staff, qualified, RESELLER_CHAIN)
    publisher = await client.post(
        "/v1/partners", json={"kind": "publisher", "name": "Plugin House", "email": "p@h.test"}, headers=author.headers
    )
    assert publisher.status_code == 201, publisher.text
    good = _body(tenant["id"], [3_000, 7_000])

    for payee, code in [
        ({"type": "reseller", "id": str(uuid.uuid4())}, "escrow_payee_not_found"),  # no such partner
        ({"type": "publisher", "id": str(uuid.uuid4())}, "escrow_payee_not_found"),
        ({"type": "publisher", "id": qualified}, "escrow_payee_not_found"),  # a reseller is not a publisher
        ({"type": "reseller", "id": publisher.json()["id"]}, "escrow_payee_not_found"),
        ({"type": "reseller", "id": unqualified}, "escrow_payee_not_qualified"),
        ({"type": "publisher", "id": publisher.json()["id"]}, "escrow_payee_not_qualified"),
    ]:
        for _ in range(2):  # the same refusal when repeated
            refused = assert_problem(
                await client.post("/v1/escrows", json={**good, "payee": payee}, headers=admin.headers), 422, code
            )
            assert "required_actions" not in refused  # the partner's own progress is not the payer's to read
    counts = await _inspect(stack_env, "select count(*) as escrows from escrows")
    assert counts[0]["escrows"] == 0

    # A qualified reseller is a payee; vendors have no accounts yet and are named freely.
    created = await _create(client, admin.headers, {**good, "payee": {"type": "reseller", "id": qualified}})
    assert created["payee"] == {"type": "reseller", "id": qualified}
    await _create(client, admin.headers, good)


# --- another tenant's agreement ---------------------------------------------------------------------------


async def test_another_tenants_agreement_is_not_found(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    staff, admin, _, agreement = await _agreement(client, factory, stripe_client)
    await _fund(client, admin.headers, agreement)
    await _ok(client, staff.headers, agreement, 0, "submit")
    await _ok(client, staff.headers, agreement, 1, "submit")
    await _ok(client, admin.headers, agreement, 1, "reject", {"reason": "wrong colour"})
    before = await _get(client, admin.headers, agreement)

    other = await factory.tenant(staff)
    intruder: Actor = await factory.member(other["id"], "tenant_admin")
    await _add_card(client, intruder.headers, other["id"], card(stripe_client, GOOD_CARD))
    url = f"/v1/escrows/{agreement['id']}"
    attempts = [
        await client.get(url, headers=intruder.headers),
        await client.post(f"{url}/fund", headers=intruder.headers),
        await client.post(f"{url}/cancel", headers=intruder.headers),
        await _step(client, intruder.headers, agreement, 0, "accept"),
        await _step(client, intruder.headers, agreement, 0, "reject", {"reason": "mine now"}),
        await _step(client, intruder.headers, agreement, 2, "submit"),
        await _step(client, intruder.headers, agreement, 1, "resolve", {"outcome": "refund"}),
    ]
    # The other tenant's API key, which looks only inside its own tenant, finds nothing either.
    _, secret = await create_api_key(client, intruder.headers, other["id"])
    attempts += [
        await client.get(url, headers=bearer(secret)),
        await client.post(f"{url}/cancel", headers=bearer(secret)),
        await _step(client, bearer(secret), agreement, 0, "accept"),
    ]
    for response in attempts:
        assert_problem(response, 404, "escrow_not_found")
    # An id that does not exist looks the same.
    missing = await client.get(f"/v1/escrows/{uuid.uuid4()}", headers=intruder.headers)
    assert_problem(missing, 404, "escrow_not_found")
    assert await _get(client, admin.headers, agreement) == before
    # A milestone id from another agreement is not found in this one either.
    own = await _create(client, intruder.headers, _body(other["id"], [1_000]))
    await _fund(client, intruder.headers, own)
    crossed = await client.post(
        f"/v1/escrows/{own['id']}/milestones/{agreement['milestones'][0]['id']}/accept", headers=intruder.headers
    )
    assert_problem(crossed, 404, "escrow_not_found")
    assert await _get(client, admin.headers, agreement) == before

    # Inside the tenant, a billing viewer reads the agreement but moves nothing.
    viewer = await factory.member(agreement["tenant_id"], "billing_viewer")
    assert await _get(client, viewer.headers, agreement) == before
    for response in [
        await client.post(f"{url}/cancel", headers=viewer.headers),
        await _step(client, viewer.headers, agreement, 0, "accept"),
        await _step(client, viewer.headers, agreement, 0, "reject", {"reason": "viewer"}),
    ]:
        assert_problem(response, 403)
    assert await _get(client, admin.headers, agreement) == before


# --- refused steps --------------------------------------------------------------------------------------


async def test_refused_steps_move_nothing(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff, admin, _, agreement = await _agreement(client, factory, stripe_client)
    await _fund(client, admin.headers, agreement)
    design, build, launch = 0, 1, 2

    # Releasing twice.
    await _ok(client, staff.headers, agreement, design, "submit")
    await _ok(client, admin.headers, agreement, design, "accept")
    twice = assert_problem(await _step(client, admin.headers, agreement, design, "accept"), 409)
    assert (twice["code"], twice["current_status"]) == ("invalid_milestone_transition", "released")

    # Resolving what is not disputed: pending, submitted, released.
    refund = {"outcome": "refund"}
    for index, status in [(launch, "pending"), (design, "released")]:
        body = assert_problem(await _step(client, staff.headers, agreement, index, "resolve", refund), 409)
        assert (body["code"], body["current_status"]) == ("invalid_milestone_transition", status)
    await _ok(client, staff.headers, agreement, build, "submit")
    body = assert_problem(await _step(client, staff.headers, agreement, build, "resolve", refund), 409)
    assert body["current_status"] == "submitted"
    # Submitting twice, rejecting what was not submitted.
    assert_problem(await _step(client, staff.headers, agreement, build, "submit"), 409, "invalid_milestone_transition")
    reject = {"reason": "no"}
    assert_problem(await _step(client, admin.headers, agreement, launch, "reject", reject), 409)

    # A split must leave something on each side: 1 to 4,999 of Build's 5,000.
    await _ok(client, admin.headers, agreement, build, "reject", {"reason": "half done"})
    for release in (5_000, 5_001, 10**9):
        split = {"outcome": "split", "release_minor": release}
        assert_problem(await _step(client, staff.headers, agreement, build, "resolve", split), 422, "invalid_escrow")
    no_amount = await _step(client, staff.headers, agreement, build, "resolve", {"outcome": "split"})
    assert_problem(no_amount, 422, "invalid_escrow")
    for malformed in ({"outcome": "split", "release_minor": 0}, {"outcome": "halve"}, {}):
        response = await _step(client, staff.headers, agreement, build, "resolve", malformed)
        assert response.status_code in (400, 422), response.text

    unchanged = await _get(client, admin.headers, agreement)
    assert _statuses(unchanged) == ["released", "disputed", "pending"]
    assert _money(unchanged) == (10_000, 3_000, 0, 7_000)
    assert await _journals_of(stack_env, agreement["id"]) == ["escrow_funding", "escrow_release"]

    # The smallest and largest splits are allowed.
    edge = await _ok(client, staff.headers, agreement, build, "resolve", {"outcome": "split", "release_minor": 4_999})
    assert (edge["milestones"][build]["released_minor"], edge["milestones"][build]["refunded_minor"]) == (4_999, 1)
    assert _money(edge) == (10_000, 7_999, 1, 2_000)
    report = await service.verify_ledger()
    assert report.ok, report


# --- cancelling -----------------------------------------------------------------------------------------


async def test_cancelling_a_draft_refunds_nothing_and_a_canceled_agreement_stays_put(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff, admin, tenant, agreement = await _agreement(client, factory, stripe_client)
    url = f"/v1/escrows/{agreement['id']}"
    canceled = await client.post(f"{url}/cancel", headers=admin.headers)
    assert canceled.status_code == 200, canceled.text
    body = canceled.json()
    assert body["status"] == "canceled"
    assert _money(body) == (0, 0, 0, 0)
    assert _statuses(body) == ["pending", "pending", "pending"]  # nothing was held, so nothing is refunded
    assert await _journals_of(stack_env, agreement["id"]) == []

    again = await client.post(f"{url}/cancel", headers=admin.headers)
    assert again.status_code == 200, again.text
    assert again.json() == body

    for index, action, headers, json in [
        (0, "submit", staff.headers, None),
        (0, "accept", admin.headers, None),
        (0, "reject", admin.headers, {"reason": "gone"}),
        (0, "resolve", staff.headers, {"outcome": "release"}),
    ]:
        refused = assert_problem(await _step(client, headers, agreement, index, action, json), 409)
        assert (refused["code"], refused["current_status"]) == ("escrow_not_funded", "canceled"), action

    # Funding a canceled agreement charges nothing and it stays canceled.
    funded = await client.post(f"{url}/fund", headers=admin.headers)
    assert funded.status_code == 409, funded.text
    after = await _get(client, admin.headers, agreement)
    assert (after["status"], _money(after)) == ("canceled", (0, 0, 0, 0))
    assert _escrow_intents(stripe_client, agreement["id"]) == []
    assert await _journals_of(stack_env, agreement["id"]) == []
    assert (await audit_actions(client, staff, tenant["id"])).count("escrow.canceled") == 1
    assert (await service.verify_ledger()).ok


async def test_cancelling_a_funded_agreement_refunds_what_is_not_released(
    client: AsyncClient, factory: Factory, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff, admin, _, agreement = await _agreement(client, factory, stripe_client)
    await _fund(client, admin.headers, agreement)
    # Design released; Build disputed and refunded by staff; Launch never delivered.
    await _ok(client, staff.headers, agreement, 0, "submit")
    await _ok(client, admin.headers, agreement, 0, "accept")
    await _ok(client, staff.headers, agreement, 1, "submit")
    await _ok(client, admin.headers, agreement, 1, "reject", {"reason": "broken"})
    await _ok(client, staff.headers, agreement, 1, "resolve", {"outcome": "refund"})

    url = f"/v1/escrows/{agreement['id']}"
    canceled = (await client.post(f"{url}/cancel", headers=admin.headers)).json()
    assert canceled["status"] == "canceled"
    assert _statuses(canceled) == ["released", "refunded", "refunded"]
    assert [(m["released_minor"], m["refunded_minor"]) for m in canceled["milestones"]] == [
        (3_000, 0),
        (0, 5_000),
        (0, 2_000),
    ]
    assert _money(canceled) == (10_000, 3_000, 7_000, 0)
    again = await client.post(f"{url}/cancel", headers=admin.headers)
    assert again.status_code == 200, again.text
    assert again.json() == canceled
    assert sorted(await _journals_of(stack_env, agreement["id"])) == [
        "escrow_funding",
        "escrow_refund",
        "escrow_refund",
        "escrow_release",
    ]
    # Stripe refunded exactly the two unreleased milestones, once each.
    [intent] = [i for i in _escrow_intents(stripe_client, agreement["id"]) if i.status == "succeeded"]
    refunds = stripe_client.v1.refunds.list(params={"limit": 100, "payment_intent": intent.id})
    assert sorted(refund.amount for refund in refunds.data) == [2_000, 5_000]
    report = await service.verify_ledger()
    assert report.ok, report


async def test_a_payer_cannot_cancel_its_way_out_of_a_submitted_or_disputed_milestone(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any, stack_env: dict[str, str]
) -> None:
    staff, admin, tenant, agreement = await _agreement(client, factory, stripe_client)
    await _fund(client, admin.headers, agreement)
    url = f"/v1/escrows/{agreement['id']}"
    # Design delivered and submitted; Build delivered, rejected: disputed; Launch pending.
    await _ok(client, staff.headers, agreement, 0, "submit")
    await _ok(client, staff.headers, agreement, 1, "submit")
    await _ok(client, admin.headers, agreement, 1, "reject", {"reason": "not what we asked"})

    async def refused(positions: list[int]) -> None:
        problem = assert_problem(await client.post(f"{url}/cancel", headers=admin.headers), 409)
        assert (problem["code"], problem["milestones"]) == ("escrow_milestone_under_review", positions)

    await refused([1, 2])
    await refused([1, 2])  # a retry is refused the same way and still moves nothing
    unchanged = await _get(client, admin.headers, agreement)
    assert (unchanged["status"], _statuses(unchanged)) == ("funded", ["submitted", "disputed", "pending"])
    assert _money(unchanged) == (10_000, 0, 0, 10_000)
    assert await _journals_of(stack_env, agreement["id"]) == ["escrow_funding"]
    [intent] = [i for i in _escrow_intents(stripe_client, agreement["id"]) if i.status == "succeeded"]
    assert stripe_client.v1.refunds.list(params={"limit": 100, "payment_intent": intent.id}).data == []
    assert "escrow.canceled" not in await audit_actions(client, staff, tenant["id"])

    # The inspection window decides Design (released to the payee), staff decide Build; then the payer may
    # cancel what was never delivered.
    assert await service.accept_overdue(_gateway(settings), datetime.now(UTC) + timedelta(days=6)) == 1
    await refused([2])
    await _ok(client, staff.headers, agreement, 1, "resolve", {"outcome": "split", "release_minor": 1_000})
    canceled = await client.post(f"{url}/cancel", headers=admin.headers)
    assert canceled.status_code == 200, canceled.text
    assert _statuses(canceled.json()) == ["released", "split", "refunded"]
    assert _money(canceled.json()) == (10_000, 4_000, 6_000, 0)
    refunds = stripe_client.v1.refunds.list(params={"limit": 100, "payment_intent": intent.id})
    assert sorted(refund.amount for refund in refunds.data) == [2_000, 4_000]
    report = await service.verify_ledger()
    assert report.ok, report


# --- no other path from a payer to a payee --------------------------------------------------------------


async def test_nothing_reaches_a_payee_except_a_milestone_release(
    client: AsyncClient,
    factory: Factory,
    settings: Settings,
    stripe_client: Any,
    stack_env: dict[str, str],
    report: Any,
) -> None:
    gateway = _gateway(settings)
    # Tenant one pays an invoice (journals of other kinds), then runs two agreements with the same vendor.
    staff, tenant, invoice = await _invoiced_tenant(client, factory)
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert paid.status_code == 200, paid.text
    vendor = {"type": "vendor", "id": str(uuid.uuid4())}
    first = await _create(client, admin.headers, _body(tenant["id"], [1_000, 2_000, 3_000, 4_000], payee=vendor))
    second = await _create(client, admin.headers, _body(tenant["id"], [700, 300], payee=vendor))
    # Tenant two: another vendor, and an agreement canceled before it was funded.
    _, admin_two, tenant_two, third = await _agreement(client, factory, stripe_client)
    other_vendor = third["payee"]
    for agreement, headers in [(first, admin.headers), (second, admin.headers), (third, admin_two.headers)]:
        await _fund(client, headers, agreement)
    never = await _create(client, admin_two.headers, _body(tenant_two["id"], [999]))
    assert (await client.post(f"/v1/escrows/{never['id']}/cancel", headers=admin_two.headers)).status_code == 200

    # First: accepted, split, refunded by staff, auto-accepted.
    await _ok(client, staff.headers, first, 0, "submit")
    await _ok(client, admin.headers, first, 0, "accept")
    for index in (1, 2):
        await _ok(client, staff.headers, first, index, "submit")
        await _ok(client, admin.headers, first, index, "reject", {"reason": "not as agreed"})
    await _ok(client, staff.headers, first, 1, "resolve", {"outcome": "split", "release_minor": 500})
    await _ok(client, staff.headers, first, 2, "resolve", {"outcome": "refund"})
    await _ok(client, staff.headers, first, 3, "submit")
    # Second: a dispute released by staff; the other milestone is canceled before it is delivered.
    await _ok(client, staff.headers, second, 0, "submit")
    await _ok(client, admin.headers, second, 0, "reject", {"reason": "late"})
    await _ok(client, staff.headers, second, 0, "resolve", {"outcome": "release"})
    assert (await client.post(f"/v1/escrows/{second['id']}/cancel", headers=admin.headers)).status_code == 200
    # Third: Design accepted, Build split, Launch still pending.
    await _ok(client, staff.headers, third, 0, "submit")
    await _ok(client, admin_two.headers, third, 0, "accept")
    await _ok(client, staff.headers, third, 1, "submit")
    await _ok(client, admin_two.headers, third, 1, "reject", {"reason": "half"})
    await _ok(client, staff.headers, third, 1, "resolve", {"outcome": "split", "release_minor": 2_500})
    assert await service.accept_overdue(gateway, datetime.now(UTC) + timedelta(days=6)) == 1

    first_now = await _get(client, admin.headers, first)
    assert first_now["status"] == "closed"
    assert _statuses(first_now) == ["released", "split", "refunded", "released"]
    assert _money(first_now) == (10_000, 5_500, 4_500, 0)
    second_now = await _get(client, admin.headers, second)
    assert (second_now["status"], _money(second_now)) == ("canceled", (1_000, 700, 300, 0))
    third_now = await _get(client, admin_two.headers, third)
    assert (third_now["status"], _money(third_now)) == ("funded", (10_000, 5_500, 2_500, 2_000))

    rows = await _inspect(
        stack_env,
        "select p.account, p.amount_minor, p.tenant_id as posting_tenant, j.source_type, j.source_id,"
        " m.status, m.released_minor, e.id as escrow_id, e.tenant_id, e.payee_type, e.payee_id"
        " from ledger_postings p join ledger_journals j on j.id = p.journal_id"
        " left join escrow_milestones m on m.id = j.source_id"
        " left join escrows e on e.id = m.escrow_id"
        " where p.account like 'payee_payable:%' order by p.id",
    )
    for row in rows:
        assert row["source_type"] == "escrow_release", dict(row)
        assert row["status"] in ("released", "split"), dict(row)
        assert row["account"] == f"payee_payable:{row['payee_type']}:{row['payee_id']}", dict(row)
        assert row["posting_tenant"] == row["tenant_id"], dict(row)
        assert row["amount_minor"] == -row["released_minor"], dict(row)
    # Each released milestone was paid out exactly once.
    released = await _inspect(stack_env, "select id from escrow_milestones where released_minor > 0 order by id")
    assert sorted(row["source_id"] for row in rows) == [row["id"] for row in released]
    assert len(rows) == 6  # first: accepted, split, auto-accepted; second: released by staff; third: 2
    payable: dict[str, int] = {}
    for row in rows:
        payable[row["account"]] = payable.get(row["account"], 0) + row["amount_minor"]
    assert payable == {
        f"payee_payable:vendor:{vendor['id']}": -(5_500 + 700),
        f"payee_payable:{other_vendor['type']}:{other_vendor['id']}": -5_500,
    }
    # Each agreement's held account is what the API says is held.
    for agreement in (first_now, second_now, third_now):
        [held] = await _inspect(
            stack_env,
            "select coalesce(sum(amount_minor), 0) as balance from ledger_postings where account = $1",
            f"escrow_held:{agreement['id']}",
        )
        assert held["balance"] == -agreement["held_minor"], agreement["id"]

    verified = await service.verify_ledger()
    assert verified.ok, verified
    assert verified.escrow_differences == [] and verified.payee_postings_without_release == []
    report(f"escrow: {len(rows)} payee postings, all from milestone releases; verify_ledger ok")


async def test_an_escrow_refund_reaches_stripe_in_its_own_units(
    client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    """ISK has no decimals in ISO 4217 but two at Stripe: a refund of 7,000 krónur is 700,000 there, as the
    funding charge was."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff, currency="ISK")
    admin = await factory.member(tenant["id"], "tenant_admin")
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    agreement = await _create(client, admin.headers, _body(tenant["id"], [3_000, 4_000], currency="ISK"))
    await _fund(client, admin.headers, agreement)
    canceled = await client.post(f"/v1/escrows/{agreement['id']}/cancel", headers=admin.headers)
    assert canceled.status_code == 200, canceled.text
    [intent] = [i for i in _escrow_intents(stripe_client, agreement["id"]) if i.status == "succeeded"]
    assert (intent.currency, intent.amount) == ("isk", 7_000 * 100)
    refunds = stripe_client.v1.refunds.list(params={"limit": 100, "payment_intent": intent.id}).data
    assert sorted(refund.amount for refund in refunds) == [3_000 * 100, 4_000 * 100]
    assert (await service.verify_ledger()).ok


async def test_an_escrow_stripe_could_charge_only_in_steps_is_refused_unless_every_amount_is_one(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """KWD: Stripe charges and sends fils only in tens. The total and each milestone (each released or
    refunded on its own) must be a multiple of 10, or the escrow could never be funded, refunded or paid out."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff, currency="KWD")
    admin = await factory.member(tenant["id"], "tenant_admin")
    for amounts in ([5_000, 5_005], [3_005, 2_995]):  # the total off the step; each milestone off it
        refused = await client.post(
            "/v1/escrows", json=_body(tenant["id"], amounts, currency="KWD"), headers=admin.headers
        )
        assert assert_problem(refused, 422, "amount_not_chargeable")["step_minor"] == 10
    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch("select 1 from escrows where tenant_id = $1", uuid.UUID(tenant["id"]))
    finally:
        await inspector.close()
    assert rows == []
    created = await _create(client, admin.headers, _body(tenant["id"], [3_010, 2_990], currency="KWD"))
    assert created["amount_minor"] == 6_000
