"""Credit lots in the database: concurrent finalizations never overdraw a wallet, and what the database itself
refuses (a lot's remaining beyond its amount, any change to a recorded movement)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from httpx import AsyncClient

from billing import service
from controlplane.core.pagination import PageRequest
from tests.factories import Factory
from tests.integration._wallets import granted_tenant, one_off_invoice


async def _credits_taken(tenant_id: uuid.UUID, amount: int) -> int:
    """An invoice of `amount` written and finalized in its own transaction: the credits it took."""
    row = await one_off_invoice(tenant_id, amount)
    assert row["amount_due_minor"] == row["total_minor"] - row["credits_applied_minor"]
    return int(row["credits_applied_minor"])


async def test_concurrent_finalizations_never_overdraw_the_wallet(client: AsyncClient, factory: Factory) -> None:
    tenant_id = await granted_tenant(client, factory, 1000)
    taken = await asyncio.gather(*(_credits_taken(tenant_id, 800) for _ in range(3)))
    # The lot is locked by the first finalization; the next ones see what it left.
    assert sorted(taken) == [0, 200, 800]
    page = await service.get_wallet(tenant_id, "EUR", PageRequest())
    assert page.balance_minor == 0
    report = await service.verify_ledger()
    assert report.ok, report


@pytest.mark.parametrize(
    "statement",
    ["update credit_transactions set amount_minor = amount_minor * 2", "delete from credit_transactions"],
)
async def test_credit_movements_are_append_only(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection, statement: str
) -> None:
    tenant_id = await granted_tenant(client, factory, 500)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with app_connection.transaction():
            await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
            await app_connection.execute(statement)


async def test_a_lot_never_holds_more_than_its_amount_nor_less_than_nothing(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection
) -> None:
    tenant_id = await granted_tenant(client, factory, 500)
    for delta in (1, -501):
        with pytest.raises(asyncpg.CheckViolationError):
            async with app_connection.transaction():
                await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
                await app_connection.execute("update credit_lots set remaining_minor = remaining_minor + $1", delta)
