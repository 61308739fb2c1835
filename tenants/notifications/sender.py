"""Sending the notification outbox by email (`controlplane.notifications.send`, every minute).

A run makes passes one after another until nothing is due or `RUN_SECONDS` have gone (beat starts a run every
minute; one still waiting after 55 s expires). A pass claims due rows across tenants and partners (an attempt
counted and a lease taken, in one system transaction; the other due rows of the same events come along, up to
`CLAIM_MOST` rows, so one pass sees an event's recipients together), then for each row, outside any
transaction: looks up the recipient's address as it is now, renders the event's templates, produces the
attachment, hands the message to the SMTP server (one connection for the whole pass, `Mailer.session`), and
records the outcome in a transaction of its own. One row's failure is that row's: the pass goes on with the
others.

- **Who.** `user:<id>`: the member's address, while the account is active and still an admin where the event
  happened (else `skipped`: `no_address`, `not_an_admin`). `billing_contact`: the tenant's billing email,
  decrypted now (cleared since: `skipped`, `no_address`). Two recipients of one event (its type and key within
  its tenant or partner) with the same address get one email: the first row (the billing contact, queued
  first) sends, the other is `skipped` (`duplicate_address`). Each email has exactly one envelope recipient.
- **Retries.** A failed attempt is tried again after 1 min, 5 min, 30 min, 2 h and 6 h; failing after that, the
  row is `failed` (`last_error`: `mail_unavailable`, `attachment_unavailable`, `internal_error`). A permanent
  refusal by the server (5xx, an international address a server without SMTPUTF8 cannot take, an address that
  is not exactly one: `mail_rejected`) fails the row at once: the same message to the same address would be
  refused again. An SMTP server that cannot be reached at all costs every row of the pass one attempt (one
  connection try, not one per row).
- **Bounded.** A pass stops once half its lease has passed (or the run's time is up) and hands the rows it has
  not reached back, their attempt uncounted. A due row already taken `MAX_ATTEMPTS` times (each pass that took
  it died before recording) is `failed` (`abandoned`) when the next claim finds it, never sent again.
- **Outages.** PostgreSQL or OpenBao unavailable stops the pass: the rows not yet done are given back with
  their attempt uncounted, and the task fails (the beat runs it again next minute).
- **At least once.** The server accepting a message and the row being marked `sent` are two steps: a worker
  that dies between them leaves the row leased, and after the lease (15 min) it is sent again. The resend has
  the same `Message-ID` (`<notification-{id}@{MAIL_FROM's domain}>`), by which mail clients and stores
  recognise it. Outcomes are written only while the attempt's lease holds.

No address, name or body is logged; metrics count by event type and outcome only, and each run sets
`controlplane_notifications_oldest_pending_seconds`.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

import jinja2

from controlplane.core import metrics
from controlplane.core.db import SystemReason, system_tx
from controlplane.core.errors import ServiceUnavailable
from controlplane.core.mail import (
    Mailer,
    MailRejected,
    MailServerUnreachable,
    MailSession,
    MailUnavailable,
    is_one_address,
)
from tenants import billing_contact
from tenants.notifications import attachments, rendering, repository
from tenants.notifications.events import BILLING_CONTACT, EVENTS, event_type

log = logging.getLogger("controlplane.notifications")

JOB = "send_notifications"
BATCH = 50
# The most rows one claim takes, the due rows' siblings included (an event with very many admins is split).
CLAIM_MOST = 4 * BATCH
# No second pass takes a row meanwhile; a pass stops and hands back what it has not reached after half of it.
LEASE_SECONDS = 900
PASS_SECONDS = LEASE_SECONDS // 2
# A run's passes stop starting after this: the beat runs the task every minute (a run waiting 55 s expires).
RUN_SECONDS = 45
# Pause after the n-th failed attempt; a failure after the last gives up (about 8.5 hours after the first try).
BACKOFF_SECONDS = (60, 300, 1800, 7200, 21600)
# A due row taken this often already was never recorded each time (its pass died): given up at the next claim.
MAX_ATTEMPTS = len(BACKOFF_SECONDS) + 1

# `last_error` of a row: a coarse code, never a server's reply (it may repeat the address).
NO_ADDRESS = "no_address"
NOT_AN_ADMIN = "not_an_admin"
DUPLICATE_ADDRESS = "duplicate_address"
ATTACHMENT_UNAVAILABLE = "attachment_unavailable"
INTERNAL_ERROR = "internal_error"
ABANDONED = "abandoned"

Status = Literal["sent", "pending", "failed", "skipped"]


@dataclass(frozen=True, slots=True)
class SendReport:
    claimed: int
    sent: int
    retrying: int
    failed: int
    skipped: int


@dataclass(frozen=True, slots=True)
class Recipient:
    address: str | None  # None: skipped for `skip`
    skip: str | None
    name: str  # the tenant's or partner's


@dataclass(frozen=True, slots=True)
class Outcome:
    status: Status
    error: str | None = None
    retry_in: int | None = None

    @property
    def label(self) -> str:
        return "retrying" if self.status == "pending" else self.status


def retry_in(attempts: int) -> int | None:
    """Seconds until the next try after `attempts` failed ones, or None: give up."""
    return BACKOFF_SECONDS[attempts - 1] if attempts <= len(BACKOFF_SECONDS) else None


def failure(row: dict[str, Any], code: str) -> Outcome:
    pause = retry_in(row["attempts"])
    return Outcome("failed", code) if pause is None else Outcome("pending", code, pause)


def message_id(notification_id: int, domain: str) -> str:
    return f"<notification-{notification_id}@{domain}>"


async def send_until_done(
    mailer: Mailer,
    public_url: str,
    *,
    budget_seconds: float = RUN_SECONDS,
    batch: int = BATCH,
    clock: Callable[[], float] = time.monotonic,
) -> SendReport:
    """A run: passes one after another until one finds nothing due or `budget_seconds` have gone (a pass under
    way then stops and hands back what it has not reached). Answers the passes' counts added up."""
    deadline = clock() + budget_seconds
    total = SendReport(0, 0, 0, 0, 0)
    try:
        while clock() < deadline:
            report = await send_due(mailer, public_url, batch=batch, stop_at=deadline, clock=clock)
            total = SendReport(*(a + b for a, b in zip(_counts(total), _counts(report), strict=True)))
            if report.claimed == 0:
                break
    finally:
        await _observe_oldest_pending()
    return total


