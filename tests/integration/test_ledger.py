"""The double-entry ledger against the documents it records, through the API and the services.

A scenario books invoices, credit notes (by hand and by an immediate cancel), voids of a finalized and of a
draft invoice, and a billing run; then the ledger is read behind the application's back (as the owner in
the platform scope) and held to the invoices: one journal per issued invoice, each tenant's receivable
equal to what its invoices still say it owes, revenue and tax payable mirroring it. Then the books are
tampered with, and `verify_ledger` must notice; and PostgreSQL itself refuses an unbalanced journal and any
change to a posting from the app role.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from billing import service
from billing.ledger.rules import REVENUE, TAX_PAYABLE, receivable
from tests.api.billing._support import at_midnight, credit_notes, first_of_month, invoices, plan, subscribe, today
from tests.factories import Actor, Factory

START = datetime(2026, 1, 15, tzinfo=UTC)
FIRST_RUN = datetime(2026, 2, 1, 2, tzinfo=UTC)  # past every January period's end (1 February)
SECOND_RUN = datetime(2026, 2, 3, tzinfo=UTC)  # past the 24 grace hours of the drafts the first run wrote
ISSUED = ("finalized", "paid", "uncollectible")


@dataclass
class Books:
    staff: Actor
    tenants: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> tenant

    def tenant_id(self, label: str) -> uuid.UUID:
        return uuid.UUID(self.tenants[label]["id"])


async def _credit(client: AsyncClient, staff: Actor, invoice_id: str, amount: int) -> dict[str, Any]:
    response = await client.post(
        f"/v1/invoices/{invoice_id}/credit-notes",
        json={"amount_minor": amount, "reason": "goodwill"},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text
    note: dict[str, Any] = response.json()
    return note


async def _void(client: AsyncClient, staff: Actor, invoice_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/invoices/{invoice_id}/void", headers=staff.headers)
    assert response.status_code == 200, response.text
    voided: dict[str, Any] = response.json()
    assert voided["status"] == "void"
    return voided


async def _book(client: AsyncClient, factory: Factory, owner: asyncpg.Connection, *, run_cycle: bool = True) -> Books:
    """Five tenants at 20 % tax, each with a subscription and some history, then (optionally) two billing runs.

    - credited: EUR, first invoice credited 333 (an odd amount, so the revenue/tax split rounds);
    - voided: EUR, first invoice credited 100 and then voided (the void reverses the invoice and the note);
    - drafts: EUR, 24 grace hours, so invoices start as drafts; the first is voided while still a draft;
    - canceled: EUR, subscribed this month and canceled at once (a credit note for the unused time);
    - yen: JPY (no minor unit), first invoice credited 7.
    """
    staff = await factory.staff()
    charges = [{"type": "flat", "amount_minor": 1000}, {"type": "per_seat", "unit_amount_minor": "250.5"}]
    await plan(client, staff.headers, "pro", charges)
    await plan(client, staff.headers, "pro-jpy", charges, currency="JPY")
    books = Books(staff)
    setup = {
        "credited": ({}, "pro", 2, START),
        "voided": ({}, "pro", 3, START),
        "drafts": ({"invoice_grace_hours": 24}, "pro", 1, START),
        "canceled": ({}, "pro", 2, at_midnight(first_of_month(today()))),
        "yen": ({"currency": "JPY"}, "pro-jpy", 2, START),
    }
    subscriptions = {}
    for label, (fields, plan_code, seats, start) in setup.items():
        tenant = await factory.tenant(staff, tax_rate_bps=2000, **fields)
        books.tenants[label] = tenant
        subscriptions[label] = await subscribe(
            client, staff.headers, tenant["id"], plan_code, seats=seats, start_at=start
        )

    [credited_first] = await invoices(client, staff.headers, books.tenants["credited"]["id"])
    assert (credited_first["status"], credited_first["tax_minor"]) == ("finalized", 165), (
        credited_first
    )  # 823 + 165 = 988
    await _credit(client, staff, credited_first["id"], 333)

    [voided] = await invoices(client, staff.headers, books.tenants["voided"]["id"])
    await _credit(client, staff, voided["id"], 100)
    await _void(client, staff, voided["id"])

    [draft] = await invoices(client, staff.headers, books.tenants["drafts"]["id"])
    assert draft["status"] == "draft", draft
    await _void(client, staff, draft["id"])

    response = await client.post(
        f"/v1/subscriptions/{subscriptions['canceled']['id']}/cancel",
        json={"at_period_end": False},
        headers=staff.headers,
    )
    assert response.status_code == 200, response.text
    [canceled] = await invoices(client, staff.headers, books.tenants["canceled"]["id"])
    assert len(await credit_notes(client, staff.headers, canceled["id"])) == 1

    [yen] = await invoices(client, staff.headers, books.tenants["yen"]["id"])
    assert yen["currency"] == "JPY"
    await _credit(client, staff, yen["id"], 7)

    if run_cycle:
        first = await service.run_cycle(FIRST_RUN, grace=timedelta(hours=1))
        assert (first.invoices_created, first.failed) == (4, []), first  # all but the canceled subscription
        cycle_draft = [
            i for i in await invoices(client, staff.headers, books.tenants["drafts"]["id"]) if i["status"] == "draft"
        ]
        assert len(cycle_draft) == 1, cycle_draft
        booked = await owner.fetchval(
            "select count(*) from ledger_journals where source_id = $1", uuid.UUID(cycle_draft[0]["id"])
        )
        assert booked == 0, "a draft is booked before it is issued"
        second = await service.run_cycle(SECOND_RUN, grace=timedelta(hours=1))
        assert (second.invoices_created, second.drafts_finalized, second.failed) == (0, 1, []), second
    return books


# -- reading the books ----------------------------------------------------------------------------------


@dataclass
class Ledger:
    journals: list[dict[str, Any]]
    postings: list[dict[str, Any]]

    def journals_of(self, source_id: str | uuid.UUID, source_type: str | None = None) -> list[dict[str, Any]]:
        return [
            j
            for j in self.journals
            if j["source_id"] == uuid.UUID(str(source_id)) and (source_type is None or j["source_type"] == source_type)
        ]

    def postings_of(self, journal_id: uuid.UUID) -> list[dict[str, Any]]:
        return [p for p in self.postings if p["journal_id"] == journal_id]

    def balance(self, account: str, tenant_id: uuid.UUID | None = None) -> dict[str, int]:
        """currency -> sum of the postings on `account` (only those of `tenant_id`'s journals, if given)."""
        sums: dict[str, int] = defaultdict(int)
        for p in self.postings:
            if p["account"] == account and tenant_id in (None, p["tenant_id"]):
                sums[p["currency"]] += p["amount_minor"]
        return {currency: total for currency, total in sums.items() if total}

    def receivable(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """currency -> what the tenant's receivable account says it owes: every posting on it."""
        return self.balance(receivable(tenant_id))

    def earned(self, tenant_id: uuid.UUID) -> dict[str, int]:
        """currency -> revenue and tax payable the tenant's journals booked (credit-normal, so negated)."""
        sums: dict[str, int] = defaultdict(int)
        for account in (REVENUE, TAX_PAYABLE):
            for currency, total in self.balance(account, tenant_id).items():
                sums[currency] -= total
        return {currency: total for currency, total in sums.items() if total}


async def _read(owner: asyncpg.Connection) -> Ledger:
    journals = [dict(r) for r in await owner.fetch("select * from ledger_journals order by created_at, id")]
    postings = [dict(r) for r in await owner.fetch("select * from ledger_postings order by id")]
    return Ledger(journals, postings)


def _net(postings: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    sums: dict[tuple[str, str], int] = defaultdict(int)
    for p in postings:
        sums[(p["account"], p["currency"])] += p["amount_minor"]
    return {key: value for key, value in sums.items() if value}


async def _all_invoices(client: AsyncClient, books: Books) -> dict[str, list[dict[str, Any]]]:
    return {label: await invoices(client, books.staff.headers, t["id"]) for label, t in books.tenants.items()}


def _owed(tenant_invoices: list[dict[str, Any]]) -> dict[str, int]:
    """currency -> what the non-void issued invoices still say is owed (total less credit notes)."""
    owed: dict[str, int] = defaultdict(int)
    for invoice in tenant_invoices:
        if invoice["status"] in ISSUED:
            owed[invoice["currency"]] += invoice["total_minor"] - invoice["credited_minor"]
    return {currency: total for currency, total in owed.items() if total}


# -- the books agree with the documents -----------------------------------------------------------------


async def test_the_ledger_mirrors_invoices_credit_notes_voids_and_billing_runs(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection, report: Any
) -> None:
    books = await _book(client, factory, owner_connection)
    result = await service.verify_ledger()
    assert result.ok, result
    ledger = await _read(owner_connection)
    assert result.journals == len(ledger.journals) > 0
    assert result.postings == len(ledger.postings) > 0

    # Every journal balances per currency, and its postings carry its tenant.
    tenant_of_journal = {j["id"]: j["tenant_id"] for j in ledger.journals}
    per_journal: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    for p in ledger.postings:
        per_journal[(p["journal_id"], p["currency"])] += p["amount_minor"]
        assert p["tenant_id"] == tenant_of_journal[p["journal_id"]], p
    assert {key: total for key, total in per_journal.items() if total} == {}

    documents = await _all_invoices(client, books)
    notes_seen = 0
    voids_seen = 0
    issued_seen = 0
    for label, tenant_invoices in documents.items():
        tenant_id = books.tenant_id(label)
        for invoice in tenant_invoices:
            if invoice["status"] == "draft":
                assert ledger.journals_of(invoice["id"]) == [], invoice
                continue
            [issue] = ledger.journals_of(invoice["id"], "invoice")  # exactly one
            issued_seen += 1
            assert issue["tenant_id"] == tenant_id
            assert invoice["number"] in issue["description"]
            assert _net(ledger.postings_of(issue["id"])) == {
                key: value
                for key, value in {
                    (receivable(tenant_id), invoice["currency"]): invoice["total_minor"],
                    (REVENUE, invoice["currency"]): -invoice["subtotal_minor"],
                    (TAX_PAYABLE, invoice["currency"]): -invoice["tax_minor"],
                }.items()
                if value
            }
            caused = list(ledger.postings_of(issue["id"]))
            notes = await credit_notes(client, books.staff.headers, invoice["id"])
            assert sum(note["amount_minor"] for note in notes) == invoice["credited_minor"]
            for note in notes:
                [journal] = ledger.journals_of(note["id"], "credit_note")
                notes_seen += 1
                postings = ledger.postings_of(journal["id"])
                net = _net(postings)
                currency = invoice["currency"]
                assert net[(receivable(tenant_id), currency)] == -note["amount_minor"]
                revenue_part = net.get((REVENUE, currency), 0)
                tax_part = net.get((TAX_PAYABLE, currency), 0)
                assert revenue_part + tax_part == note["amount_minor"]
                exact = Fraction(note["amount_minor"] * invoice["subtotal_minor"], invoice["total_minor"])
                assert abs(revenue_part - exact) < 1, (note, net)
                caused += postings
            voids = ledger.journals_of(invoice["id"], "invoice_void")
            if invoice["status"] == "void":
                [void] = voids
                voids_seen += 1
                # The void undoes, account by account, what the invoice and its credit notes booked.
                assert _net(caused + ledger.postings_of(void["id"])) == {}, invoice
                assert _net(ledger.postings_of(void["id"])) == {k: -v for k, v in _net(caused).items()}
            else:
                assert voids == [], invoice

        # The receivable is what the invoices still say is owed; revenue and tax payable mirror it.
        owed = _owed(tenant_invoices)
        assert owed, label  # not vacuous
        assert ledger.receivable(tenant_id) == owed, label
        assert ledger.earned(tenant_id) == owed, label
        # No other account moved for this tenant.
        assert {p["account"] for p in ledger.postings if p["tenant_id"] == tenant_id} <= {
            receivable(tenant_id),
            REVENUE,
            TAX_PAYABLE,
        }

    # Every journal was accounted for by a document: no strays.
    assert len(ledger.journals) == issued_seen + notes_seen + voids_seen
    assert voids_seen == 2 and notes_seen >= 4
    assert documents["voided"][0]["status"] == "void" and documents["drafts"][0]["status"] == "void"
    assert {i["status"] for i in documents["drafts"][1:]} == {"finalized"}
    # The voided tenant owes only the cycle's invoice.
    assert _owed(documents["voided"]) == {"EUR": documents["voided"][1]["total_minor"]}
    assert set(_owed(documents["yen"])) == {"JPY"}
    report(f"ledger: {result.journals} journals ({result.postings} postings) agree with the invoices of 5 tenants")


async def test_prorations_carried_credits_and_settled_cancellations_are_booked(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection
) -> None:
    """Immediate seat changes: an upgrade's change invoice, a downgrade's credit waiting for the next invoice
    (there outweighing the charge, so it is carried), and a downgrade settled by cancelling at once."""
    staff = await factory.staff()
    immediate = {"upgrade": "immediate", "downgrade": "immediate"}
    await plan(client, staff.headers, "team", [{"type": "per_seat", "unit_amount_minor": 999}], proration=immediate)
    start = at_midnight(first_of_month(today()))
    tenants = {label: await factory.tenant(staff, tax_rate_bps=2000) for label in ("carried", "settled")}
    subscriptions = {}
    for label, seats in (("carried", 10), ("settled", 2)):
        subscriptions[label] = await subscribe(client, staff.headers, tenants[label]["id"], "team", seats, start)
    for label, changes in (("carried", (12, 1)), ("settled", (6, 1))):
        for seats in changes:
            response = await client.post(
                f"/v1/subscriptions/{subscriptions[label]['id']}/change", json={"seats": seats}, headers=staff.headers
            )
            assert response.status_code == 200, response.text
    response = await client.post(
        f"/v1/subscriptions/{subscriptions['settled']['id']}/cancel",
        json={"at_period_end": False},
        headers=staff.headers,
    )
    assert response.status_code == 200, response.text
    period_end = datetime.fromisoformat(subscriptions["carried"]["current_period_end"].replace("Z", "+00:00"))
    cycle = await service.run_cycle(period_end + timedelta(hours=2), grace=timedelta(hours=1))
    assert (cycle.invoices_created, cycle.failed) == (1, []), cycle

    result = await service.verify_ledger()
    assert result.ok, result
    ledger = await _read(owner_connection)
    for label, tenant in tenants.items():
        tenant_id = uuid.UUID(tenant["id"])
        tenant_invoices = await invoices(client, staff.headers, tenant["id"])
        assert len(tenant_invoices) >= 2, tenant_invoices  # the first, a change invoice (and a cycle one)
        for invoice in tenant_invoices:
            assert len(ledger.journals_of(invoice["id"], "invoice")) == 1, invoice
        owed = _owed(tenant_invoices)
        assert ledger.receivable(tenant_id) == owed, label
        assert ledger.earned(tenant_id) == owed, label
    carried = await invoices(client, staff.headers, tenants["carried"]["id"])
    assert any(line["amount_minor"] < 0 for invoice in carried for line in invoice["lines"]), carried
    settled = await invoices(client, staff.headers, tenants["settled"]["id"])
    assert sum(invoice["credited_minor"] for invoice in settled) > 0, settled


async def test_no_journal_may_post_to_another_tenants_receivable(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection
) -> None:
    """Verify sums each tenant's receivable over that tenant's rows, so the database itself refuses a posting
    on tenant A's receivable carried by tenant B's journal (even from the owner), and the books stay as they were."""
    books = await _book(client, factory, owner_connection, run_cycle=False)
    a, b = books.tenant_id("credited"), books.tenant_id("canceled")
    before = (await _read(owner_connection)).receivable(a)
    with pytest.raises(asyncpg.CheckViolationError):
        await _post_as_owner(owner_connection, b, [(receivable(a), -100, "EUR"), (REVENUE, 100, "EUR")])
    assert (await _read(owner_connection)).receivable(a) == before
    assert (await service.verify_ledger()).ok


async def test_an_invoice_credited_in_full_leaves_nothing_in_revenue_or_tax(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection
) -> None:
    """Two credit notes of 494 on an invoice of 823 + 165 = 988 take it all back: revenue -823 + 823 and tax
    -165 + 165, whatever each note's own split rounds to (494 x 823/988 = 411.5 and 494 x 165/988 = 82.5)."""
    staff = await factory.staff()
    await plan(
        client,
        staff.headers,
        "pro",
        [{"type": "flat", "amount_minor": 1000}, {"type": "per_seat", "unit_amount_minor": "250.5"}],
    )
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    tenant_id = uuid.UUID(tenant["id"])
    await subscribe(client, staff.headers, tenant["id"], "pro", seats=2, start_at=START)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    assert (invoice["subtotal_minor"], invoice["tax_minor"], invoice["total_minor"]) == (823, 165, 988)
    await _credit(client, staff, invoice["id"], 494)
    await _credit(client, staff, invoice["id"], 494)
    [credited] = await invoices(client, staff.headers, tenant["id"])
    assert (credited["credited_minor"], credited["amount_due_minor"]) == (988, 0)
    result = await service.verify_ledger()
    assert result.ok, result
    ledger = await _read(owner_connection)
    assert ledger.receivable(tenant_id) == {}
    assert ledger.earned(tenant_id) == {}
    assert ledger.balance(REVENUE, tenant_id) == {} and ledger.balance(TAX_PAYABLE, tenant_id) == {}, (
        f"revenue {ledger.balance(REVENUE, tenant_id)}, tax payable {ledger.balance(TAX_PAYABLE, tenant_id)} "
        "left on a fully credited invoice"
    )


async def test_voiding_twice_books_one_reversal(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection
) -> None:
    books = await _book(client, factory, owner_connection, run_cycle=False)
    [voided] = await invoices(client, books.staff.headers, books.tenants["voided"]["id"])
    again = await _void(client, books.staff, voided["id"])
    assert again["status"] == "void"
    ledger = await _read(owner_connection)
    assert len(ledger.journals_of(voided["id"], "invoice_void")) == 1
    assert len(ledger.journals_of(voided["id"], "invoice")) == 1
    assert (await service.verify_ledger()).ok


# -- tampering ------------------------------------------------------------------------------------------


async def _post_as_owner(
    owner: asyncpg.Connection, tenant_id: uuid.UUID, lines: list[tuple[str, int, str]]
) -> uuid.UUID:
    journal_id = uuid.uuid4()
    async with owner.transaction():
        await owner.execute(
            "insert into ledger_journals (id, tenant_id, source_type, source_id, description) "
            "values ($1, $2, 'payment', $3, 'tampering')",
            journal_id,
            tenant_id,
            uuid.uuid4(),
        )
        for account, amount, currency in lines:
            await owner.execute(
                "insert into ledger_postings (tenant_id, journal_id, account, amount_minor, currency) "
                "values ($1, $2, $3, $4, $5)",
                tenant_id,
                journal_id,
                account,
                amount,
                currency,
            )
    return journal_id


async def _remove_journal(owner: asyncpg.Connection, journal_id: uuid.UUID) -> None:
    """Delete a journal with its postings (the owner may; the app role may not)."""
    async with owner.transaction():
        await owner.execute("delete from ledger_postings where journal_id = $1", journal_id)
        assert await owner.execute("delete from ledger_journals where id = $1", journal_id) == "DELETE 1"


async def test_verify_detects_tampering(
    client: AsyncClient, factory: Factory, owner_connection: asyncpg.Connection, report: Any
) -> None:
    books = await _book(client, factory, owner_connection)
    clean = await service.verify_ledger()
    assert clean.ok, clean
    tenant_id = books.tenant_id("credited")
    documents = await invoices(client, books.staff.headers, str(tenant_id))
    owed = _owed(documents)["EUR"]
    first = documents[0]
    detected: dict[str, bool] = {}

    # 1. A balanced journal that moves 100 from the tenant's receivable to revenue.
    moved = await _post_as_owner(
        owner_connection, tenant_id, [(receivable(tenant_id), -100, "EUR"), (REVENUE, 100, "EUR")]
    )
    found = await service.verify_ledger()
    detected["balanced but wrong"] = not found.ok
    assert not found.ok
    assert found.journals == clean.journals + 1
    assert found.unbalanced_journals == [] and found.invoices_without_journal == []
    assert [asdict(row) for row in found.receivable_differences] == [
        {"tenant_id": tenant_id, "currency": "EUR", "ledger": owed - 100, "documents": owed}
    ], found.receivable_differences
    await _remove_journal(owner_connection, moved)
    assert (await service.verify_ledger()).ok

    # 2. An issued invoice's journal deleted.
    [issue] = await owner_connection.fetch(
        "select id from ledger_journals where source_type = 'invoice' and source_id = $1", uuid.UUID(first["id"])
    )
    await _remove_journal(owner_connection, issue["id"])
    found = await service.verify_ledger()
    detected["journal deleted"] = not found.ok
    assert not found.ok
    assert found.journals == clean.journals - 1
    assert [asdict(row) for row in found.invoices_without_journal] == [
        {"id": uuid.UUID(first["id"]), "tenant_id": tenant_id}
    ], found.invoices_without_journal
    assert [(row.tenant_id, row.ledger, row.documents) for row in found.receivable_differences] == [
        (tenant_id, owed - first["total_minor"], owed)
    ]
    assert found.unbalanced_journals == []

    # 3. A posting's amount edited behind the trigger's back (it checks inserts): the journal no longer balances.
    [yen_first, *_] = await invoices(client, books.staff.headers, books.tenants["yen"]["id"])
    [posting] = await owner_connection.fetch(
        "select p.id, p.journal_id from ledger_postings p join ledger_journals j on j.id = p.journal_id "
        "where j.source_type = 'invoice' and j.source_id = $1 and p.account = 'revenue'",
        uuid.UUID(yen_first["id"]),
    )
    await owner_connection.execute(
        "update ledger_postings set amount_minor = amount_minor - 5 where id = $1", posting["id"]
    )
    found = await service.verify_ledger()
    detected["posting edited"] = any(row.journal_id == posting["journal_id"] for row in found.unbalanced_journals)
    assert [asdict(row) for row in found.unbalanced_journals] == [
        {"journal_id": posting["journal_id"], "currency": "JPY", "total": -5}
    ], found.unbalanced_journals
    assert not found.ok

    report(
        f"ledger: {clean.journals} journals verified; tampering detected in "
        f"{sum(detected.values())} of {len(detected)} cases"
    )
    assert all(detected.values()), detected


# -- what PostgreSQL itself refuses ---------------------------------------------------------------------


async def _tenant(client: AsyncClient, factory: Factory) -> uuid.UUID:
    staff = await factory.staff()
    return uuid.UUID((await factory.tenant(staff, tax_rate_bps=2000))["id"])


async def _journal_as_app(
    connection: asyncpg.Connection, tenant_id: uuid.UUID, lines: list[tuple[str, int, str]]
) -> uuid.UUID:
    """Inside the caller's transaction, as the app role in the tenant's context."""
    journal_id = uuid.uuid4()
    await connection.execute(
        "insert into ledger_journals (id, tenant_id, source_type, source_id, description) "
        "values ($1, $2, 'payment', $3, 'by hand')",
        journal_id,
        tenant_id,
        uuid.uuid4(),
    )
    for account, amount, currency in lines:
        await connection.execute(
            "insert into ledger_postings (tenant_id, journal_id, account, amount_minor, currency) "
            "values ($1, $2, $3, $4, $5)",
            tenant_id,
            journal_id,
            account,
            amount,
            currency,
        )
    return journal_id


async def _stored(owner: asyncpg.Connection, journal_id: uuid.UUID) -> tuple[int, int]:
    journals = await owner.fetchval("select count(*) from ledger_journals where id = $1", journal_id)
    postings = await owner.fetchval("select count(*) from ledger_postings where journal_id = $1", journal_id)
    return journals, postings


@pytest.mark.parametrize(
    "lines",
    [
        pytest.param([("cash:stripe", 100, "EUR")], id="one posting"),
        pytest.param([("cash:stripe", 100, "EUR"), ("revenue", -99, "EUR")], id="off by one"),
        pytest.param([("cash:stripe", 100, "EUR"), ("revenue", -100, "USD")], id="currencies offset"),
        pytest.param(
            [("cash:stripe", 100, "EUR"), ("revenue", -100, "EUR"), ("cash:stripe", 5, "USD")], id="second currency"
        ),
    ],
)
async def test_an_unbalanced_journal_is_refused_at_commit(
    client: AsyncClient,
    factory: Factory,
    app_connection: asyncpg.Connection,
    owner_connection: asyncpg.Connection,
    lines: list[tuple[str, int, str]],
) -> None:
    tenant_id = await _tenant(client, factory)
    journal_id = None
    with pytest.raises(asyncpg.CheckViolationError, match="does not balance"):
        async with app_connection.transaction():
            await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
            journal_id = await _journal_as_app(app_connection, tenant_id, lines)
            # Deferred: the inserts themselves went through; the check waits for the commit.
            seen = await app_connection.fetchval(
                "select count(*) from ledger_postings where journal_id = $1", journal_id
            )
            assert seen == len(lines)
    assert journal_id is not None
    assert await _stored(owner_connection, journal_id) == (0, 0)


async def test_a_balanced_journal_commits(
    client: AsyncClient,
    factory: Factory,
    app_connection: asyncpg.Connection,
    owner_connection: asyncpg.Connection,
) -> None:
    tenant_id = await _tenant(client, factory)
    async with app_connection.transaction():
        await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
        pair = await _journal_as_app(app_connection, tenant_id, [("cash:stripe", 100, "EUR"), ("revenue", -100, "EUR")])
        two_currencies = await _journal_as_app(
            app_connection,
            tenant_id,
            [("cash:stripe", 100, "EUR"), ("cash:stripe", 7, "USD"), ("revenue", -100, "EUR"), ("revenue", -7, "USD")],
        )
    assert await _stored(owner_connection, pair) == (1, 2)
    assert await _stored(owner_connection, two_currencies) == (1, 4)
    # One unbalanced journal sinks the whole transaction, the balanced one with it.
    with pytest.raises(asyncpg.CheckViolationError):
        async with app_connection.transaction():
            await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
            fine = await _journal_as_app(app_connection, tenant_id, [("cash:stripe", 1, "EUR"), ("revenue", -1, "EUR")])
            await _journal_as_app(app_connection, tenant_id, [("cash:stripe", 1, "EUR")])
    assert await _stored(owner_connection, fine) == (0, 0)


@pytest.mark.parametrize(
    "statement",
    [
        "update ledger_postings set amount_minor = amount_minor + 1",
        "delete from ledger_postings",
        "update ledger_journals set description = 'rewritten'",
        "delete from ledger_journals",
    ],
)
async def test_the_app_role_cannot_change_or_remove_what_is_booked(
    client: AsyncClient,
    factory: Factory,
    app_connection: asyncpg.Connection,
    owner_connection: asyncpg.Connection,
    statement: str,
) -> None:
    tenant_id = await _tenant(client, factory)
    async with app_connection.transaction():
        await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
        journal_id = await _journal_as_app(
            app_connection, tenant_id, [("cash:stripe", 100, "EUR"), ("revenue", -100, "EUR")]
        )
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with app_connection.transaction():
            await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
            await app_connection.execute(statement)
    assert await _stored(owner_connection, journal_id) == (1, 2)
    amounts = await owner_connection.fetch(
        "select amount_minor from ledger_postings where journal_id = $1 order by id", journal_id
    )
    assert [row["amount_minor"] for row in amounts] == [100, -100]
