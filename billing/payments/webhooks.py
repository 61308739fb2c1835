"""Stripe webhooks: verified, recorded once, applied in the same transaction, never moving state back.

Collection records Stripe's answer itself; a webhook matters when that answer was lost (a timeout left
the attempt pending) or arrives first. Either way the attempt settles once: a later, older or repeated
event finds it settled and changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Literal

from billing.disputes import rules as dispute_rules
from billing.disputes import service as disputes
from billing.errors import DisputePaymentPending, WebhookRejected
from billing.money import exponent
from billing.payments import repository
from billing.payments.gateway import ChargeOutcome, verified_event
from billing.payments.refunds import StripeRefund, book_refund_made_at_stripe
from billing.payments.service import record_outcome
from billing.payments.stripe_amounts import from_stripe
from controlplane.core import metrics
from controlplane.core.db import SystemReason, system_tx

# A refused delivery is counted every time (controlplane_webhooks_total{outcome="rejected"}) but logged as a
# row at most once per reason in this many seconds: forged deliveries cost no unbounded table.
REJECTION_LOG_SECONDS = 60
# `charge.dispute.updated` and `charge.dispute.funds_reinstated` are recorded and ignored: `closed` decides a
# dispute and says what Stripe gave back (billing.disputes.service).
HANDLED = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    *sorted(dispute_rules.EVENTS),
)


WebhookResult = Literal["applied", "duplicate", "ignored"]


async def receive_stripe_event(
    payload: bytes,
    signature: str | None,
    secret: Callable[[bool], Sequence[str]],
    *,
    dispute_lost_suspends: bool = True,
) -> WebhookResult:
    """Verify, record and apply one delivery; answers "applied", "duplicate" or "ignored". A dispute of a
    payment not yet settled here raises `DisputePaymentPending` (409) with nothing recorded: Stripe retries it.

    `dispute_lost_suspends` is the platform's `DISPUTE_LOST_SUSPENDS`: a lost dispute suspends its tenant.

    `secret(fresh)` gives the signing secrets in force; after a mismatch they are read again (fresh) once, so
    a secret rotated in OpenBao is picked up without a restart (the secret itself bounds how often it really
    reads OpenBao: see `WebhookSecret`).
    """
    try:
        try:
            event = verified_event(payload, signature, await asyncio.to_thread(secret, False))
        except WebhookRejected as rejected:
            if rejected.reason != "forged":
                raise
            event = verified_event(payload, signature, await asyncio.to_thread(secret, True))
    except WebhookRejected as rejected:
        metrics.WEBHOOKS_TOTAL.labels(outcome="rejected").inc()
        async with system_tx(SystemReason.WEBHOOK):
            await repository.record_webhook_rejection(rejected.reason, REJECTION_LOG_SECONDS)
        raise
    try:
        async with system_tx(SystemReason.WEBHOOK):
            if not await repository.record_webhook_event(str(event["id"]), str(event["type"])):
                metrics.WEBHOOKS_TOTAL.labels(outcome="duplicate").inc()
                return "duplicate"
            applied = await _apply(event, dispute_lost_suspends) if event["type"] in HANDLED else False
    except DisputePaymentPending:
        # Rolled back with the event's record: Stripe's next delivery of it is applied afresh.
        metrics.WEBHOOKS_TOTAL.labels(outcome="deferred").inc()
        raise
    metrics.WEBHOOKS_TOTAL.labels(outcome="applied" if applied else "ignored").inc()
    return "applied" if applied else "ignored"


async def _apply(event: dict[str, Any], dispute_lost_suspends: bool) -> bool:
    """Inside the event's transaction (system scope: the event names its tenant only in its payload)."""
    if event["type"] in dispute_rules.EVENTS:
        # Read defensively there (a malformed object is ignored, never a 500).
        data = event.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        return await disputes.apply_stripe_event(event["type"], obj, lost_suspends=dispute_lost_suspends)
    obj = event["data"]["object"]
    if event["type"].startswith("payment_intent."):
        return await _settle_intent(obj, succeeded=event["type"] == "payment_intent.succeeded")
    intent_id = obj.get("payment_intent")
    payment = await repository.attempt_by_intent(intent_id) if intent_id else None
    if payment is None:
        return False
    if event["type"] == "charge.refunded":
        currency = str(payment["currency"]).strip()
        places = exponent(currency)
        refunded = from_stripe(int(obj.get("amount_refunded") or 0), currency, places)
        listed = [
            StripeRefund(
                str(item["id"]),
                from_stripe(int(item.get("amount") or 0), currency, places),
                str((item.get("metadata") or {}).get("refund_id") or "") or None,
            )
            for item in (obj.get("refunds") or {}).get("data") or []
            if item.get("id") and item.get("status", "succeeded") == "succeeded"
        ]
        return await book_refund_made_at_stripe(payment, refunded, listed)
    return False


async def _settle_intent(intent: dict[str, Any], *, succeeded: bool) -> bool:
    attempt = await repository.attempt_by_intent(str(intent["id"]))
    if attempt is None:
        invoice_text = (intent.get("metadata") or {}).get("invoice_id")
        try:
            invoice_id = uuid.UUID(str(invoice_text))
        except ValueError:
            return False
        attempt = await repository.open_attempt(invoice_id)
    if attempt is None:
        return False
    # Money that moved is the truth: a success reported after a recorded failure (events out of order, or
    # a retried intent) is applied; a failure never undoes a success.
    if succeeded and attempt["status"] == "failed" and await repository.reopen_failed_attempt(attempt["id"]):
        attempt = {**attempt, "status": "pending"}
    if attempt["status"] != "pending":
        return False
    error = intent.get("last_payment_error") or {}
    decline = None if succeeded else error.get("decline_code") or error.get("code") or "payment_failed"
    outcome = ChargeOutcome(succeeded, str(intent["id"]), decline)
    await record_outcome(None, attempt["tenant_id"], attempt["invoice_id"], attempt, outcome)
    return True
