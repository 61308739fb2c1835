"""Celery tasks: thin wrappers that take ids and call services. Every one is safe to run twice."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from billing import hooks as billing_hooks
from billing import service as billing
from billing.documents import service as documents
from billing.notices import service as notices
from billing.payments.gateway import StripeGateway
from controlplane.core import db_credentials, maintenance
from controlplane.core.db import run_with_pool
from controlplane.core.mail import Mailer
from controlplane.core.pii import PiiCipher
from controlplane.core.secrets import process_store
from controlplane.core.stripe_client import make_stripe_client
from controlplane.core.tenant_vault import TenantVault
from controlplane.ops import rotation
from plugins_registry import service as plugins
from tenants import billing_contact, service
from tenants.notifications import attachments as notification_attachments
from tenants.notifications import retention, sender
from tenants.notifications.events import INVOICE_PDF
from workers.celery_app import app

# Payments collected here renew plugin licenses, as payments taken through the API do.
billing_hooks.on_invoice_paid(plugins.renew_on_payment)
# The invoice.finalized email carries the invoice's PDF, rendered (and stored) here on its first read.
notification_attachments.provide(INVOICE_PDF, documents.invoice_pdf_for_attachment)

T = TypeVar("T")


def _with_pool(settings: Any, work: Callable[[], Awaitable[T]], *, max_size: int = 2) -> T:
    # With BAO_DB_STATIC_ROLE, each new connection reads OpenBao's current password with the worker's token.
    password = db_credentials.password_for(settings, process_store(settings)) if settings.bao_db_static_role else None
    return run_with_pool(settings.database_url, work, max_size=max_size, password=password)


@app.task(name="controlplane.export_tenant")
def export_tenant(tenant_id: str) -> dict[str, Any]:
    """A tenant's data export, computed inside that tenant's context (read-only, so repeatable)."""
    settings = app.conf.controlplane_settings
    return dataclasses.asdict(_with_pool(settings, lambda: service.export_tenant(uuid.UUID(tenant_id))))


@app.task(name="controlplane.purge_expired_idempotency_keys")
def purge_expired_idempotency_keys() -> int:
    settings = app.conf.controlplane_settings
    return _with_pool(settings, maintenance.purge_expired_idempotency_keys)


# Subscriptions billed by one task; a cycle with more due fans out several.
BILLING_CHUNK = 200
BILLING_CONCURRENCY = 4


def _gateway(settings: Any) -> StripeGateway:
    secrets = process_store(settings)  # one OpenBao login per worker process, not per task run
    return StripeGateway(make_stripe_client(settings, secrets), reload=lambda: make_stripe_client(settings, secrets))


def _utc(text: str) -> datetime:
    """An ISO 8601 moment; one without an offset is UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.task(name="controlplane.billing.run_cycle")
def run_billing_cycle(as_of: str | None = None) -> dict[str, int]:
    """Hourly: find every due subscription and fan out `bill_subscriptions` tasks of up to 200 each.
    Finding twice is harmless: billing is exactly-once per subscription and boundary."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    grace = timedelta(seconds=settings.usage_grace_seconds)

    async def find() -> tuple[list[list[billing.DueSubscription]], int]:
        chunks = [due async for due in billing.due_batches(when - grace, BILLING_CHUNK)]
        return chunks, await billing.finalize_due_drafts(when)

    chunks, finalized = _with_pool(settings, find)
    for due in chunks:
        bill_subscriptions.delay([[str(item.tenant_id), str(item.subscription_id)] for item in due], when.isoformat())
    return {"tasks": len(chunks), "subscriptions": sum(map(len, chunks)), "drafts_finalized": finalized}


@app.task(name="controlplane.billing.bill_subscriptions")
def bill_subscriptions(pairs: list[list[str]], as_of: str) -> dict[str, Any]:
    """Bill each (tenant id, subscription id) in that tenant's context; failures are reported, not raised,
    so one bad subscription does not redeliver the others (they would be skipped anyway)."""
    settings = app.conf.controlplane_settings
    due = [
        billing.DueSubscription(uuid.UUID(tenant_id), uuid.UUID(subscription_id))
        for tenant_id, subscription_id in pairs
    ]
    grace = timedelta(seconds=settings.usage_grace_seconds)
    report = _with_pool(
        settings,
        lambda: billing.bill_many(due, _utc(as_of), grace, concurrency=BILLING_CONCURRENCY),
        max_size=BILLING_CONCURRENCY,
    )
    return {"seen": report.seen, "invoices_created": report.invoices_created, "failed": report.failed}


@app.task(name="controlplane.billing.collect_payments")
def collect_payments(as_of: str | None = None) -> dict[str, Any]:
    """Hourly: charge newly finalized invoices, retry failed ones on the dunning schedule, give up after the
    last retry. Safe to run twice: an attempt's idempotency key is stored before Stripe is called."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    report = _with_pool(settings, lambda: billing.collect_due_invoices(_gateway(settings), when, settings.dunning_days))
    return dataclasses.asdict(report)


