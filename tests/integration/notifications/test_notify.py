"""`notify` queues one row per event and recipient, in the caller's transaction, and never twice."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.core.db import SystemReason, fetch, system_tx, tenant_tx
from tenants import service
from tenants.notifications import notify
from tests.integration.conftest import staff_principal
from tests.unit.notifications.samples import SAMPLES


async def _rows() -> list[dict[str, Any]]:
    async with system_tx(SystemReason.STAFF_VIEW):
        return await fetch("select tenant_id, partner_id, event_type, event_key, recipient, user_id from notifications")


async def test_a_tenant_event_goes_to_the_billing_contact_and_each_admin_once(client: Any) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(
        staff, service.NewTenant(name="N", slug="notify-n", currency="EUR", billing_email="billing@n.example")
    )
    admin = await service.add_member(staff, tenant.id, "admin@n.example", "tenant_admin")
    await service.add_member(staff, tenant.id, "member@n.example", "tenant_member")

    async with tenant_tx(tenant.id):
        first = await notify("invoice.paid", "inv-1", SAMPLES["invoice.paid"], tenant_id=tenant.id)
    async with tenant_tx(tenant.id):
        again = await notify("invoice.paid", "inv-1", SAMPLES["invoice.paid"], tenant_id=tenant.id)

    rows = await _rows()
    assert (first, again) == (2, 0)
    assert sorted(row["recipient"] for row in rows) == sorted(["billing_contact", f"user:{admin.user_id}"])
    assert {row["tenant_id"] for row in rows} == {tenant.id}


async def test_a_rolled_back_change_leaves_no_notification(client: Any) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(staff, service.NewTenant(name="R", slug="notify-r", currency="EUR"))
    await service.add_member(staff, tenant.id, "admin@r.example", "tenant_admin")

    with pytest.raises(RuntimeError):
        async with tenant_tx(tenant.id):
            await notify("tenant.suspended", "s-1", SAMPLES["tenant.suspended"], tenant_id=tenant.id)
            raise RuntimeError("the change failed")

    assert await _rows() == []


async def test_an_event_must_name_its_audience(client: Any) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(staff, service.NewTenant(name="A", slug="notify-a", currency="EUR"))
    async with tenant_tx(tenant.id):
        with pytest.raises(ValueError):
            await notify("reseller.statement_ready", "x", SAMPLES["reseller.statement_ready"], tenant_id=tenant.id)
        with pytest.raises(ValueError):
            await notify("no.such_event", "x", {}, tenant_id=tenant.id)


async def test_an_events_data_has_exactly_the_keys_of_its_contract(client: Any) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(
        staff, service.NewTenant(name="C", slug="notify-c", currency="EUR", billing_email="b@c.example")
    )
    paid = SAMPLES["invoice.paid"]
    missing = {key: value for key, value in paid.items() if key != "amount_paid"}
    async with tenant_tx(tenant.id):
        with pytest.raises(ValueError, match="amount_paid"):
            await notify("invoice.paid", "inv-1", missing, tenant_id=tenant.id)
        with pytest.raises(ValueError, match="billing_email"):  # nor anything undocumented (here: personal data)
            await notify("invoice.paid", "inv-1", {**paid, "billing_email": "b@c.example"}, tenant_id=tenant.id)
    assert await _rows() == []


async def test_a_webhook_only_event_queues_no_email(client: Any) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(
        staff, service.NewTenant(name="W", slug="notify-w", currency="EUR", billing_email="b@w.example")
    )
    async with tenant_tx(tenant.id):
        assert await notify("subscription.updated", "sub-1", SAMPLES["subscription.updated"], tenant_id=tenant.id) == 0
    assert await _rows() == []


async def test_the_same_key_in_two_tenants_is_two_occurrences(client: Any) -> None:
    staff = staff_principal()
    tenants = [
        await service.create_tenant(
            staff, service.NewTenant(name=n, slug=f"notify-key-{n}", currency="EUR", billing_email=f"b@{n}.example")
        )
        for n in ("k1", "k2")
    ]
    for tenant in tenants:
        async with tenant_tx(tenant.id):
            assert (
                await notify("tenant.reactivated", "same-key", SAMPLES["tenant.reactivated"], tenant_id=tenant.id) == 1
            )

    assert sorted(str(row["tenant_id"]) for row in await _rows()) == sorted(str(t.id) for t in tenants)
