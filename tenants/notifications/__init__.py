"""Notifications: what happened, told by email to the people it concerns (and, for a tenant's events, to its
webhook endpoint), from an outbox written in the same transaction as the change.

Other domains call `notify` inside their own transaction (a tenant's, a partner's or a system one): the
rows commit or vanish with the change. A worker sends them later, once per event and recipient.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from tenants import webhook_outbox
from tenants.notifications import repository
from tenants.notifications.events import BILLING_CONTACT, Audience, event_type, user_recipient


async def notify(
    event: str,
    key: str,
    data: Mapping[str, Any],
    *,
    tenant_id: uuid.UUID | None = None,
    partner_id: uuid.UUID | None = None,
    attachment_id: uuid.UUID | None = None,
) -> int:
    """Queue `event` for everyone it concerns, inside the caller's transaction; answers how many emails are
    newly queued. A tenant's event marked `webhook` is also enqueued once for the tenant's webhook endpoint
    (type = the event, its payload = `data` and the tenant's id).

    `key` identifies this occurrence of the event within its tenant or partner (an invoice id, a subscription id
    and its trial end; build it from ids, since the sender groups an event's recipients by type and key):
    notifying the same event and key again queues nothing more, so callers may repeat freely. `data` is what
    the templates and the webhook payload show: ids, amounts in minor units, currencies, dates; never an
    email address or a name (the sender looks those up when it sends). Its keys are exactly the catalogue's
    (`events.EventType.data`): any other set is a programming error (ValueError), never a blank in an email or
    an undocumented field in a webhook.
    """
    kind = event_type(event)
    if (kind.audience == Audience.TENANT) != (tenant_id is not None and partner_id is None):
        raise ValueError(f"{event} is for a {kind.audience.value}: name exactly that")
    if set(data) != kind.data:  # the contract the templates and the webhook documentation rely on
        missing, extra = sorted(kind.data - set(data)), sorted(set(data) - kind.data)
        raise ValueError(f"{event}'s data must have exactly its catalogued keys (missing {missing}, extra {extra})")
    recipients: list[tuple[str, uuid.UUID | None]] = []
    if kind.email and tenant_id is not None:
        has_contact, admins = await repository.tenant_recipients(tenant_id)
        recipients = ([(BILLING_CONTACT, None)] if has_contact else []) + [(user_recipient(u), u) for u in admins]
    elif kind.email and partner_id is not None:
        recipients = [(user_recipient(u), u) for u in await repository.partner_admins(partner_id)]
    if kind.webhook and tenant_id is not None:
        await webhook_outbox.enqueue(tenant_id, event, {"tenant_id": str(tenant_id), **data}, key=key)
    return await repository.queue(
        tenant_id=tenant_id,
        partner_id=partner_id,
        event_type=event,
        event_key=key,
        recipients=recipients,
        data=data,
        attachment_id=attachment_id,
    )


__all__ = ["notify"]
