"""The outbox sent through a real SMTP server (the stack's own, read back from its store), against real
PostgreSQL: once per event and recipient however many passes run, retried on the back-off when the server
defers or cannot be reached, failed for good when it refuses, skipped when nobody is left to tell."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from typing import Any

import pytest

from controlplane.core.errors import OpenBaoUnavailable
from controlplane.core.mail import Mailer
from controlplane.core.settings import Settings
from controlplane.devstack.mail_server import serve_in_thread
from controlplane.devstack.mail_store import MailStore
from tenants import service
from tenants.notifications import attachments, rendering, sender
from tenants.notifications.events import EVENTS, INVOICE_PDF, Audience
from tests.integration._smtp import free_port
from tests.integration.conftest import staff_principal
from tests.integration.notifications._support import (
    PARTNER_NAME,
    TENANT_NAME,
    counted,
    make_due,
    people,
    postpone,
    queue,
    rows,
    send,
)
from tests.unit.notifications.samples import EMAIL_EVENTS, INVOICE_ID, SUBJECT_HAS

PDF = b"%PDF-1.4\n% a tiny stand-in for the invoice\n%%EOF\n"


@pytest.fixture(autouse=True)
def _no_invoice_pdf_provider() -> Iterator[None]:
    """These tests bring their own providers (or none): the one the app registered is put back after each."""
    registered = attachments.registered(INVOICE_PDF)
    attachments.forget(INVOICE_PDF)
    yield
    if registered is not None:
        attachments.provide(INVOICE_PDF, registered)


@pytest.fixture
def invoice_pdf() -> Iterator[list[tuple[uuid.UUID, uuid.UUID]]]:
    """A tiny invoice PDF provider, as the composition root registers billing's; answers whom it served."""
    asked: list[tuple[uuid.UUID, uuid.UUID]] = []

    async def provide(tenant_id: uuid.UUID, attachment_id: uuid.UUID) -> tuple[str, str, bytes]:
        asked.append((tenant_id, attachment_id))
        return f"invoice-{attachment_id}.pdf", "application/pdf", PDF

    attachments.provide(INVOICE_PDF, provide)
    yield asked
    attachments.forget(INVOICE_PDF)


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


async def test_every_email_event_reaches_each_recipient_once_with_its_content(
    client: Any,
    settings: Settings,
    mailbox: MailStore,
    invoice_pdf: list[tuple[uuid.UUID, uuid.UUID]],
    report: Any,
) -> None:
    who = await people()
    expected: list[tuple[str, str]] = []
    for event in EMAIL_EVENTS:
        await queue(who, event)
        if EVENTS[event].audience == Audience.TENANT:
            expected += [(event, who.billing_email), (event, who.admin_email)]
        else:
            expected += [(event, who.partner_admin_email)]
    before = sum(counted(event, "sent") for event in EMAIL_EVENTS)

    first = await send(settings)
    again = await send(settings)

    assert (first.claimed, first.sent, first.retrying, first.failed, first.skipped) == (
        len(expected),
        len(expected),
        0,
        0,
        0,
    )
    assert again.claimed == 0
    outbox = {row["id"]: row for row in await rows()}
    assert {row["status"] for row in outbox.values()} == {"sent"}
    assert {row["attempts"] for row in outbox.values()} == {1}
    received = mailbox.messages()
    domain = settings.mail_from.split("@")[1].rstrip(">")
    delivered: list[tuple[str, str]] = []
    for message in received:
        notification_id = int(str(message["Message-ID"]).removeprefix("<notification-").split("@")[0])
        assert message["Message-ID"] == f"<notification-{notification_id}@{domain}>"
        event = outbox[notification_id]["event_type"]
        to = str(message["To"])
        assert str(message["X-RcptTo"]) == to  # the envelope's recipient is the header's
        delivered.append((event, to))
        assert message["From"] == settings.mail_from
        assert SUBJECT_HAS[event] in str(message["Subject"])
        name = TENANT_NAME if EVENTS[event].audience == Audience.TENANT else PARTNER_NAME
        assert name in _text(message)
        assert name.replace("&", "&amp;") in _html(message)
        assert settings.public_url + "/console" in _text(message)
        files = [
            (part.get_filename(), part.get_content_type(), part.get_content()) for part in message.iter_attachments()
        ]
        if event == "invoice.finalized":
            assert files == [(f"invoice-{INVOICE_ID}.pdf", "application/pdf", PDF)]
        else:
            assert files == []
    assert Counter(delivered) == Counter(expected)  # each event to each recipient, once
    assert invoice_pdf == [(who.tenant_id, uuid.UUID(INVOICE_ID))] * 2
    assert sum(counted(event, "sent") for event in EMAIL_EVENTS) - before == len(expected)
    report(
        f"notifications: {len(EMAIL_EVENTS)} email events, {len(received)} emails read back from the dev SMTP "
        f"server, each to its recipient once; a second pass sent {again.sent}"
    )


