"""A finalized invoice is immutable in the database itself (the `invoices_immutable` trigger), pricing columns
included: its kind, discount, taxes and subscription never change, and the credits applied from a wallet are
set once, in the transaction that finalizes it (as billing.invoices.service.finalize does), and afterwards only
lowered (credits given back to the wallet by a cancellation), never raised."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from httpx import AsyncClient

from billing.invoices import repository as invoices_repository
from controlplane.core.db import tenant_tx
from tests.factories import Factory
from tests.integration._wallets import granted_tenant, one_off_invoice


async def _update(connection: asyncpg.Connection, tenant_id: uuid.UUID, *statements: str, invoice_id: Any) -> None:
    async with connection.transaction():
        await connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
        for statement in statements:
            # The statements are this module's constants.
            await connection.execute(f"update invoices set {statement} where id = $1", invoice_id)  # noqa: S608


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("kind = 'credit_purchase'", "cannot change"),
        ("discount_minor = discount_minor - 1", "cannot change"),
        ("""taxes = '[{"code": "vat", "name": "VAT", "rate_bps": 2000, "amount_minor": 1}]'""", "cannot change"),
        ("tax_rate_bps = tax_rate_bps + 1", "cannot change"),
        # From NULL to a subscription: `<>` with a NULL side is NULL, so this slipped through before.
        ("subscription_id = '00000000-0000-4000-8000-000000000001'", "cannot change"),
        ("credits_applied_minor = credits_applied_minor + 1", "credits are applied once"),
    ],
)
async def test_a_finalized_invoices_pricing_never_changes(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection, assignment: str, message: str
) -> None:
    tenant_id = await granted_tenant(client, factory, 300)
    invoice = await one_off_invoice(tenant_id, 800)
    assert (invoice["status"], invoice["credits_applied_minor"], invoice["subscription_id"]) == ("finalized", 300, None)
    with pytest.raises(asyncpg.CheckViolationError, match=message):
        await _update(app_connection, tenant_id, assignment, invoice_id=invoice["id"])


async def test_credits_are_applied_only_in_the_transaction_that_finalizes(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection
) -> None:
    # A tenant with a grace: the invoice stays a draft, finalized below by hand as `finalize` does it.
    tenant_id = await granted_tenant(client, factory, 300, invoice_grace_hours=24)
    draft = await one_off_invoice(tenant_id, 800)
    assert (draft["status"], draft["credits_applied_minor"]) == ("draft", 0)
    finalize = "status = 'finalized', number = 'T-1', issued_at = now(), finalize_at = null"
    # Finalized in one transaction and credited in another: refused, and nothing of it stays.
    await _update(app_connection, tenant_id, finalize, invoice_id=draft["id"])
    with pytest.raises(asyncpg.CheckViolationError, match="credits are applied once"):
        await _update(app_connection, tenant_id, "credits_applied_minor = 300", invoice_id=draft["id"])
    # Another draft, finalized and credited in the same transaction (the wallet paying it): allowed, once.
    other = await one_off_invoice(tenant_id, 800)
    finalize_other = finalize.replace("T-1", "T-2")
    await _update(
        app_connection,
        tenant_id,
        finalize_other,
        "credits_applied_minor = 300, amount_due_minor = 500",
        invoice_id=other["id"],
    )
    # Credited a second time, in the same transaction or a later one: refused.
    third = await one_off_invoice(tenant_id, 800)
    twice = (finalize.replace("T-1", "T-3"), "credits_applied_minor = 100", "credits_applied_minor = 200")
    with pytest.raises(asyncpg.CheckViolationError, match="credits are applied once"):
        await _update(app_connection, tenant_id, *twice, invoice_id=third["id"])
    with pytest.raises(asyncpg.CheckViolationError, match="credits are applied once"):
        await _update(app_connection, tenant_id, "credits_applied_minor = 400", invoice_id=other["id"])
    async with tenant_tx(tenant_id):
        stored = await invoices_repository.get_invoice(other["id"])
    assert stored is not None and (stored["status"], stored["credits_applied_minor"]) == ("finalized", 300)


async def test_credits_applied_may_only_be_lowered_after_finalization(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection
) -> None:
    """A cancellation gives back to the wallet what it paid of the unused time: the invoice's credits applied
    fall, finalized or paid; they never rise again, nor fall with a change of status (a void keeps them)."""
    tenant_id = await granted_tenant(client, factory, 600)
    invoice = await one_off_invoice(tenant_id, 800)
    assert (invoice["status"], invoice["credits_applied_minor"]) == ("finalized", 600)
    await _update(app_connection, tenant_id, "credits_applied_minor = 400", invoice_id=invoice["id"])
    with pytest.raises(asyncpg.CheckViolationError, match="credits are applied once"):
        await _update(app_connection, tenant_id, "credits_applied_minor = 401", invoice_id=invoice["id"])
    with pytest.raises(asyncpg.CheckViolationError, match="credits are applied once"):
        await _update(
            app_connection, tenant_id, "status = 'void', credits_applied_minor = 300", invoice_id=invoice["id"]
        )
    await _update(app_connection, tenant_id, "status = 'paid', amount_due_minor = 0", invoice_id=invoice["id"])
    await _update(app_connection, tenant_id, "credits_applied_minor = 100", invoice_id=invoice["id"])
    with pytest.raises(asyncpg.CheckViolationError, match="credits are applied once"):
        await _update(app_connection, tenant_id, "credits_applied_minor = 200", invoice_id=invoice["id"])
    async with tenant_tx(tenant_id):
        stored = await invoices_repository.get_invoice(invoice["id"])
    assert stored is not None and (stored["status"], stored["credits_applied_minor"]) == ("paid", 100)
