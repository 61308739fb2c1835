"""The events people and systems are told about: pure, the one catalogue that the outbox, the templates, the
webhook documentation and the tests read.

An event is for a tenant (its billing contact and its admins are emailed; its webhook endpoint receives it
when `webhook` is set) or for a partner (its admins are emailed; partners have no webhook endpoint).
`attachment` names what the email carries (a provider registered by the composition root produces it).

`data` is the event's contract: exactly the keys of the `data` its producer passes to `notify` (which refuses
any other set), what the templates may name, and what README's "Webhook events" table documents (a test
compares the two). Amounts come as `<name>_minor` and `<name>` (a display string), dates as ISO 8601 UTC.
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
    data: frozenset[str] = frozenset()  # the keys of its `data`, exactly


INVOICE_PDF = "invoice_pdf"

_INVOICE = ("invoice_id", "number", "currency")
_DISPUTE = (*_INVOICE, "dispute_id", "amount_minor", "amount", "reason")


def _keys(*names: str) -> frozenset[str]:
    return frozenset(names)


EVENTS: dict[str, EventType] = {
    event.name: event
    for event in (
        EventType(
            "invoice.finalized",
            Audience.TENANT,
            email=True,
            webhook=True,
            attachment=INVOICE_PDF,
            data=_keys(
                *_INVOICE,
                "kind",
                "total_minor",
                "total",
                "amount_due_minor",
                "amount_due",
                "due_at",
                "period_start",
                "period_end",
                "period",
            ),
        ),
        EventType(
            "invoice.paid",
            Audience.TENANT,
            email=True,
            webhook=True,
            data=_keys(*_INVOICE, "amount_paid_minor", "amount_paid", "paid_at"),
        ),
        EventType(
            "invoice.payment_failed",
            Audience.TENANT,
            email=True,
            webhook=True,
            data=_keys(*_INVOICE, "amount_due_minor", "amount_due", "decline_code", "attempt", "next_retry_at"),
        ),
        EventType("invoice.disputed", Audience.TENANT, email=True, webhook=True, data=_keys(*_DISPUTE)),
        EventType("invoice.dispute_closed", Audience.TENANT, email=True, webhook=True, data=_keys(*_DISPUTE, "status")),
        EventType(
            "subscription.trial_will_end",
            Audience.TENANT,
            email=True,
            webhook=True,
            data=_keys("subscription_id", "plan_code", "trial_end", "cancel_at_period_end"),
        ),
        EventType(
            "subscription.updated",
            Audience.TENANT,
            email=False,
            webhook=True,
            data=_keys(
                "subscription_id",
                "plan_code",
                "status",
                "seats",
                "change",
                "changes",
                "cancel_at_period_end",
                "current_period_end",
                "pending_plan_code",
                "pending_seats",
            ),
        ),
        EventType(
            "subscription.canceled",
            Audience.TENANT,
            email=False,
            webhook=True,
            data=_keys("subscription_id", "plan_code", "canceled_at", "ends_at"),
        ),
        EventType("tenant.suspended", Audience.TENANT, email=True, webhook=True, data=_keys("reason", "suspended_at")),
        EventType("tenant.reactivated", Audience.TENANT, email=True, webhook=True, data=_keys("reactivated_at")),
        EventType(
            "payment_method.expiring",
            Audience.TENANT,
            email=True,
            webhook=False,
            data=_keys("payment_method_id", "brand", "last4", "exp_month", "exp_year"),
        ),
        EventType(
            "reseller.statement_ready",
            Audience.PARTNER,
            email=True,
            webhook=False,
            data=_keys("statement_id", "month", "currency", "total_minor", "total", "payable_minor", "payable"),
        ),
        EventType(
            "partner.checkpoint_approved",
            Audience.PARTNER,
            email=True,
            webhook=False,
            data=_keys("code", "title", "approved_at", "expires_at"),
        ),
        EventType(
            "partner.checkpoint_rejected",
            Audience.PARTNER,
            email=True,
            webhook=False,
            data=_keys("code", "title", "reason", "required_actions"),
        ),
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