async def test_two_passes_at_once_send_each_message_once(
    client: Any, settings: Settings, mailbox: MailStore, report: Any
) -> None:
    for _tenant in range(3):
        who = await people()
        await queue(who, "invoice.paid")
        await queue(who, "tenant.reactivated")
        await queue(who, "partner.checkpoint_approved")

    reports = await asyncio.gather(send(settings), send(settings), send(settings))
    afterwards = await send(settings)

    assert sum(report.sent for report in reports) == 3 * 5
    assert afterwards.claimed == 0
    ids = [str(message["Message-ID"]) for message in mailbox.messages()]
    assert len(ids) == len(set(ids)) == 3 * 5
    assert {row["status"] for row in await rows()} == {"sent"}
    report(f"notifications: 3 passes at once sent {len(ids)} emails, {len(ids) - len(set(ids))} twice")


class Deferring:
    """An SMTP server that answers 451 at one step: RCPT or DATA."""

    def __init__(self, step: str) -> None:
        self.step = step

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.step == "RCPT":
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "451 4.3.0 try again later" if self.step == "DATA" else "250 OK"


class Refusing:
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        return f"550 5.1.1 <{address}>: no such user here"


@pytest.fixture
async def failing_server(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """The SMTP_URL of a server that fails as the test's parameter says: 451 at RCPT, 451 at DATA, or no
    server at all (a closed port)."""
    port = free_port()
    if request.param == "closed":
        yield f"smtp://127.0.0.1:{port}"
        return
    controller = serve_in_thread(Deferring(request.param), "127.0.0.1", port)
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


@pytest.mark.parametrize("failing_server", ["RCPT", "DATA", "closed"], indirect=True)
async def test_a_failing_server_is_retried_on_the_back_off_then_given_up(
    client: Any,
    settings: Settings,
    mailbox: MailStore,
    failing_server: str,
    report: Any,
    request: pytest.FixtureRequest,
) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    mailer = Mailer(failing_server, settings.mail_from)
    retrying, failed = counted("invoice.paid", "retrying"), counted("invoice.paid", "failed")

    for attempt, pause in enumerate(sender.BACKOFF_SECONDS, start=1):
        outcome = await send(settings, mailer)
        assert (outcome.claimed, outcome.retrying) == (2, 2)
        outbox = await rows()
        assert [(row["status"], row["attempts"], row["last_error"]) for row in outbox] == [
            ("pending", attempt, "mail_unavailable")
        ] * 2
        # Due again after the pause for this attempt (give or take the test's own running time).
        assert all(pause - 60 < row["due_in"] <= pause for row in outbox)
        assert (await send(settings, mailer)).claimed == 0  # not before
        await make_due()

    last = await send(settings, mailer)

    assert (last.claimed, last.failed) == (2, 2)
    outbox = await rows()
    assert [(row["status"], row["attempts"], row["last_error"]) for row in outbox] == [
        ("failed", len(sender.BACKOFF_SECONDS) + 1, "mail_unavailable")
    ] * 2
    assert all(row["failed_at"] is not None and row["due_in"] is None for row in outbox)
    assert (await send(settings, mailer)).claimed == 0
    assert counted("invoice.paid", "retrying") - retrying == 2 * len(sender.BACKOFF_SECONDS)
    assert counted("invoice.paid", "failed") - failed == 2
    assert mailbox.messages() == []
    report(
        f"notifications: SMTP failing ({request.node.callspec.params['failing_server']}): 2 emails tried "
        f"{len(sender.BACKOFF_SECONDS) + 1} times "
        "each on the back-off, then marked failed"
    )


async def test_a_refused_recipient_fails_at_once(client: Any, settings: Settings, mailbox: MailStore) -> None:
    who = await people()
    await queue(who, "tenant.suspended")
    port = free_port()
    controller = serve_in_thread(Refusing(), "127.0.0.1", port)
    failed = counted("tenant.suspended", "failed")
    try:
        report = await send(settings, Mailer(f"smtp://127.0.0.1:{port}", settings.mail_from))
    finally:
        controller.stop()

    assert (report.claimed, report.failed) == (2, 2)
    assert [(row["status"], row["attempts"], row["last_error"]) for row in await rows()] == [
        ("failed", 1, "mail_rejected")
    ] * 2
    assert counted("tenant.suspended", "failed") - failed == 2


async def test_a_recipient_gone_since_is_skipped(client: Any, settings: Settings, mailbox: MailStore) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    await queue(who, "reseller.statement_ready")
    staff = staff_principal()
    await service.update_tenant(staff, who.tenant_id, {"billing_email": None})
    # An admin made after the event was queued is not told of it; the one demoted since is no longer.
    await service.add_member(staff, who.tenant_id, f"new-{who.admin_email}", "tenant_admin")
    await service.change_member_role(staff, who.tenant_id, who.admin_id, "tenant_member")
    skipped = counted("invoice.paid", "skipped")

    report = await send(settings)

    assert (report.claimed, report.sent, report.skipped) == (3, 1, 2)
    assert [(row["event_type"], row["status"], row["last_error"]) for row in await rows()] == [
        ("invoice.paid", "skipped", "no_address"),
        ("invoice.paid", "skipped", "not_an_admin"),
        ("reseller.statement_ready", "sent", None),
    ]
    assert [str(message["To"]) for message in mailbox.messages()] == [who.partner_admin_email]
    assert counted("invoice.paid", "skipped") - skipped == 2


async def test_one_address_gets_one_email_per_event(client: Any, settings: Settings, mailbox: MailStore) -> None:
    shared = f"owner-{uuid.uuid4().hex[:8]}@acme.example"
    who = await people(billing_email=shared.upper(), admin_email=shared)
    await queue(who, "invoice.paid")
    await queue(who, "tenant.reactivated")
    contact_row, admin_row, *_ = [row["id"] for row in await rows()]
    await postpone([admin_row])  # the admin's row of invoice.paid comes in a later pass

    await send(settings)
    await make_due()
    later = await send(settings)

    assert (later.claimed, later.skipped) == (1, 1)
    assert [(row["event_type"], row["recipient"], row["status"], row["last_error"]) for row in await rows()] == [
        ("invoice.paid", "billing_contact", "sent", None),
        ("invoice.paid", f"user:{who.admin_id}", "skipped", "duplicate_address"),
        ("tenant.reactivated", "billing_contact", "sent", None),
        ("tenant.reactivated", f"user:{who.admin_id}", "skipped", "duplicate_address"),
    ]
    assert sorted(str(message["Subject"]) for message in mailbox.messages()) == [
        f"{TENANT_NAME} is active again",
        f"{TENANT_NAME}: payment received for invoice ACME-000042",
    ]
    assert contact_row < admin_row


async def test_a_missing_attachment_fails_the_attempt_and_the_next_one_carries_it(
    client: Any, settings: Settings, mailbox: MailStore
) -> None:
    who = await people()
    await queue(who, "invoice.finalized")

    without = await send(settings)

    assert (without.claimed, without.retrying) == (2, 2)
    assert {(row["status"], row["last_error"]) for row in await rows()} == {("pending", "attachment_unavailable")}
    assert mailbox.messages() == []

    async def provide(tenant_id: uuid.UUID, attachment_id: uuid.UUID) -> tuple[str, str, bytes]:
        return "invoice.pdf", "application/pdf", PDF

    attachments.provide(INVOICE_PDF, provide)
    try:
        await make_due()
        carried = await send(settings)
    finally:
        attachments.forget(INVOICE_PDF)

    assert carried.sent == 2
    assert {(row["status"], row["attempts"]) for row in await rows()} == {("sent", 2)}
    assert all([part.get_filename() for part in m.iter_attachments()] == ["invoice.pdf"] for m in mailbox.messages())


async def test_an_outage_stops_the_pass_and_gives_the_rows_back_uncounted(
    client: Any, settings: Settings, mailbox: MailStore
) -> None:
    who = await people()
    await queue(who, "invoice.finalized")

    async def provide(tenant_id: uuid.UUID, attachment_id: uuid.UUID) -> tuple[str, str, bytes]:
        raise OpenBaoUnavailable()

    attachments.provide(INVOICE_PDF, provide)
    try:
        with pytest.raises(OpenBaoUnavailable):
            await send(settings)
    finally:
        attachments.forget(INVOICE_PDF)

    outbox = await rows()
    assert [(row["status"], row["attempts"], row["last_error"]) for row in outbox] == [("pending", 0, None)] * 2
    assert all(row["due_in"] <= 0 for row in outbox)
    assert mailbox.messages() == []


async def test_a_row_that_fails_on_our_side_is_retried_and_stops_none_of_the_others(
    client: Any, settings: Settings, mailbox: MailStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    await queue(who, "tenant.reactivated")
    await queue(who, "partner.checkpoint_approved")
    render = rendering.render

    def broken(event: str, values: Any) -> rendering.RenderedEmail:
        if event == "invoice.paid":  # a template naming a value its event does not carry
            return render(event, {key: value for key, value in values.items() if key != "amount_paid"})
        if event == "partner.checkpoint_approved":
            raise RuntimeError("a bug of ours")
        return render(event, values)

    monkeypatch.setattr(rendering, "render", broken)

    report = await send(settings)

    assert (report.claimed, report.sent, report.retrying) == (5, 2, 3)
    assert [(row["event_type"], row["status"], row["last_error"]) for row in await rows()] == [
        ("invoice.paid", "pending", "internal_error"),
        ("invoice.paid", "pending", "internal_error"),
        ("tenant.reactivated", "sent", None),
        ("tenant.reactivated", "sent", None),
        ("partner.checkpoint_approved", "pending", "internal_error"),
    ]
    assert len(mailbox.messages()) == 2
