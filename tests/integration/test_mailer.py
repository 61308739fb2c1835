"""The mailer against real SMTP servers (aiosmtpd in a thread): one connection carries a pass's messages, a
connection the server dropped is made again once, each message goes to exactly the one envelope recipient it
names, and what a server can never take is refused for good rather than retried."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from controlplane.core.mail import Mailer, MailRejected, MailUnavailable
from controlplane.devstack.mail_server import serve_in_thread
from tests.integration._smtp import Recording, free_port

FROM = "Control plane <no-reply@cp.example>"


@pytest.fixture
def smtp() -> Iterator[tuple[Recording, str]]:
    handler = Recording()
    port = free_port()
    controller = serve_in_thread(handler, "127.0.0.1", port)
    yield handler, f"smtp://127.0.0.1:{port}"
    controller.stop()


def _message(to: str, subject: str = "hello") -> EmailMessage:
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = to
    message["Subject"] = subject
    message.set_content("body")
    return message


def test_a_session_carries_many_messages_on_one_connection(smtp: tuple[Recording, str]) -> None:
    handler, url = smtp
    with Mailer(url, FROM).session() as session:
        for n in range(5):
            session.send(_message(f"r{n}@example.com"), f"r{n}@example.com")
    assert [rcpt for _session, rcpt in handler.messages] == [[f"r{n}@example.com"] for n in range(5)]
    assert handler.connections() == 1


def test_a_dropped_connection_is_made_again_once() -> None:
    handler = Recording(drop_reused=True)
    port = free_port()
    controller = serve_in_thread(handler, "127.0.0.1", port)
    try:
        with Mailer(f"smtp://127.0.0.1:{port}", FROM).session() as session:
            for n in range(3):
                session.send(_message(f"r{n}@example.com"), f"r{n}@example.com")
        assert len(handler.messages) == 3  # each drop cost a reconnection, not a message
        assert handler.connections() == 3

        handler.always_drop = True  # a server that drops every time: once again, then the message fails
        with Mailer(f"smtp://127.0.0.1:{port}", FROM).session() as session, pytest.raises(MailUnavailable):
            session.send(_message("x@example.com"), "x@example.com")
        assert len(handler.messages) == 3
    finally:
        controller.stop()


def test_a_message_goes_to_the_one_envelope_recipient_named_whatever_its_header_says(
    smtp: tuple[Recording, str],
) -> None:
    handler, url = smtp
    Mailer(url, FROM).send(_message("victim@a.example, other@b.example"), "victim@a.example")
    assert [rcpt for _session, rcpt in handler.messages] == [["victim@a.example"]]


@pytest.mark.parametrize(
    "recipient",
    [
        "me@evil.example,postmaster@cp.example",
        "me@evil.example, postmaster",
        "Me <me@evil.example>",
        '"me,postmaster"@evil.example',
        "me@evil.example postmaster@cp.example",
        "nobody",
        "",
    ],
)
def test_a_recipient_that_is_not_exactly_one_address_is_refused_for_good(
    smtp: tuple[Recording, str], recipient: str
) -> None:
    handler, url = smtp
    with pytest.raises(MailRejected):
        Mailer(url, FROM).send(_message(recipient or "x@example.com"), recipient)
    assert handler.messages == []


def test_an_international_address_on_a_server_without_smtputf8_is_refused_for_good() -> None:
    handler = Recording()
    port = free_port()
    from aiosmtpd.controller import Controller

    controller = Controller(handler, hostname="127.0.0.1", port=port, enable_SMTPUTF8=False)
    controller.start()
    try:
        with pytest.raises(MailRejected):
            Mailer(f"smtp://127.0.0.1:{port}", FROM).send(_message("josé@example.com"), "josé@example.com")
    finally:
        controller.stop()
    assert handler.messages == []


def test_an_international_address_goes_to_a_server_with_smtputf8(smtp: tuple[Recording, str]) -> None:
    handler, url = smtp  # the dev server offers SMTPUTF8
    Mailer(url, FROM).send(_message("josé@example.com"), "josé@example.com")
    assert [rcpt for _session, rcpt in handler.messages] == [["josé@example.com"]]
