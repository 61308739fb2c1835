"""A reseller's context, directly as the app role: its own partner rows, its tenants and their invoices, and
nothing else: not another reseller's rows, not a tenant's members or any person's data."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from billing import service as billing
from tests.api.billing._support import invoices, plan, subscribe
from tests.api.partners.test_commissions import AGREEMENT, _after_this_month, _this_month
from tests.api.partners.test_resellers import RESELLER_CHAIN, _qualify, _sign_up

PARTNER_TABLES = {
    "partners": "id",
    "partner_members": "partner_id",
    "partner_checkpoints": "partner_id",
    "partner_checkpoint_history": "partner_id",
    "reseller_agreements": "reseller_id",
    "reseller_statements": "reseller_id",
    "commission_lines": "reseller_id",
    "commission_events": "reseller_id",
    "partner_payouts": "partner_id",
    "commission_close_issues": "reseller_id",
}


async def _reseller_with_a_tenant(client: Any, factory: Any, staff: Any, code: str) -> dict[str, Any]:
    founder = await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    await _qualify(client, founder, staff, reseller, RESELLER_CHAIN)
    await client.put(f"/v1/resellers/{reseller}/agreement", json=AGREEMENT, headers=staff.headers)
    body = {"name": "Client", "slug": f"c-{uuid.uuid4().hex[:8]}", "reseller_id": reseller}
    tenant = (await client.post("/v1/tenants", json=body, headers=founder.headers)).json()
    await factory.member(tenant["id"])
    await subscribe(client, staff.headers, tenant["id"], code)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    credited = await client.post(
        f"/v1/invoices/{invoice['id']}/credit-notes", json={"amount_minor": 1, "reason": "x"}, headers=staff.headers
    )
    assert credited.status_code == 201, credited.text
    return {"reseller": uuid.UUID(reseller), "tenant": uuid.UUID(tenant["id"])}


async def test_a_reseller_context_sees_only_its_own_rows(
    client: Any, factory: Any, app_connection: asyncpg.Connection, report: Any
) -> None:
    staff = await factory.staff()
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 10000}])
    a = await _reseller_with_a_tenant(client, factory, staff, "pro")
    b = await _reseller_with_a_tenant(client, factory, staff, "pro")
    await billing.close_month(_this_month(), now=_after_this_month())
    checks = 0
    async with app_connection.transaction():
        await app_connection.execute("select set_config('app.reseller_id', $1, true)", str(a["reseller"]))
        for table, column in PARTNER_TABLES.items():
            owners = {row[0] for row in await app_connection.fetch(f"select {column} from {table}")}  # noqa: S608
            assert b["reseller"] not in owners, table
            checks += 1
        assert {row["id"] for row in await app_connection.fetch("select id from tenants")} == {a["tenant"]}
        assert {row["tenant_id"] for row in await app_connection.fetch("select tenant_id from invoices")} == {
            a["tenant"]
        }
        # The MRR history of its own tenants only (read-only: no write policy for the reseller's context).
        assert {row["tenant_id"] for row in await app_connection.fetch("select tenant_id from mrr_changes")} == {
            a["tenant"]
        }
        for table in ("users", "memberships", "api_keys", "payment_methods", "audit_events", "ledger_postings"):
            assert await app_connection.fetchval(f"select count(*) from {table}") == 0, table  # noqa: S608
            checks += 1
        checks += 2
        # Nor can it write another reseller's rows, or re-point its own.
        moved = await app_connection.execute(
            "update reseller_agreements set rate_bps = 10000 where reseller_id = $1", b["reseller"]
        )
        assert moved == "UPDATE 0"
        checks += 1
    report(f"resellers: {checks} reads and writes of other resellers' or people's data refused as the app role")
