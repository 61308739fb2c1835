"""The dev mail server's store: each message received kept as one `.eml` file in a folder.

A file's name is its id: the UTC moment it arrived and a counter (`20261204T024001.123456Z-000001`), so names
sort by arrival and `ls` shows them in order. The envelope (who sent it, to whom it was delivered) is written
as two headers in front of the message, `X-MailFrom` and `X-RcptTo`, as aiosmtpd's own `Message` handler does.
Nothing else is kept: listing reads the headers of each file (a dev store holds few messages).
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path

SUFFIX = ".eml"
_ID = re.compile(r"^\d{8}T\d{6}\.\d{6}Z-\d{6}$")
_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class StoredMail:
    id: str
    received_at: datetime
    mail_from: str
    rcpt_to: tuple[str, ...]
    to: str
    subject: str


class MailStore:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def save(self, mail_from: str, rcpt_to: Sequence[str], content: bytes) -> str:
        """Keep one message (its bytes as received) and answer its id; atomic, readable by the owner only."""
        self.folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(UTC)
        mail_id = f"{now:%Y%m%dT%H%M%S.%f}Z-{next(_counter) % 1_000_000:06d}"
        envelope = f"X-MailFrom: {_one_line(mail_from)}\r\nX-RcptTo: {', '.join(map(_one_line, rcpt_to))}\r\n"
        path = self.folder / f"{mail_id}{SUFFIX}"
        tmp = self.folder / f".{mail_id}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(envelope.encode() + content)
        os.replace(tmp, path)
        return mail_id

    def ids(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(path.stem for path in self.folder.glob(f"*{SUFFIX}") if _ID.match(path.stem))

    def summaries(self) -> list[StoredMail]:
        """Every stored message's envelope and headers, oldest first."""
        return [self._summary(mail_id) for mail_id in self.ids()]

    def read(self, mail_id: str) -> EmailMessage:
        """The whole message, parsed; LookupError when there is no such id."""
        with self._path(mail_id).open("rb") as data:
            message = BytesParser(policy=policy.default).parse(data)
        assert isinstance(message, EmailMessage)
        return message

    def messages(self) -> list[EmailMessage]:
        """Every stored message, parsed, oldest first."""
        return [self.read(mail_id) for mail_id in self.ids()]

    def clear(self) -> None:
        for mail_id in self.ids():
            (self.folder / f"{mail_id}{SUFFIX}").unlink(missing_ok=True)

    def _path(self, mail_id: str) -> Path:
        path = self.folder / f"{mail_id}{SUFFIX}"
        if not _ID.match(mail_id) or not path.is_file():  # the pattern also keeps `../` out
            raise LookupError(f"no message {mail_id!r} in {self.folder}")
        return path

    def _summary(self, mail_id: str) -> StoredMail:
        with self._path(mail_id).open("rb") as data:
            headers = BytesHeaderParser(policy=policy.default).parse(data)
        stamp, _sep, _n = mail_id.partition("Z-")
        return StoredMail(
            id=mail_id,
            received_at=datetime.strptime(stamp, "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC),
            mail_from=str(headers.get("X-MailFrom", "")),
            rcpt_to=tuple(part.strip() for part in str(headers.get("X-RcptTo", "")).split(",") if part.strip()),
            to=str(headers.get("To", "")),
            subject=str(headers.get("Subject", "")),
        )


def _one_line(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text)
