"""The preview of a plan or seat change (`billing.service.preview_change`): what `change_subscription` then bills,
line for line and total for total, with nothing written by the preview itself.

Each test previews, then changes through the service with the same principal and changes, and compares the
preview with the invoice (or the pending proration) the change wrote. The old plan's usage is billed to the
moment of the change, so a usage line's end is compared by its day; everything else must be equal.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service as billing
from billing.errors import RenewalNotBilled
from billing.invoices.service import InvoiceView
from controlplane.core.auth.principal import Principal
from controlplane.core.pagination import PageRequest
from tenants import service as tenants
from tests.api._helpers import bearer, create_api_key
from tests.api.billing._support import (
    at_midnight,
    event,
    first_of_month,
    metric,
    plan,
    post_usage,
    subscribe,
    today,
    utcnow,
)
from tests.factories import Actor, Factory


def _code(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def _figures(invoice: InvoiceView) -> tuple[Any, ...]:
    lines = tuple(
        (
            line.description,
            line.charge_kind,
            line.charge_index,
            line.metric_code,
            line.quantity,
            line.unit_amount_minor,
            line.amount_minor,
            line.period_start,
            line.period_end.date() if line.charge_kind == "metered" else line.period_end,
        )
        for line in invoice.lines
    )
    return (
        invoice.kind,
        invoice.currency,
        invoice.period_start,
        invoice.period_end,
        invoice.subtotal_minor,
        invoice.discount_minor,
        invoice.tax_minor,
        invoice.taxes,
        invoice.total_minor,
        lines,
    )


async def _invoices(tenant_id: str) -> list[InvoiceView]:
    return (await billing.list_invoices(uuid.UUID(tenant_id), PageRequest.parse(100, None))).items


async def _principal(actor: Actor) -> Principal:
    return await tenants.principal_for_user(actor.user_id)


async def _state(principal: Principal, subscription_id: uuid.UUID, tenant_id: str) -> tuple[Any, ...]:
    """Everything a preview must leave alone: the subscription, its discounts, the invoices and pending items."""
    subscription = await billing.get_subscription(principal, subscription_id)
    discounts = await billing.list_discounts(principal, subscription_id)
    upcoming = await billing.upcoming_invoice(uuid.UUID(tenant_id))
    return subscription, discounts, [invoice.id for invoice in await _invoices(tenant_id)], upcoming.lines


async def test_an_upgrade_bills_what_its_preview_showed_with_usage_a_coupon_and_tax(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    calls, small, big, launch = _code("calls"), _code("small"), _code("big"), _code("launch")
    await metric(client, staff.headers, calls)
    await plan(
        client,
        staff.headers,
        small,
        [
            {"type": "flat", "amount_minor": 1000},
            {"type": "per_seat", "unit_amount_minor": 250},
            {"type": "metered", "metric_code": calls, "model": "per_unit", "unit_amount_minor": "7"},
        ],
    )
    await plan(
        client,
        staff.headers,
        big,
        [{"type": "flat", "amount_minor": 4900}, {"type": "per_seat", "unit_amount_minor": 800}],
    )
    coupon = {"code": launch, "name": "Launch", "duration": "forever", "percent_off_bps": 1500}
    assert (await client.post("/v1/coupons", json=coupon, headers=staff.headers)).status_code == 201
    tenant = await factory.tenant(staff, tax_rate_bps=1900)
    admin = await factory.member(tenant["id"])
    created = await subscribe(client, admin.headers, tenant["id"], small, seats=2)
    subscription_id = uuid.UUID(created["id"])
    redeemed = await client.post(
        f"/v1/subscriptions/{created['id']}/discounts", json={"coupon_code": launch}, headers=admin.headers
    )
    assert redeemed.status_code == 201, redeemed.text
    grant = {"amount_minor": 500, "paid": False}  # prepaid credit the change's invoice takes first
    granted = await client.post(f"/v1/tenants/{tenant['id']}/wallet/top-ups", json=grant, headers=staff.headers)
    assert granted.status_code == 201, granted.text
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    used = [event(f"call-{n}", calls, utcnow() - timedelta(seconds=2)) for n in range(3)]
    assert (await post_usage(client, bearer(key), used)).json()["accepted"] == 3
    principal = await _principal(admin)
    before = await _state(principal, subscription_id, tenant["id"])

    preview = await billing.preview_change(principal, subscription_id, {"plan_code": big, "seats": 3})
    assert await _state(principal, subscription_id, tenant["id"]) == before  # nothing written
    assert (preview.direction, preview.timing, preview.plan_code, preview.seats) == ("upgrade", "immediate", big, 3)
    assert preview.invoice is not None and preview.invoice.status == "preview" and preview.next_invoice_lines == ()
    kinds = [line.charge_kind for line in preview.invoice.lines]
    assert kinds.count("metered") == 1 and "discount" in kinds and preview.invoice.tax_minor > 0, kinds

    changed = await billing.change_subscription(principal, subscription_id, {"plan_code": big, "seats": 3})
    assert (changed.plan_code, changed.seats) == (big, 3)
    [billed] = [invoice for invoice in await _invoices(tenant["id"]) if invoice.kind == "change"]
    assert _figures(billed) == _figures(preview.invoice)
    assert billed.total_minor == preview.invoice.total_minor > 0
    assert (billed.credits_applied_minor, billed.amount_due_minor) == (
        preview.invoice.credits_applied_minor,
        preview.invoice.amount_due_minor,
    )
    assert billed.credits_applied_minor == 500


async def test_a_plan_change_that_ends_a_trial_bills_what_its_preview_showed(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    trial, team = _code("trial"), _code("team")
    await plan(client, staff.headers, trial, [{"type": "flat", "amount_minor": 5000}], trial_days=14)
    await plan(client, staff.headers, team, [{"type": "per_seat", "unit_amount_minor": 999}])
    tenant = await factory.tenant(staff, tax_rate_bps=2000)
    admin = await factory.member(tenant["id"])
    created = await subscribe(client, admin.headers, tenant["id"], trial)
    principal = await _principal(admin)

    preview = await billing.preview_change(principal, uuid.UUID(created["id"]), {"plan_code": team, "seats": 4})
    assert (preview.direction, preview.status) == ("trial_ended", "active")
    assert preview.invoice is not None
    await billing.change_subscription(principal, uuid.UUID(created["id"]), {"plan_code": team, "seats": 4})
    [billed] = await _invoices(tenant["id"])
    assert _figures(billed) == _figures(preview.invoice)


async def test_an_immediate_downgrade_leaves_for_the_next_invoice_what_its_preview_showed(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    big, small = _code("big"), _code("small")
    immediate = {"upgrade": "immediate", "downgrade": "immediate"}
    await plan(client, staff.headers, big, [{"type": "flat", "amount_minor": 3100}], proration=immediate)
    await plan(client, staff.headers, small, [{"type": "flat", "amount_minor": 1550}], proration=immediate)
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    created = await subscribe(client, admin.headers, tenant["id"], big)
    principal = await _principal(admin)

    preview = await billing.preview_change(principal, uuid.UUID(created["id"]), {"plan_code": small})
    assert (preview.direction, preview.timing, preview.invoice) == ("downgrade", "immediate", None)
    assert preview.next_invoice_minor < 0 and len(preview.next_invoice_lines) == 2
    await billing.change_subscription(principal, uuid.UUID(created["id"]), {"plan_code": small})
    assert len(await _invoices(tenant["id"])) == 1  # nothing billed now
    upcoming = await billing.upcoming_invoice(uuid.UUID(tenant["id"]))
    # A pending item keeps no charge index: the rest of each line is what the preview showed.
    waiting = [replace(line, charge_index=None) for line in upcoming.lines if line.charge_kind == "proration"]
    assert waiting == [replace(line, charge_index=None) for line in preview.next_invoice_lines]
    assert sum(line.amount_minor for line in waiting) == preview.next_invoice_minor


async def test_a_downgrade_for_the_next_period_bills_nothing_and_names_what_takes_over(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    team = _code("team")
    await plan(client, staff.headers, team, [{"type": "per_seat", "unit_amount_minor": 999}])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    created = await subscribe(client, admin.headers, tenant["id"], team, seats=5)
    principal = await _principal(admin)

    preview = await billing.preview_change(principal, uuid.UUID(created["id"]), {"seats": 2})
    assert (preview.direction, preview.timing, preview.invoice, preview.next_invoice_lines) == (
        "downgrade",
        "next_period",
        None,
        (),
    )
    assert (preview.seats, preview.pending_plan_code, preview.pending_seats) == (5, team, 2)
    changed = await billing.change_subscription(principal, uuid.UUID(created["id"]), {"seats": 2})
    assert (changed.seats, changed.pending_seats, changed.current_period_end) == (5, 2, preview.current_period_end)
    assert len(await _invoices(tenant["id"])) == 1


async def test_a_renewal_not_billed_yet_is_refused_by_the_preview_and_billed_by_the_change(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    team = _code("team")
    await plan(client, staff.headers, team, [{"type": "per_seat", "unit_amount_minor": 999}])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    # Started mid last month (staff import it): this month's boundary has passed and the cycle has not run.
    last_month = first_of_month(first_of_month(today()) - timedelta(days=1))
    created = await subscribe(
        client, staff.headers, tenant["id"], team, seats=2, start_at=at_midnight(last_month.replace(day=15))
    )
    principal = await _principal(admin)
    with pytest.raises(RenewalNotBilled):
        await billing.preview_change(principal, uuid.UUID(created["id"]), {"seats": 3})
    assert len(await _invoices(tenant["id"])) == 1
    await billing.change_subscription(principal, uuid.UUID(created["id"]), {"seats": 3})
    assert {invoice.kind for invoice in await _invoices(tenant["id"])} == {"cycle", "change"}


async def test_the_preview_answers_like_the_change_for_what_cannot_be_done(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    team, dollars = _code("team"), _code("dollars")
    await plan(client, staff.headers, team, [{"type": "per_seat", "unit_amount_minor": 999}])
    await plan(client, staff.headers, dollars, [{"type": "flat", "amount_minor": 100}], currency="USD")
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    viewer = await factory.member(tenant["id"], "billing_viewer")
    created = await subscribe(client, admin.headers, tenant["id"], team)
    subscription_id = uuid.UUID(created["id"])
    principal = await _principal(admin)
    for changes, code in (
        ({"plan_code": dollars}, "currency_mismatch"),
        ({"plan_code": _code("nothing")}, "plan_not_found"),
        ({"seats": 10**7}, "invalid_amount"),
    ):
        for attempt in (billing.preview_change, billing.change_subscription):
            with pytest.raises(Exception) as refused:
                await attempt(principal, subscription_id, changes)  # type: ignore[operator]
            assert getattr(refused.value, "code", None) == code, (attempt, changes)
    # Reading is enough to preview (it writes nothing); a member who may not read billing may not.
    assert (await billing.preview_change(await _principal(viewer), subscription_id, {"seats": 2})).seats == 2
    member = await factory.member(tenant["id"], "tenant_member")
    with pytest.raises(Exception) as refused:
        await billing.preview_change(await _principal(member), subscription_id, {"seats": 2})
    assert getattr(refused.value, "code", None) == "forbidden_for_role"
