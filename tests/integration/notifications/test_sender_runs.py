"""What bounds a sending run: one run empties the outbox (passes one after another, one SMTP connection per
pass), a pass hands back what it could not reach before half its lease, a row whose attempts ran out (its
worker died each time) is given up rather than taken forever, and one event key in two tenants is two events."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY

from controlplane.core.db import SystemReason, fetch, system_tx, tenant_tx
from controlplane.core.errors import DatabaseUnavailable
from controlplane.core.mail import Mailer
from controlplane.core.settings import Settings
from controlplane.devstack.mail_server import serve_in_thread
from controlplane.devstack.mail_store import MailStore
from tenants import service
from tenants.notifications import notify, repository, sender
from tests.integration._smtp import Recording, free_port
from tests.integration.conftest import staff_principal
from tests.integration.notifications._support import counted, people, queue, rows, send
from tests.unit.notifications.samples import SAMPLES


@pytest.fixture
def recording() -> Iterator[tuple[Recording, str]]:
    handler = Recording()
    port = free_port()
    controller = serve_in_thread(handler, "127.0.0.1", port)
    yield handler, f"smtp://127.0.0.1:{port}"
    controller.stop()


async def test_one_run_sends_the_whole_outbox_over_a_connection_per_pass(
    client: Any, settings: Settings, recording: tuple[Recording, str]
) -> None:
    handler, url = recording
    who = await people()
    async with tenant_tx(who.tenant_id):
        for number in range(100):  # 100 events, each to the billing contact and the admin
            await notify("invoice.paid", f"inv-{number}", SAMPLES["invoice.paid"], tenant_id=who.tenant_id)

    report = await sender.send_until_done(Mailer(url, settings.mail_from), settings.public_url)

    assert (report.claimed, report.sent) == (200, 200)
    assert len(handler.messages) == 200
    assert all(len(recipients) == 1 for _session, recipients in handler.messages)
    assert handler.connections() < 200 // sender.BATCH + 2  # about one per pass, not one per message
    assert {row["status"] for row in await rows()} == {"sent"}


async def test_a_pass_hands_back_what_it_has_not_reached_when_half_its_lease_has_passed(
    client: Any, settings: Settings, mailbox: MailStore
) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    await queue(who, "tenant.reactivated")
    ticks = itertools.count()

    def clock() -> float:  # each reading is a quarter of the lease later: the third row finds half of it gone
        return next(ticks) * sender.LEASE_SECONDS / 4

    report = await sender.send_due(Mailer.from_settings(settings), settings.public_url, clock=clock)

    assert (report.claimed, report.sent) == (4, 2)
    outbox = await rows()
    assert [(row["status"], row["attempts"]) for row in outbox] == [("sent", 1)] * 2 + [("pending", 0)] * 2
    assert all(row["due_in"] <= 0 for row in outbox[2:])  # due again at once, their attempt uncounted
    assert len(mailbox.messages()) == 2


async def test_a_row_whose_attempts_ran_out_is_abandoned_without_being_sent(
    client: Any, settings: Settings, mailbox: MailStore
) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    contact_row, admin_row = (row["id"] for row in await rows())
    # Taken seven times, never recorded: each pass that took it died (the row killed its worker).
    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch("update notifications set attempts = 7, next_attempt_at = now() where id = {}", admin_row)
    failed = counted("invoice.paid", "failed")

    report = await send(settings)

    assert (report.sent, report.failed) == (1, 1)
    assert [(row["id"], row["status"], row["attempts"], row["last_error"]) for row in await rows()] == [
        (contact_row, "sent", 1, None),
        (admin_row, "failed", 7, sender.ABANDONED),
    ]
    assert [str(message["To"]) for message in mailbox.messages()] == [who.billing_email]
    assert counted("invoice.paid", "failed") - failed == 1


async def _two_tenants_one_admin() -> tuple[uuid.UUID, uuid.UUID, str]:
    staff = staff_principal()
    admin_email = f"owner-{uuid.uuid4().hex[:8]}@acme.example"
    made = []
    for _ in range(2):
        slug = f"twin-{uuid.uuid4().hex[:8]}"
        tenant = await service.create_tenant(staff, service.NewTenant(name=slug, slug=slug, currency="EUR"))
        await service.add_member(staff, tenant.id, admin_email, "tenant_admin")
        made.append(tenant.id)
    return made[0], made[1], admin_email


@pytest.mark.parametrize("passes", [1, 2])
async def test_one_key_in_two_tenants_is_two_events_for_an_admin_of_both(
    client: Any, settings: Settings, mailbox: MailStore, passes: int
) -> None:
    first, second, admin_email = await _two_tenants_one_admin()
    for tenant_id in (first, second):  # the same key: keys are unique within a tenant only
        async with tenant_tx(tenant_id):
            await notify("invoice.paid", "inv-1", SAMPLES["invoice.paid"], tenant_id=tenant_id)
    if passes == 2:  # the second tenant's row comes in a later pass, after the first's is sent
        second_row = [row["id"] for row in await rows()][1]
        async with system_tx(SystemReason.STAFF_CHANGE):
            await fetch(
                "update notifications set next_attempt_at = now() + interval '1 hour' where id = {}", second_row
            )
        await send(settings)
        async with system_tx(SystemReason.STAFF_CHANGE):
            await fetch("update notifications set next_attempt_at = now() where id = {}", second_row)

    await send(settings)

    assert [(row["status"], row["last_error"]) for row in await rows()] == [("sent", None)] * 2
    assert [str(message["To"]) for message in mailbox.messages()] == [admin_email] * 2


async def test_an_outage_while_recording_hands_back_the_rows_not_yet_sent(
    client: Any, settings: Settings, mailbox: MailStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    await queue(who, "tenant.reactivated")

    async def database_away(*_args: Any, **_kwargs: Any) -> bool:
        raise DatabaseUnavailable()

    monkeypatch.setattr(repository, "record_outcome", database_away)
    with pytest.raises(DatabaseUnavailable):
        await send(settings)
    monkeypatch.undo()

    outbox = await rows()
    # The first was handed to the server and could not be recorded: leased, sent again after its lease (same
    # Message-ID). The others were never tried: due at once, their attempt uncounted.
    assert [(row["status"], row["attempts"]) for row in outbox] == [("pending", 1)] + [("pending", 0)] * 3
    assert outbox[0]["due_in"] > 0 and all(row["due_in"] <= 0 for row in outbox[1:])
    assert len(mailbox.messages()) == 1


async def test_a_stored_address_that_would_be_several_is_refused_not_split(
    client: Any, settings: Settings, mailbox: MailStore
) -> None:
    who = await people()
    # Written behind the API's back (the API refuses it): the sealed billing email names two addresses.
    await service.update_tenant(staff_principal(), who.tenant_id, {"billing_email": "me@evil.example,postmaster"})
    await queue(who, "invoice.paid")

    report = await send(settings)

    assert (report.sent, report.failed) == (1, 1)
    assert [(row["recipient"], row["status"], row["last_error"]) for row in await rows()] == [
        ("billing_contact", "failed", "mail_rejected"),
        (f"user:{who.admin_id}", "sent", None),
    ]
    assert [message["X-RcptTo"] for message in mailbox.messages()] == [who.admin_email]


def _oldest_pending() -> float | None:
    return REGISTRY.get_sample_value("controlplane_notifications_oldest_pending_seconds")


async def test_each_run_measures_how_long_the_oldest_pending_email_has_waited(
    client: Any, settings: Settings, mailbox: MailStore
) -> None:
    who = await people()
    await queue(who, "invoice.paid")
    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch("update notifications set created_at = now() - interval '2 hours'")
    closed = Mailer(f"smtp://127.0.0.1:{free_port()}", settings.mail_from)  # nothing listens: mail is not going out

    await sender.send_until_done(closed, settings.public_url)

    waited = _oldest_pending()
    assert waited is not None and 7200 <= waited < 7200 + 600

    async with system_tx(SystemReason.STAFF_CHANGE):
        await fetch("update notifications set next_attempt_at = now()")  # the server is back, the retry due
    await sender.send_until_done(Mailer.from_settings(settings), settings.public_url)
    assert _oldest_pending() == 0
    assert len(mailbox.messages()) == 2