def _counts(report: SendReport) -> tuple[int, int, int, int, int]:
    return report.claimed, report.sent, report.retrying, report.failed, report.skipped


async def _observe_oldest_pending() -> None:
    """Best effort: with the database away the gauge keeps its last reading (the outage has its own alerts)."""
    try:
        async with system_tx(SystemReason.NOTIFICATION_DELIVERY):
            metrics.NOTIFICATIONS_OLDEST_PENDING_SECONDS.set(await repository.oldest_pending_seconds())
    except Exception as error:
        log.warning("notifications: the oldest pending row not measured (%s)", type(error).__name__)


async def send_due(
    mailer: Mailer,
    public_url: str,
    *,
    batch: int = BATCH,
    stop_at: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SendReport:
    """One pass: claim up to `batch` due rows (with their events' other due rows), send each on one SMTP
    connection, record each. Stops once half the lease has passed since the claim (or at `stop_at`, on `clock`),
    handing back the rows it has not reached."""
    async with system_tx(SystemReason.NOTIFICATION_DELIVERY):
        abandoned = await repository.abandon_exhausted(MAX_ATTEMPTS)
        rows = await repository.claim_due(batch, LEASE_SECONDS, CLAIM_MOST)
    stop = clock() + PASS_SECONDS
    stop = stop if stop_at is None else min(stop, stop_at)
    for event in abandoned:
        metrics.NOTIFICATIONS_TOTAL.labels(event=_event_label(event), outcome="failed").inc()
    if not rows:
        return SendReport(0, 0, 0, len(abandoned), 0)
    try:
        recipients, taken = await _recipients(rows)
    except Exception as error:
        await _give_back(rows)
        metrics.stop_batch_on_outage(JOB, error)
        raise
    counts: dict[str, int] = defaultdict(int)
    counts["failed"] = len(abandoned)
    unreachable: MailServerUnreachable | None = None
    session = mailer.session()
    try:
        for index, row in enumerate(rows):
            if clock() > stop:  # the lease must outlast the pass: the rest is handed back, due again at once
                await _give_back(rows[index:])
                log.warning("notifications: a pass stopped in time and handed back %d rows", len(rows) - index)
                break
            try:
                outcome, unreachable = await _attempt(session, mailer, public_url, row, recipients, taken, unreachable)
            except ServiceUnavailable as error:  # not the mail server's (that is the row's outcome): stop the pass
                await _give_back(rows[index:])
                metrics.stop_batch_on_outage(JOB, error)
                raise
            except Exception as error:  # a fault of ours on this row alone (logged with its type, never its data)
                metrics.batch_item_failed(JOB, _Internal(f"notification {row['id']}: {type(error).__name__}"))
                outcome = failure(row, INTERNAL_ERROR)
            try:  # each outcome on its own: one that cannot be written (its lease ends, it is tried again) stops none
                async with system_tx(SystemReason.NOTIFICATION_DELIVERY):
                    written = await repository.record_outcome(
                        row["id"],
                        row["attempts"],
                        status=outcome.status,
                        error=outcome.error,
                        retry_in_seconds=outcome.retry_in,
                    )
            except ServiceUnavailable as error:
                # The database is away: this row stays leased (sent again after its lease if it was sent), the
                # rows not reached are handed back, and the pass stops.
                await _give_back(rows[index + 1 :])
                metrics.stop_batch_on_outage(JOB, error)
                raise
            except Exception as error:
                metrics.batch_item_failed(JOB, error)
                continue
            if written:
                counts[outcome.label] += 1
                metrics.NOTIFICATIONS_TOTAL.labels(event=_event_label(row["event_type"]), outcome=outcome.label).inc()
    finally:
        await asyncio.to_thread(session.close)
    report = SendReport(len(rows), counts["sent"], counts["retrying"], counts["failed"], counts["skipped"])
    log.info(
        "notifications: %d claimed, %d sent, %d retrying, %d failed, %d skipped",
        report.claimed,
        report.sent,
        report.retrying,
        report.failed,
        report.skipped,
    )
    return report


def _event_label(event: str) -> str:
    return event if event in EVENTS else "other"


async def _attempt(
    session: MailSession,
    mailer: Mailer,
    public_url: str,
    row: dict[str, Any],
    recipients: dict[int, Recipient],
    taken: dict[repository.EventOf, set[str]],
    unreachable: MailServerUnreachable | None,
) -> tuple[Outcome, MailServerUnreachable | None]:
    """One row's outcome, and whether the mail server has proved unreachable in this pass."""
    recipient = recipients.get(row["id"])
    if recipient is None:  # its look-up failed on our side (logged): tried again later
        return failure(row, INTERNAL_ERROR), unreachable
    if recipient.address is None:
        return Outcome("skipped", recipient.skip), unreachable
    already = taken[_event_of(row)]
    address = recipient.address.strip().lower()
    if address in already:
        return Outcome("skipped", DUPLICATE_ADDRESS), unreachable
    already.add(address)  # this row speaks for the address in this event, whatever becomes of it
    if not is_one_address(recipient.address):  # a stored value that would be several addresses, or none
        return Outcome("failed", MailRejected.code), unreachable
    if unreachable is not None:
        return failure(row, unreachable.code), unreachable
    try:
        message = await _message(mailer, public_url, row, recipient)
    except ServiceUnavailable:
        raise
    except _AttachmentFailed as error:
        metrics.batch_item_failed(JOB, error)
        return failure(row, ATTACHMENT_UNAVAILABLE), unreachable
    except (jinja2.TemplateError, ValueError, LookupError, TypeError) as error:
        metrics.batch_item_failed(JOB, _Internal(f"notification {row['id']}: {type(error).__name__}"))
        return failure(row, INTERNAL_ERROR), unreachable
    try:
        await asyncio.to_thread(session.send, message, recipient.address)
    except MailRejected as error:
        return Outcome("failed", error.code), unreachable
    except MailServerUnreachable as error:
        metrics.DEPENDENCY_UNAVAILABLE_TOTAL.labels(dependency=error.dependency).inc()
        log.warning("notifications: the mail server cannot be reached; this pass's rows are retried later")
        return failure(row, error.code), error
    except MailUnavailable as error:
        return failure(row, error.code), unreachable
    return Outcome("sent"), unreachable


class _AttachmentFailed(Exception):
    code = ATTACHMENT_UNAVAILABLE


class _Internal(Exception):
    code = INTERNAL_ERROR


async def _message(mailer: Mailer, public_url: str, row: dict[str, Any], recipient: Recipient) -> EmailMessage:
    kind = event_type(row["event_type"])
    values = rendering.context(
        kind.name,
        row["data"],
        public_url=public_url,
        name=recipient.name,
        recipient=row["recipient"],
        tenant_id=row["tenant_id"],
        partner_id=row["partner_id"],
    )
    rendered = rendering.render(kind.name, values)
    attachment = None
    if kind.attachment is not None:
        attachment = await _attachment(kind.attachment, row)
    message = EmailMessage()
    message["From"] = mailer.mail_from
    message["To"] = recipient.address
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(row["id"], mailer.domain)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to us
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    if attachment is not None:
        maintype, _slash, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
    return message


async def _attachment(kind: str, row: dict[str, Any]) -> attachments.Attachment:
    if row["attachment_id"] is None or row["tenant_id"] is None:
        raise _AttachmentFailed(f"notification {row['id']}: no {kind} named")
    try:
        return await attachments.produce(kind, row["tenant_id"], row["attachment_id"])
    except ServiceUnavailable:
        raise
    except attachments.NoProvider:
        raise _AttachmentFailed(f"nothing provides {kind} in this process") from None
    except Exception as error:
        raise _AttachmentFailed(f"the {kind} provider failed: {type(error).__name__}") from None


def _event_of(row: dict[str, Any]) -> repository.EventOf:
    """What names one occurrence: its type and key within its tenant or partner."""
    return row["tenant_id"], row["partner_id"], row["event_type"], row["event_key"]


async def _recipients(
    rows: list[dict[str, Any]],
) -> tuple[dict[int, Recipient], dict[repository.EventOf, set[str]]]:
    """Each claimed row's recipient as it stands now, and per event the addresses already sent to."""
    events = list(dict.fromkeys(_event_of(row) for row in rows))
    async with system_tx(SystemReason.NOTIFICATION_DELIVERY):
        siblings = await repository.sent_siblings(events)
        found = await repository.recipients_of([row["id"] for row in rows] + [row["id"] for row in siblings])
    contacts = await _billing_emails(row for row in found if row["recipient"] == BILLING_CONTACT)
    resolved = {
        row["id"]: _recipient(row, contacts)
        for row in found
        if row["recipient"] != BILLING_CONTACT or row["tenant_id"] in contacts
    }
    taken: dict[repository.EventOf, set[str]] = defaultdict(set)
    for sibling in siblings:
        address = resolved.get(sibling["id"], Recipient(None, None, "")).address
        if address:
            taken[_event_of(sibling)].add(address.strip().lower())
    return resolved, taken


def _recipient(row: dict[str, Any], contacts: dict[uuid.UUID, str | None]) -> Recipient:
    name = str(row["tenant_name"] if row["tenant_id"] is not None else row["partner_name"] or "")
    if row["recipient"] == BILLING_CONTACT:
        address = contacts.get(row["tenant_id"])
        return Recipient(address, None, name) if address else Recipient(None, NO_ADDRESS, name)
    if not row["user_email"] or row["user_status"] != "active":
        return Recipient(None, NO_ADDRESS, name)
    if not row["is_admin"]:
        return Recipient(None, NOT_AN_ADMIN, name)
    return Recipient(str(row["user_email"]), None, name)


async def _billing_emails(rows: Iterable[dict[str, Any]]) -> dict[uuid.UUID, str | None]:
    """Each tenant's billing email, decrypted; a tenant whose decryption fails on our side is left out (its rows
    fail this attempt), an OpenBao outage stops the pass."""
    sealed = {row["tenant_id"]: row["billing_email"] for row in rows}
    opened: dict[uuid.UUID, str | None] = {}
    for tenant_id, text in sealed.items():
        if not text:
            opened[tenant_id] = None
            continue
        try:
            (revealed,) = await billing_contact.reveal([{"id": tenant_id, "billing_email": text}])
        except ServiceUnavailable:
            raise  # OpenBao away: the pass stops (send_due gives the rows back)
        except Exception as error:
            metrics.batch_item_failed(JOB, _Internal(f"a billing email could not be decrypted: {type(error).__name__}"))
            continue
        opened[tenant_id] = revealed["billing_email"]
    return opened


async def _give_back(rows: list[dict[str, Any]]) -> None:
    """Best effort: with the database away too, the leases end on their own."""
    try:
        async with system_tx(SystemReason.NOTIFICATION_DELIVERY):
            await repository.release([(row["id"], row["attempts"]) for row in rows])
    except Exception as error:
        log.warning("notifications: claimed rows not given back (%s); their leases will end", type(error).__name__)
