"""The events people and systems are told about: pure, the one catalogue that the outbox, the templates, the
webhook documentation and the tests read.

An event is for a tenant (its billing contact and its admins are emailed; its webhook endpoint receives it
when `webhook` is set) or for a partner (its admins are emailed; partners have no webhook endpoint).
`attachment` names what the email carries (a provider registered by the composition root produces it).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Audience(enum.StrEnum):
    TENANT = "tenant"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class EventType:
    name: str  # stable: the webhook `type` and the template's name
    audience: Audience
    email: bool
    webhook: bool
    attachment: str | None = None


INVOICE_PDF = "invoice_pdf"

EVENTS: dict[str, EventType] = {
    event.name: event
    for event in (
        EventType("invoice.finalized", Audience.TENANT, email=True, webhook=True, attachment=INVOICE_PDF),
        EventType("invoice.paid", Audience.TENANT, email=True, webhook=True),
        EventType("invoice.payment_failed", Audience.TENANT, email=True, webhook=True),
        EventType("invoice.disputed", Audience.TENANT, email=True, webhook=True),
        EventType("invoice.dispute_closed", Audience.TENANT, email=True, webhook=True),
        EventType("subscription.trial_will_end", Audience.TENANT, email=True, webhook=True),
        EventType("subscription.updated", Audience.TENANT, email=False, webhook=True),
        EventType("subscription.canceled", Audience.TENANT, email=False, webhook=True),
        EventType("tenant.suspended", Audience.TENANT, email=True, webhook=True),
        EventType("tenant.reactivated", Audience.TENANT, email=True, webhook=True),
        EventType("payment_method.expiring", Audience.TENANT, email=True, webhook=False),
        EventType("reseller.statement_ready", Audience.PARTNER, email=True, webhook=False),
        EventType("partner.checkpoint_approved", Audience.PARTNER, email=True, webhook=False),
        EventType("partner.checkpoint_rejected", Audience.PARTNER, email=True, webhook=False),
    )
}

# Who is emailed: a row's `recipient` is one of these or `user:<uuid>` (a member resolved when queued).
BILLING_CONTACT = "billing_contact"


def user_recipient(user_id: object) -> str:
    return f"user:{user_id}"


def event_type(name: str) -> EventType:
    """The catalogued event; an unknown name is a programming error, not input."""
    try:
        return EVENTS[name]
    except KeyError:
        raise ValueError(f"unknown notification event {name!r}") from None
