"""Credit lots in the database: a lot is written at the moment its expiry was checked against, and a void
gives credits back locking the lots in the same order as a finalization takes them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from httpx import AsyncClient

from billing.invoices import repository as invoices_repository
from billing.invoices.service import write_invoice
from billing.periods import Period
from billing.rating import Line
from billing.wallets import repository
from controlplane.core.db import tenant_tx
from tests.factories import Factory


async def _tenant(client: AsyncClient, factory: Factory) -> uuid.UUID:
    staff = await factory.staff()
    return uuid.UUID((await factory.tenant(staff))["id"])


def _line(amount: int, at: datetime) -> Line:
    period = Period(at, at)
    return Line("Work", "one_off", Decimal(1), Decimal(amount), Decimal(amount), period)


async def _invoice(tenant_id: uuid.UUID, kind: str, amount: int) -> uuid.UUID:
    """Inside the caller's transaction: an untaxed invoice of `amount`, finalized now."""
    now = datetime.now(UTC)
    invoice_id = await write_invoice(
        tenant_id=tenant_id,
        subscription_id=None,
        kind=kind,
        currency="EUR",
        period=Period(now, now),
        lines=[_line(amount, now)],
        now=now,
        with_pending=False,
        taxed=False,
        finalization="now",
    )
    assert invoice_id is not None
    return invoice_id


async def test_a_lot_is_written_at_the_moment_its_expiry_was_checked_against(
    client: AsyncClient, factory: Factory
) -> None:
    """The check `expires_at > created_at` compares with the request's moment, not the insert's: a lot
    checked a while ago (a slow request) whose expiry has come since is still written, not a 500."""
    tenant_id = await _tenant(client, factory)
    checked_at = datetime.now(UTC) - timedelta(hours=1)
    async with tenant_tx(tenant_id):
        lot = await repository.insert_lot(
            {
                "tenant_id": tenant_id,
                "currency": "EUR",
                "source": "granted",
                "amount_minor": 100,
                "remaining_minor": 100,
                "expires_at": checked_at + timedelta(minutes=1),
                "created_at": checked_at,
            }
        )
    assert lot["created_at"] == checked_at


async def test_a_void_restores_credits_in_the_lots_lock_order_not_their_application_order(
    client: AsyncClient, factory: Factory
) -> None:
    """A purchased lot (older) and a granted one (newer): the invoice takes the granted credit first, but
    `applied_to` (which the void locks the lots by) lists the lots by (created_at, id), as `usable_lots` locks
    them, so a void and a finalization never wait on each other in opposite orders."""
    tenant_id = await _tenant(client, factory)
    async with tenant_tx(tenant_id):
        purchase = await _invoice(tenant_id, "credit_purchase", 500)
        bought = await repository.insert_lot(
            {
                "tenant_id": tenant_id,
                "currency": "EUR",
                "source": "purchased",
                "amount_minor": 500,
                "remaining_minor": 500,
                "invoice_id": purchase,
                "created_at": datetime.now(UTC) - timedelta(days=2),
            }
        )
        granted = await repository.insert_lot(
            {
                "tenant_id": tenant_id,
                "currency": "EUR",
                "source": "granted",
                "amount_minor": 300,
                "remaining_minor": 300,
                "created_at": datetime.now(UTC) - timedelta(days=1),
            }
        )
        invoice_id = await _invoice(tenant_id, "one_off", 700)
        row = await invoices_repository.get_invoice(invoice_id)
        assert row is not None and row["credits_applied_minor"] == 700
        applied = await repository.applied_to(invoice_id)
    assert [(item["lot_id"], item["amount_minor"]) for item in applied] == [
        (bought["id"], -400),
        (granted["id"], -300),
    ]
