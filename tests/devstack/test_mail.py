"""The dev mail server keeps each message it accepts as an .eml file, in arrival order, and
`controlplane devstack mail` lists them and shows one (headers, text, attachments by name and size)."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner

from controlplane.core.mail import Mailer
from controlplane.devstack.cli import devstack
from controlplane.devstack.mail_server import StoringHandler, serve_in_thread
from controlplane.devstack.mail_store import MailStore
from tests.integration._smtp import free_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, Mailer]]:
    """A dev stack root whose mail server runs (in a thread, the handler the dev stack's process uses)."""
    store = MailStore(tmp_path / "mail")
    port = free_port()
    controller = serve_in_thread(StoringHandler(store), "127.0.0.1", port)
    try:
        yield tmp_path, Mailer(f"smtp://127.0.0.1:{port}", "Control plane <no-reply@controlplane.localhost>")
    finally:
        controller.stop()


def _message(to: str, subject: str, *, attachment: bytes | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Control plane <no-reply@controlplane.localhost>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@controlplane.localhost>"
    message.set_content(f"Text of {subject}.\nSecond line.")
    message.add_alternative(f"<p>HTML of {subject}</p>", subtype="html")
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="pdf", filename="invoice-42.pdf")
    return message


def test_messages_are_kept_in_arrival_order_and_listed(served: tuple[Path, Mailer]) -> None:
    root, mailer = served
    for number in range(12):
        mailer.send(_message(f"person{number}@example.com", f"Message {number:02d}"), f"person{number}@example.com")

    store = MailStore(root / "mail")
    assert [mail.subject for mail in store.summaries()] == [f"Message {number:02d}" for number in range(12)]
    assert sorted(path.name for path in (root / "mail").glob("*.eml")) == [f"{i}.eml" for i in store.ids()]
    assert all((root / "mail" / f"{i}.eml").stat().st_mode & 0o777 == 0o600 for i in store.ids())

    listed = CliRunner().invoke(devstack, ["mail", "--root", str(root)])

    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 12
    first = lines[0].split("  ")
    assert first[0] == store.ids()[0] and first[2:] == ["person0@example.com", "Message 00"]


def test_one_message_is_shown_with_its_text_and_attachments(served: tuple[Path, Mailer]) -> None:
    root, mailer = served
    mailer.send(_message("ada@example.com", "Invoice 42", attachment=b"%PDF-1.4 tiny"), "ada@example.com")
    (mail_id,) = MailStore(root / "mail").ids()

    shown = CliRunner().invoke(devstack, ["mail", "--root", str(root), "show", mail_id])

    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines() == [
        "From: Control plane <no-reply@controlplane.localhost>",
        "To: ada@example.com",
        "Subject: Invoice 42",
        "Message-ID: <Invoice-42@controlplane.localhost>",
        "",
        "Text of Invoice 42.",
        "Second line.",
        "attachment: invoice-42.pdf (application/pdf, 13 bytes)",
    ]


def test_an_unknown_or_crafted_id_is_refused_and_an_empty_store_says_so(tmp_path: Path) -> None:
    (tmp_path / "mail").mkdir()
    (tmp_path / "secret.eml").write_text("Subject: not in the store\n\nsecret\n")
    for mail_id in ("20990101T000000.000000Z-000001", "../secret", "secret"):
        shown = CliRunner().invoke(devstack, ["mail", "--root", str(tmp_path), "show", mail_id])
        assert shown.exit_code == 1 and "no message" in shown.output
    listed = CliRunner().invoke(devstack, ["mail", "--root", str(tmp_path)])
    assert listed.exit_code == 0 and listed.output.startswith("no messages in")
