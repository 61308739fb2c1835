"""Email through SMTP: built messages handed to the mail server, its answers translated at this boundary.

Each message goes to exactly one envelope recipient, named by the caller (never read from its headers), which
must be one bare address (`is_one_address`): a stored `a@x.example,b@y.example` is refused, not split. A
`MailSession` carries many messages over one connection (a sending pass), made again once when the server has
dropped it since the last message.

`SMTP_URL` names the server: `smtp://[user:pass@]host[:port]` (plain, port 25), `smtp://...?starttls=true`
(upgraded with STARTTLS, port 587) or `smtps://...` (TLS from the first byte, port 465); user and password are
percent-encoded. `MAIL_FROM` is the sender (`Name <address>` or a bare address); its domain names the
messages (`Message-ID`).

What the server answers becomes one of two errors, and nothing of smtplib leaves this module:
- `MailUnavailable` (`mail_unavailable`, a `ServiceUnavailable`): try again later. The server cannot be
  reached, timed out, dropped the connection, refused our sender or our login (our configuration, which a
  person fixes), or answered 4xx. `MailServerUnreachable` is the part of it where no conversation took place.
- `MailRejected` (`mail_rejected`): the server refused the recipient or the message for good (5xx), the
  recipient is not exactly one address, or it is an international address and the server does not offer
  SMTPUTF8 (it never will take it).
Neither carries the server's reply text: it often repeats the address. Addresses and bodies are never logged.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parseaddr
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from controlplane.core.errors import DomainError, ServiceUnavailable

if TYPE_CHECKING:
    from controlplane.core.settings import Settings

DEFAULT_TIMEOUT_SECONDS = 10.0
_SCHEMES = {"smtp", "smtps"}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class MailUnavailable(ServiceUnavailable):
    code = "mail_unavailable"
    title = "The mail server is unavailable"
    dependency = "smtp"
    retry_after_seconds = 60


class MailServerUnreachable(MailUnavailable):
    """No conversation with the server at all (refused, timed out, TLS failed): every message would fail alike."""


class MailRejected(DomainError):
    code = "mail_rejected"
    title = "The mail server refused the message for good"


@dataclass(frozen=True, slots=True)
class SmtpEndpoint:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str = ""
    password: str = ""

    @property
    def encrypted(self) -> bool:
        return self.implicit_tls or self.starttls


def parse_smtp_url(url: str) -> SmtpEndpoint:
    """The server `url` names; ValueError (without the password) when it names none."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("SMTP_URL is not a URL") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("SMTP_URL names no host")
    if parts.path not in {"", "/"}:
        raise ValueError("SMTP_URL takes no path")
    query = parse_qs(parts.query, keep_blank_values=True)
    if set(query) - {"starttls"}:
        raise ValueError("SMTP_URL takes only the query parameter starttls")
    flag = (query.get("starttls") or ["false"])[-1].lower()
    if flag not in _TRUE | _FALSE:
        raise ValueError("SMTP_URL's starttls must be true or false")
    implicit_tls, starttls = parts.scheme == "smtps", flag in _TRUE
    if implicit_tls and starttls:
        raise ValueError("SMTP_URL: smtps:// is TLS already; starttls=true is for smtp://")
    default_port = 465 if implicit_tls else 587 if starttls else 25
    return SmtpEndpoint(
        host=parts.hostname,
        port=port or default_port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def sender_address(mail_from: str) -> str:
    """The bare address of `MAIL_FROM`; ValueError when it holds none."""
    if "\n" in mail_from or "\r" in mail_from:
        raise ValueError("MAIL_FROM must be one line")
    _name, address = parseaddr(mail_from)
    local, _at, domain = address.rpartition("@")
    if not local or "." not in domain.strip(".") or " " in address:
        raise ValueError("MAIL_FROM must be an address (`name@example.com` or `Name <name@example.com>`)")
    return address


# Characters that make one stored string several addresses, a display name or a comment when parsed.
_NOT_IN_AN_ADDRESS = frozenset(',;:<>"()[]\\')


def is_one_address(text: str) -> bool:
    """Whether `text` is exactly one bare address (`local@domain`): what a header parser reads from it is itself,
    and nothing in it could turn it into a list, a display name or a comment."""
    if not text or any(char in _NOT_IN_AN_ADDRESS or char.isspace() or ord(char) < 32 for char in text):
        return False
    local, _at, domain = text.rpartition("@")
    return bool(local) and bool(domain) and "@" not in local and parseaddr(text)[1] == text


class Mailer:
    """Hands built messages to the SMTP server: `session()` keeps one connection for many messages (a sending
    pass), `send` is one message on a connection of its own."""

    def __init__(self, smtp_url: str, mail_from: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        self.endpoint = parse_smtp_url(smtp_url)
        self.mail_from = mail_from
        self.sender = sender_address(mail_from)
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        return cls(settings.smtp_url, settings.mail_from)

    @property
    def domain(self) -> str:
        """The sender's domain, which names the messages (`Message-ID`)."""
        return self.sender.rpartition("@")[2].lower()

    def session(self) -> MailSession:
        """A connection kept open for several messages (opened at the first, closed by `close` or `with`)."""
        return MailSession(self)

    def send(self, message: EmailMessage, recipient: str) -> None:
        """`message` to `recipient` alone, on a connection of its own (blocking: call it in a thread)."""
        with self.session() as session:
            session.send(message, recipient)

    def connect(self) -> smtplib.SMTP:
        endpoint = self.endpoint
        context = ssl.create_default_context()
        try:
            smtp: smtplib.SMTP
            if endpoint.implicit_tls:
                smtp = smtplib.SMTP_SSL(endpoint.host, endpoint.port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(endpoint.host, endpoint.port, timeout=self.timeout)
        except (smtplib.SMTPException, OSError) as error:
            raise MailServerUnreachable(f"the mail server cannot be reached: {type(error).__name__}") from None
        try:
            if endpoint.starttls:
                smtp.starttls(context=context)
            if endpoint.username:
                smtp.login(endpoint.username, endpoint.password)
        except smtplib.SMTPNotSupportedError:
            smtp.close()
            raise MailUnavailable("the mail server does not offer STARTTLS") from None
        except smtplib.SMTPAuthenticationError as error:
            smtp.close()
            raise MailUnavailable(f"the mail server refused the login ({error.smtp_code})") from None
        except (smtplib.SMTPException, OSError) as error:
            smtp.close()
            raise MailUnavailable(f"the mail server failed: {type(error).__name__}") from None
        return smtp


class MailSession:
    """One SMTP connection for many messages, each to exactly one envelope recipient. Opened at the first
    message; a connection the server dropped since the last one (an idle timeout, a restart: the connection
    closed, or a 421) is made again once for the message at hand. After a failure other than a refusal the
    connection is closed, so the next message starts on a fresh one. Blocking: use it from one thread at a
    time (asyncio.to_thread)."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._smtp: smtplib.SMTP | None = None
        self._carried = 0  # messages the open connection accepted

    def __enter__(self) -> MailSession:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Say goodbye (the messages' fates are decided already, so an odd answer to QUIT changes nothing)."""
        smtp, self._smtp, self._carried = self._smtp, None, 0
        if smtp is not None:
            _quit(smtp)

    def send(self, message: EmailMessage, recipient: str) -> None:
        """Hand `message` to the server for `recipient` alone, whatever its headers say. Returns when the server
        has accepted it; raises `MailUnavailable` or `MailRejected` otherwise."""
        if not is_one_address(recipient):
            # Never split into several (`a@x.example,b@y.example`): the message is for one person.
            raise MailRejected("the recipient is not exactly one address")
        reused = self._smtp is not None and self._carried > 0
        try:
            self._send(message, recipient)
        except _Dropped:
            self._abandon()
            if not reused:
                raise MailUnavailable("the mail server closed the connection") from None
            try:  # once: the server ended a connection that had sat idle, not this message
                self._send(message, recipient)
            except _Dropped:
                self._abandon()
                raise MailUnavailable("the mail server closed the connection") from None
        self._carried += 1

    def _send(self, message: EmailMessage, recipient: str) -> None:
        if self._smtp is None:
            self._smtp = self.mailer.connect()
        try:
            refused = self._smtp.send_message(message, from_addr=self.mailer.sender, to_addrs=[recipient])
        except smtplib.SMTPServerDisconnected:
            raise _Dropped() from None
        except smtplib.SMTPRecipientsRefused as error:  # the connection stays usable (smtplib sent RSET)
            raise _by_code([code for code, _reply in error.recipients.values()], "the recipient") from None
        except smtplib.SMTPNotSupportedError:
            # An international address (SMTPUTF8) the server cannot take: it never will, so not retried.
            raise MailRejected("the mail server cannot take an international address") from None
        except smtplib.SMTPResponseException as error:
            if error.smtp_code == 421:  # "closing the connection"
                raise _Dropped() from None
            if isinstance(error, smtplib.SMTPSenderRefused):
                # The server will not take mail from MAIL_FROM: our configuration, not the recipient's fault.
                raise MailUnavailable(f"the mail server refused the sender ({error.smtp_code})") from None
            raise _by_code([error.smtp_code], "the message") from None  # DATA refused, ...
        except (smtplib.SMTPException, OSError) as error:  # reset, timed out, TLS
            self._abandon()
            raise MailUnavailable(f"the mail server failed: {type(error).__name__}") from None
        if refused:
            raise _by_code([code for code, _reply in refused.values()], "the recipient")

    def _abandon(self) -> None:
        smtp, self._smtp, self._carried = self._smtp, None, 0
        if smtp is not None:
            smtp.close()


class _Dropped(Exception):
    """The server closed the connection (or said it would)."""


def _quit(smtp: smtplib.SMTP) -> None:
    """Say goodbye; the message's fate is decided already, so an odd answer to QUIT changes nothing."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _by_code(codes: list[int], what: str) -> DomainError:
    """5xx for any: refused for good; otherwise (4xx, or no code) a temporary failure."""
    permanent = [code for code in codes if 500 <= code < 600]
    if permanent:
        return MailRejected(f"the mail server refused {what} ({permanent[0]})")
    return MailUnavailable(f"the mail server deferred {what} ({codes[0] if codes else 'no code'})")
