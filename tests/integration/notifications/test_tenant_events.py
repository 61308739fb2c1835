"""A tenant's suspension and reactivation, and a partner's checkpoint reviews, are told in the transaction of the
change: each suspension its own occurrence (staff's, non-payment's, a lost dispute's), a reactivation only when
the tenant is active again, nothing for a change refused or rolled back, and nothing to a tenant being erased."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from billing import service as billing
from billing.payments.gateway import StripeGateway
from controlplane.core.db import tenant_tx
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client
from tenants import service
from tenants.service import _tenants
from tests.api.billing._support import invoices, plan, subscribe
from tests.api.billing.test_payments import DECLINED_CARD, GOOD_CARD, _add_card, card, stripe_client
from tests.api.partners.test_resellers import RESELLER_CHAIN, _qualify, _sign_up, _step
from tests.factories import Factory
from tests.integration.notifications._outbox import Call, both, of, one_occurrence, queued, told, told_tenant

__all__ = ["stripe_client", "told"]  # the fixtures, used by name
SCHEDULE = (1, 3, 5, 7)


async def _post(client: AsyncClient, url: str, headers: dict[str, str], **body: Any) -> Any:
    return await client.post(url, json=body or None, headers=headers)


def _keys(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({row["event_key"] for row in rows})


async def test_staff_suspensions_and_reactivations_are_each_told_once(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    tenant_id = uuid.UUID(tenant["id"])
    url = f"/v1/tenants/{tenant['id']}"
    for _ in range(2):  # suspending a suspended tenant answers it as it is
        assert (await _post(client, f"{url}/suspend", staff.headers)).status_code == 200
    suspended_at = (await service.get_tenant(tenant_id)).staff_suspended_at
    assert suspended_at is not None
    rows = await queued("tenant.suspended")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    row = one_occurrence(rows)
    assert row["event_key"] == f"{tenant_id}:{suspended_at.isoformat()}"
    assert row["data"] == {"reason": "staff", "suspended_at": suspended_at.astimezone(UTC).isoformat()}
    assert await queued("tenant.reactivated") == []

    for _ in range(2):
        assert (await _post(client, f"{url}/reactivate", staff.headers)).status_code == 200
    rows = await queued("tenant.reactivated")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    reactivated_at = datetime.fromisoformat(one_occurrence(rows)["data"]["reactivated_at"])
    assert abs(datetime.now(UTC) - reactivated_at) < timedelta(minutes=5)

    # Suspended again later: a new occurrence, told again.
    assert (await _post(client, f"{url}/suspend", staff.headers)).status_code == 200
    assert len(_keys(await queued("tenant.suspended"))) == 2
    assert len(await queued("tenant.suspended")) == 4


async def test_dunning_tells_each_failure_then_the_suspension_and_paying_tells_the_reactivation(
    client: AsyncClient, factory: Factory, settings: Settings, stripe_client: Any
) -> None:
    gateway = StripeGateway(make_stripe_client(settings, SecretStore.connect(settings)))
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    await subscribe(client, staff.headers, tenant["id"], "pro")
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    await _add_card(client, admin.headers, tenant["id"], card(stripe_client, DECLINED_CARD))

    start = datetime.now(UTC) + timedelta(minutes=1)
    for day in (0, *SCHEDULE):
        await billing.collect_due_invoices(gateway, start + timedelta(days=day), SCHEDULE)
    failed = await queued("invoice.payment_failed")
    attempts = sorted({row["event_key"]: row["data"]["attempt"] for row in failed}.values())
    assert attempts == [1, 2, 3, 4, 5]
    retries = {row["data"]["attempt"]: row["data"]["next_retry_at"] for row in failed}
    assert all(retries[attempt] is not None for attempt in (1, 2, 3, 4))
    # The last retry failed: no retry is left, and the tenant is suspended for non-payment.
    assert retries[5] is None
    rows = await queued("tenant.suspended")
    assert sorted(row["recipient"] for row in rows) == both(admin)
    assert one_occurrence(rows)["data"]["reason"] == "non_payment"

    # Staff's reactivation is refused while the invoice is unpaid: nothing told.
    refused = await _post(client, f"/v1/tenants/{tenant['id']}/reactivate", staff.headers)
    assert refused.status_code == 409, refused.text
    assert await queued("tenant.reactivated") == []

    await client.post(
        f"/v1/tenants/{tenant['id']}/payment-methods",
        json={"stripe_payment_method_id": card(stripe_client, GOOD_CARD), "default": True},
        headers=admin.headers,
    )
    paid = await client.post(f"/v1/invoices/{invoice['id']}/pay", headers=admin.headers)
    assert paid.json()["status"] == "succeeded", paid.text
    assert sorted(row["recipient"] for row in await queued("tenant.reactivated")) == both(admin)
    assert one_occurrence(await queued("invoice.paid"))["event_key"] == invoice["id"]


async def test_a_lifted_suspension_is_no_reactivation_while_staff_still_hold_the_tenant(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant, admin = await told_tenant(factory, staff)
    tenant_id = uuid.UUID(tenant["id"])
    assert (await _post(client, f"/v1/tenants/{tenant_id}/suspend", staff.headers)).status_code == 200
    lost = datetime.now(UTC)
    async with tenant_tx(tenant_id):
        # The disputes' path: the non-payment suspension, told with its own reason.
        assert await service.suspend_for_non_payment(tenant_id, uuid.uuid4(), lost, reason="dispute_lost")
    async with tenant_tx(tenant_id):
        assert not await service.suspend_for_non_payment(tenant_id, uuid.uuid4(), lost + timedelta(seconds=1))
    reasons = {row["event_key"]: row["data"]["reason"] for row in await queued("tenant.suspended")}
    assert sorted(reasons.values()) == ["dispute_lost", "staff"]
    assert reasons[f"{tenant_id}:{lost.isoformat()}"] == "dispute_lost"

    async with tenant_tx(tenant_id):
        assert await service.lift_non_payment_suspension(tenant_id)
    assert await queued("tenant.reactivated") == []  # staff's suspension still holds it
    assert (await _post(client, f"/v1/tenants/{tenant_id}/reactivate", staff.headers)).status_code == 200
    assert sorted(row["recipient"] for row in await queued("tenant.reactivated")) == both(admin)


async def test_a_suspension_rolled_back_tells_nothing(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant, _ = await told_tenant(factory, staff)
    tenant_id = uuid.UUID(tenant["id"])
    with pytest.raises(RuntimeError):
        async with tenant_tx(tenant_id):
            await service.suspend_for_non_payment(tenant_id, uuid.uuid4(), datetime.now(UTC))
            raise RuntimeError("the invoice's transaction failed")
    assert await queued("tenant.suspended") == []
    assert (await service.get_tenant(tenant_id)).status == "active"


async def test_a_tenant_being_erased_is_told_nothing(
    client: AsyncClient, factory: Factory, told: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_calls: list[str] = []
    real = _tenants.notify

    async def spy(event: str, key: str, data: Any, **audience: Any) -> int:
        tenant_calls.append(event)
        return await real(event, key, data, **audience)

    monkeypatch.setattr(_tenants, "notify", spy)
    staff = await factory.staff()
    tenant, _ = await told_tenant(factory, staff)
    tenant_id = uuid.UUID(tenant["id"])
    await plan(client, staff.headers, "team", [{"type": "per_seat", "unit_amount_minor": 999}])
    await subscribe(client, staff.headers, tenant["id"], "team", seats=3)
    before = len(told)
    assert any(event == "invoice.finalized" for event, *_ in told)

    erased = await client.delete(f"/v1/tenants/{tenant_id}", headers=staff.headers)
    assert erased.status_code == 202, erased.text
    subscription = (await client.get(f"/v1/tenants/{tenant_id}/subscriptions", headers=staff.headers)).json()
    assert subscription["items"][0]["status"] == "canceled"  # the erasure ended it: no one is told
    async with tenant_tx(tenant_id):
        assert await service.suspend_for_non_payment(tenant_id, uuid.uuid4(), datetime.now(UTC))
    assert told[before:] == [] and of(told, "subscription.") == []
    assert tenant_calls == []


# -- partner checkpoints ---------------------------------------------------------------------------------


async def test_a_checkpoint_review_is_told_to_the_partners_admins_with_what_is_left_to_do(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    founder = await factory.user()
    pid = (await _sign_up(client, founder))["id"]
    submitted = await _step(client, founder.headers, pid, "profile_approved", "submit", evidence="our profile")
    assert submitted.status_code == 200, submitted.text
    rejected = await _step(client, staff.headers, pid, "profile_approved", "reject", reason="The address is missing")
    assert rejected.status_code == 200, rejected.text
    again = await _step(client, staff.headers, pid, "profile_approved", "reject", reason="twice")
    assert again.status_code == 409, again.text  # refused: nothing more told

    rows = await queued("partner.checkpoint_rejected")
    assert [(str(row["partner_id"]), row["tenant_id"], row["recipient"]) for row in rows] == [
        (pid, None, f"user:{founder.user_id}")
    ]
    assert rows[0]["event_key"].startswith(f"{pid}:profile_approved:")
    assert rows[0]["data"] == {
        "code": "profile_approved",
        "title": "Company profile approved",
        "reason": "The address is missing",
        "required_actions": rejected.json()["required_actions"],
    }
    assert rows[0]["data"]["required_actions"][0] == "resubmit_profile_approved"
    assert await queued("partner.checkpoint_approved") == []  # a submission is not told

    await _qualify(client, founder, staff, pid, RESELLER_CHAIN)
    approved = {row["data"]["code"]: row for row in await queued("partner.checkpoint_approved")}
    assert sorted(approved) == sorted(RESELLER_CHAIN)
    assert all(row["recipient"] == f"user:{founder.user_id}" for row in approved.values())
    profile = approved["profile_approved"]["data"]
    assert (profile["title"], profile["expires_at"]) == ("Company profile approved", None)
    # Sales training is valid for a year: its approval says until when.
    training = approved["sales_training_certified"]["data"]
    assert datetime.fromisoformat(training["expires_at"]) == datetime.fromisoformat(
        training["approved_at"]
    ) + timedelta(days=365)
    # An approval lapsing is not a review: the expiry tells nothing.
    assert await service.expire_checkpoints(datetime.now(UTC) + timedelta(days=366)) == 1
    assert len(await queued("partner.checkpoint_approved")) == len(RESELLER_CHAIN)
    assert len(await queued("partner.checkpoint_rejected")) == 1
