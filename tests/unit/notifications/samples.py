"""Sample `data` of every catalogued event, with exactly the keys of its contract (`events.EventType.data`, which
`notify` holds every producer to; test_templates checks these against it), for the template, sending and
webhook tests."""

from __future__ import annotations

from typing import Any

from tenants.notifications.events import EVENTS

# The events that are emailed (the others go to webhooks only).
EMAIL_EVENTS = sorted(name for name, kind in EVENTS.items() if kind.email)

INVOICE_ID = "0b6f0e1c-8a4e-4c4f-9a55-1f2d3c4b5a69"

SAMPLES: dict[str, dict[str, Any]] = {
    "invoice.finalized": {
        "invoice_id": INVOICE_ID,
        "number": "ACME-000042",
        "kind": "cycle",
        "currency": "EUR",
        "total_minor": 123450,
        "total": "1,234.50 EUR",
        "amount_due_minor": 123450,
        "amount_due": "1,234.50 EUR",
        "due_at": "2026-12-18T00:00:00+00:00",
        "period_start": "2026-11-01T00:00:00+00:00",
        "period_end": "2026-12-01T00:00:00+00:00",
        "period": "2026-11-01 to 2026-11-30",
    },
    "invoice.paid": {
        "invoice_id": INVOICE_ID,
        "number": "ACME-000042",
        "currency": "EUR",
        "amount_paid_minor": 123450,
        "amount_paid": "1,234.50 EUR",
        "paid_at": "2026-12-04T02:40:00+00:00",
    },
    "invoice.payment_failed": {
        "invoice_id": INVOICE_ID,
        "number": "ACME-000042",
        "currency": "EUR",
        "amount_due_minor": 123450,
        "amount_due": "1,234.50 EUR",
        "decline_code": "insufficient_funds",
        "attempt": 2,
        "next_retry_at": "2026-12-07T02:40:00+00:00",
    },
    "invoice.disputed": {
        "invoice_id": INVOICE_ID,
        "number": "ACME-000042",
        "dispute_id": "dp_1",
        "currency": "EUR",
        "amount_minor": 123450,
        "amount": "1,234.50 EUR",
        "reason": "fraudulent",
    },
    "invoice.dispute_closed": {
        "invoice_id": INVOICE_ID,
        "number": "ACME-000042",
        "dispute_id": "dp_1",
        "currency": "EUR",
        "amount_minor": 123450,
        "amount": "1,234.50 EUR",
        "reason": "fraudulent",
        "status": "lost",
    },
    "subscription.trial_will_end": {
        "subscription_id": "6d0c3a57-1c1e-4f0f-8f57-3a3e1c0b9d11",
        "plan_code": "pro",
        "trial_end": "2026-12-07T00:00:00+00:00",
        "cancel_at_period_end": False,
    },
    "subscription.updated": {
        "subscription_id": "6d0c3a57-1c1e-4f0f-8f57-3a3e1c0b9d11",
        "plan_code": "pro",
        "status": "active",
        "seats": 5,
        "change": "change_scheduled",
        "changes": ["change_scheduled"],
        "cancel_at_period_end": False,
        "current_period_end": "2027-01-01T00:00:00+00:00",
        "pending_plan_code": "team",
        "pending_seats": 5,
    },
    "subscription.canceled": {
        "subscription_id": "6d0c3a57-1c1e-4f0f-8f57-3a3e1c0b9d11",
        "plan_code": "pro",
        "canceled_at": "2026-12-04T02:40:00+00:00",
        "ends_at": "2026-12-04T02:40:00+00:00",
    },
    "tenant.suspended": {"reason": "non_payment", "suspended_at": "2026-12-04T02:40:00+00:00"},
    "tenant.reactivated": {"reactivated_at": "2026-12-05T09:00:00+00:00"},
    "payment_method.expiring": {
        "payment_method_id": "pm_1",
        "brand": "visa",
        "last4": "4242",
        "exp_month": 1,
        "exp_year": 2027,
    },
    "reseller.statement_ready": {
        "statement_id": "2a0f8a52-2f55-4a4e-a1a4-9b0c5d3e7f10",
        "month": "2026-11",
        "currency": "EUR",
        "total_minor": 98765,
        "total": "987.65 EUR",
        "payable_minor": 9877,
        "payable": "98.77 EUR",
    },
    "partner.checkpoint_approved": {
        "code": "kyc",
        "title": "Know your customer",
        "approved_at": "2026-12-04T02:40:00+00:00",
        "expires_at": "2027-12-04T02:40:00+00:00",
    },
    "partner.checkpoint_rejected": {
        "code": "kyc",
        "title": "Know your customer",
        "reason": "The document is unreadable",
        "required_actions": ["Upload a clear scan of the registration certificate", "Name a second director"],
    },
}

# What each subject says, whatever the recipient (the tenant is "Acme & Co", the partner "Resell <Ltd>").
SUBJECT_HAS: dict[str, str] = {
    "invoice.finalized": "invoice ACME-000042 for 1,234.50 EUR",
    "invoice.paid": "payment received for invoice ACME-000042",
    "invoice.payment_failed": "payment of invoice ACME-000042 failed",
    "invoice.disputed": "invoice ACME-000042 is disputed",
    "invoice.dispute_closed": "invoice ACME-000042 is closed (lost)",
    "subscription.trial_will_end": "your trial ends on 7 December 2026",
    "tenant.suspended": "is suspended",
    "tenant.reactivated": "is active again",
    "payment_method.expiring": "card ending in 4242 expires soon",
    "reseller.statement_ready": "commission statement for November 2026",
    "partner.checkpoint_approved": "checkpoint kyc approved",
    "partner.checkpoint_rejected": "checkpoint kyc needs changes",
}