@app.task(name="controlplane.billing.expire_credits")
def expire_credits(as_of: str | None = None) -> dict[str, int]:
    """Hourly: prepaid credit past its expiry loses what remains, one lot at a time (failures isolated per lot).
    Safe to run twice: an expired lot has nothing left."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    return dataclasses.asdict(_with_pool(settings, lambda: billing.expire_credits(when)))


@app.task(name="controlplane.billing.record_addon_changes")
def record_addon_changes(as_of: str | None = None) -> dict[str, int]:
    """Every 10 minutes: an add-on that became billable or ended by itself (a plugin trial's end) enters the MRR
    history at its own time. Safe to run twice: an unchanged MRR appends nothing."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    return dataclasses.asdict(_with_pool(settings, lambda: billing.catch_up_addon_changes(when)))


@app.task(name="controlplane.billing.accept_overdue_milestones")
def accept_overdue_milestones() -> int:
    """Hourly: escrow milestones submitted longer ago than their inspection window are accepted."""
    settings = app.conf.controlplane_settings
    return _with_pool(settings, lambda: billing.accept_overdue(_gateway(settings), datetime.now(UTC)))


@app.task(name="controlplane.plugins.expire_licenses")
def expire_licenses(as_of: str | None = None) -> dict[str, int]:
    """Every 10 minutes: trials of paid plugins convert (or expire), unpaid licenses expire."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    return dataclasses.asdict(_with_pool(settings, lambda: plugins.expire_due(when)))


@app.task(name="controlplane.plugins.release_stale_activations")
def release_stale_activations(as_of: str | None = None) -> int:
    """Every 5 minutes: seats held by machines that stopped sending heartbeats are given back."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    silence = timedelta(seconds=settings.license_heartbeat_seconds)
    return _with_pool(settings, lambda: plugins.release_stale(silence, when))


@app.task(name="controlplane.webhooks.deliver")
def deliver_webhooks() -> dict[str, int]:
    """Every minute: due webhook events (plugin, billing, tenant) posted to their tenants' endpoints, signed with
    each tenant's secret (at least once; receivers deduplicate on Webhook-Id). Two runs at once claim different
    events."""
    settings = app.conf.controlplane_settings
    vault = TenantVault(process_store(settings).client)
    production = settings.env == "production"
    return dataclasses.asdict(_with_pool(settings, lambda: service.deliver_webhooks(vault, production=production)))


@app.task(name="controlplane.partners.expire_checkpoints")
def expire_partner_checkpoints(as_of: str | None = None) -> int:
    """Daily: qualification checkpoints past their validity expire (which can unqualify a partner)."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    return _with_pool(settings, lambda: service.expire_checkpoints(when))


@app.task(name="controlplane.partners.close_month")
def close_commission_month(month: str | None = None) -> dict[str, Any]:
    """On the 1st (and the 2nd and 3rd, for resellers whose close failed): every reseller's statement for the
    month that just ended, each reseller alone. Closing twice changes nothing."""
    settings = app.conf.controlplane_settings
    now = datetime.now(UTC)
    closing = billing.parse_month(month) if month else (now.replace(day=1) - timedelta(days=1)).date().replace(day=1)
    report = _with_pool(settings, lambda: billing.close_month(closing))
    return dataclasses.asdict(report)


@app.task(name="controlplane.partners.send_payouts")
def send_payouts() -> dict[str, Any]:
    """Hourly: statements' payable totals sent as Connect transfers; failures retried. Safe to run twice: each
    transfer's idempotency key is its statement's id."""
    settings = app.conf.controlplane_settings
    report = _with_pool(settings, lambda: billing.send_payouts(_gateway(settings)))
    return dataclasses.asdict(report)


@app.task(name="controlplane.secrets.rotate")
def rotate_secrets(what: str = "all", only_due: bool = True) -> list[dict[str, str]]:
    """Daily: rotate the secrets past their period (JWT keys weekly, the license and PII keys quarterly, the
    database password monthly where OpenBao holds it). Safe to run twice: a secret rotated within its period is
    skipped, and a rotation keeps every key a live token or stored ciphertext needs."""
    settings = app.conf.controlplane_settings
    outcomes = rotation.rotate_configured(
        settings, process_store(settings), rotation.parse_what(what), actor="celery", only_due=only_due
    )
    if failed := [outcome for outcome in outcomes if outcome.outcome == "failure"]:
        raise rotation.RotationFailed("; ".join(f"{outcome.secret}: {outcome.detail}" for outcome in failed))
    return [dataclasses.asdict(outcome) for outcome in outcomes]


# A run stops starting passes after 45 s and a pass stops at half its 15-minute lease; these limits are the
# backstop for a run stuck beyond both (its rows stay leased and come back when the lease ends).
NOTIFICATIONS_SOFT_LIMIT_SECONDS = 240
NOTIFICATIONS_HARD_LIMIT_SECONDS = 300


@app.task(
    name="controlplane.notifications.send",
    soft_time_limit=NOTIFICATIONS_SOFT_LIMIT_SECONDS,
    time_limit=NOTIFICATIONS_HARD_LIMIT_SECONDS,
)
def send_notifications() -> dict[str, int]:
    """Every minute: due notification emails sent through SMTP_URL, pass after pass (one SMTP connection each)
    until none is due or 45 s have gone; each outcome recorded on its row (retried on a back-off, failed after
    the last). Two runs at once claim different rows; a resend after a crash between the server's acceptance and
    the record carries the same Message-ID."""
    settings = app.conf.controlplane_settings
    if not settings.smtp_url or not settings.mail_from:
        # Production refuses to start without them and the dev stack sets both: the rows wait, unattempted.
        return {"claimed": 0, "mail_not_configured": 1}
    # The billing contact's address is decrypted with the PII key, through this process's OpenBao login.
    billing_contact.use(PiiCipher(process_store(settings).client))
    documents.configure(settings)
    mailer = Mailer.from_settings(settings)
    return dataclasses.asdict(_with_pool(settings, lambda: sender.send_until_done(mailer, settings.public_url)))


@app.task(name="controlplane.notifications.purge")
def purge_notifications() -> dict[str, int]:
    """Daily: finished notification rows older than 90 days and finished webhook events older than 30 (with
    events no endpoint will take) are deleted, in batches. Safe to run twice: the second finds nothing."""
    settings = app.conf.controlplane_settings
    return dataclasses.asdict(_with_pool(settings, retention.purge))


@app.task(name="controlplane.billing.notify_trials_ending")
def notify_trials_ending(as_of: str | None = None) -> dict[str, int]:
    """Hourly: trials ending within 3 days are told (`subscription.trial_will_end`), once per trial end; one
    subscription that fails is counted and the others go on. Safe to run twice: the notice's key decides."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    return dataclasses.asdict(_with_pool(settings, lambda: notices.notify_trials_ending(when)))


@app.task(name="controlplane.billing.notify_expiring_cards")
def notify_expiring_cards(as_of: str | None = None) -> dict[str, int]:
    """Daily: default cards whose last valid month is next month are told (`payment_method.expiring`), once per
    card and expiry month. Safe to run twice: the notice's key decides."""
    settings = app.conf.controlplane_settings
    when = _utc(as_of) if as_of else datetime.now(UTC)
    return dataclasses.asdict(_with_pool(settings, lambda: notices.notify_expiring_cards(when)))
