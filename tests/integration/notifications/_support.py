"""People to notify, the outbox as it stands, and the clock of the back-off, for the notification tests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY

from controlplane.core.db import SystemReason, fetch, partner_tx, system_tx, tenant_tx
from controlplane.core.mail import Mailer
from controlplane.core.settings import Settings
from tenants import service
from tenants.notifications import notify, sender
from tenants.notifications.events import EVENTS, Audience
from tests.integration.conftest import staff_principal
from tests.unit.notifications.samples import INVOICE_ID, SAMPLES

TENANT_NAME = "Acme & Co"
PARTNER_NAME = "Resell Ltd"


@dataclass(frozen=True)
class People:
    tenant_id: uuid.UUID
    partner_id: uuid.UUID
    billing_email: str
    admin_id: uuid.UUID
    admin_email: str
    partner_admin_id: uuid.UUID
    partner_admin_email: str


async def people(billing_email: str | None = None, admin_email: str | None = None) -> People:
    """A tenant with a billing contact and an admin (and a plain member, never emailed); a reseller with an admin
    (and a viewer, never emailed)."""
    tag = uuid.uuid4().hex[:8]
    staff = staff_principal()
    billing = billing_email or f"billing-{tag}@acme.example"
    tenant = await service.create_tenant(
        staff, service.NewTenant(name=TENANT_NAME, slug=f"acme-{tag}", currency="EUR", billing_email=billing)
    )
    admin = await service.add_member(staff, tenant.id, admin_email or f"admin-{tag}@acme.example", "tenant_admin")
    await service.add_member(staff, tenant.id, f"member-{tag}@acme.example", "tenant_member")
    partner = await service.create_partner(
        staff,
        "reseller",
        service.NewPartner(name=PARTNER_NAME, email=f"partner-{tag}@resell.example", subtype="standard"),
    )
    partner_admin = await service.add_partner_member(
        staff, partner.id, f"padmin-{tag}@resell.example", "reseller_admin"
    )
    await service.add_partner_member(staff, partner.id, f"pviewer-{tag}@resell.example", "reseller_viewer")
    return People(
        tenant.id,
        partner.id,
        billing,
        admin.user_id,
        admin_email or f"admin-{tag}@acme.example",
        partner_admin.user_id,
        f"padmin-{tag}@resell.example",
    )


async def queue(who: People, event: str, key: str | None = None, data: dict[str, Any] | None = None) -> int:
    """`event` with its sample data, as its producer would queue it, keyed by the event and its tenant or partner
    (a key is unique within its tenant or partner only; test_sender_runs shows one key in two tenants)."""
    values = SAMPLES[event] if data is None else data
    if EVENTS[event].audience == Audience.TENANT:
        attachment = uuid.UUID(INVOICE_ID) if EVENTS[event].attachment else None
        async with tenant_tx(who.tenant_id):
            return await notify(
                event, key or f"{event}:{who.tenant_id}", values, tenant_id=who.tenant_id, attachment_id=attachment
            )
    async with partner_tx(who.partner_id):
        return await notify(event, key or f"{event}:{who.partner_id}", values, partner_id=who.partner_id)


async def rows() -> list[dict[str, Any]]:
    async with system_tx(SystemReason.STAFF_VIEW):
        return await fetch(
            "select id, event_type, event_key, recipient, status, attempts, last_error, sent_at, failed_at, "
            "extract(epoch from next_attempt_at - now())::float8 as due_in from notifications order by id"
        )


async def make_due(ids: list[int] | None = None) -> None:
    """The back-off's pause has passed: every pending row (or those of `ids`) is due now."""
    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch(
            "update notifications set next_attempt_at = now() - interval '1 second' "
            "where status = 'pending' and ({}::bigint[] is null or id = any({}::bigint[]))",
            ids,
            ids,
        )


async def postpone(ids: list[int]) -> None:
    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch("update notifications set next_attempt_at = now() + interval '1 hour' where id = any({})", ids)


async def send(settings: Settings, mailer: Mailer | None = None) -> sender.SendReport:
    return await sender.send_due(mailer or Mailer.from_settings(settings), settings.public_url)


def counted(event: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("controlplane_notifications_total", {"event": event, "outcome": outcome}) or 0.0
