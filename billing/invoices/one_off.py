"""One-off invoices: staff bill a tenant for something outside its subscription (setup work, a custom
integration). Taxed with the tenant's rates, numbered in its sequence when finalized, then collected, dunned,
voided and credited like any invoice: nothing downstream reads a subscription from it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from billing.access import tenant_of
from billing.errors import CurrencyMismatch, InvalidInvoiceTransition, InvoiceNotFound
from billing.invoices import repository
from billing.invoices.rules import OneOffLine, one_off_lines
from billing.invoices.service import InvoiceView, _with_lines, finalize, write_invoice
from billing.money import exponent
from billing.periods import Period
from controlplane.core.auth.principal import Principal
from controlplane.core.db import tenant_tx
from tenants import audit
from tenants.roles import Permission
from tenants.service import check_access, tenant_terms


async def create_one_off_invoice(
    actor: Principal, tenant_id: uuid.UUID, currency: str, items: Sequence[OneOffLine], *, finalize_now: bool = True
) -> InvoiceView:
    """Staff only. In the tenant's billing currency; `finalize_now=False` keeps a draft until
    `finalize_invoice` (it is never finalized on its own). The invoice's period is the moment it was written."""
    exponent(currency)
    now = datetime.now(UTC)
    moment = Period(now, now)
    lines = one_off_lines(items, moment)
    async with tenant_tx(tenant_id):
        await check_access(actor, tenant_id, Permission.STAFF_ONLY, method="POST")
        # Share-locked, as a subscription does: the tenant's currency cannot change under an unpaid invoice.
        tenant = await tenant_terms(tenant_id, lock="share")
        assert tenant is not None  # check_access found it
        if currency != tenant.currency:
            raise CurrencyMismatch(f"the tenant is billed in {tenant.currency}, not {currency}")
        invoice_id = await write_invoice(
            tenant_id=tenant_id,
            subscription_id=None,
            kind="one_off",
            currency=currency,
            period=moment,
            lines=lines,
            now=now,
            finalization="now" if finalize_now else "manual",
        )
        assert invoice_id is not None  # only a subscription's boundary is written once
        await audit.record(
            actor,
            tenant_id,
            "invoice.one_off_created",
            "invoice",
            invoice_id,
            after={"lines": len(lines), "currency": currency, "finalized": finalize_now},
        )
        row = await repository.get_invoice(invoice_id)
        assert row is not None
        return (await _with_lines([row]))[0]


async def finalize_invoice(actor: Principal, invoice_id: uuid.UUID) -> InvoiceView:
    """Staff only: number and book a draft now (a one-off draft, or a cycle draft before its grace ends).
    An invoice already finalized (or paid) is answered unchanged; a void one cannot be finalized."""
    tenant_id = await tenant_of(actor, "invoices", invoice_id, Permission.STAFF_ONLY, "POST")
    async with tenant_tx(tenant_id):
        row = await repository.get_invoice(invoice_id, lock="update")
        if row is None:
            raise InvoiceNotFound()
        if row["status"] == "draft":
            await finalize(tenant_id, invoice_id, datetime.now(UTC))
            await repository.clear_finalize_failure(invoice_id)
            row = await repository.get_invoice(invoice_id)
            assert row is not None
            await audit.record(
                actor,
                tenant_id,
                "invoice.finalized",
                "invoice",
                invoice_id,
                before={"status": "draft"},
                after={"status": row["status"], "number": row["number"]},
            )
        elif row["status"] not in ("finalized", "paid"):
            raise InvalidInvoiceTransition(
                f"a {row['status']} invoice cannot be finalized", current_status=row["status"]
            )
        return (await _with_lines([row]))[0]
