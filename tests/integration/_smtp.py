"""SMTP servers for tests (aiosmtpd, in a thread of the test process) that record what they were given."""

from __future__ import annotations

import socket
from typing import Any


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Recording:
    """Accepts everything; keeps (connection, envelope recipients) per message. aiosmtpd makes one session per
    connection, so the sessions seen count the connections. With `drop_reused`, a connection that already
    carried a message is closed when the next one starts (an idle timeout, a server restart)."""

    def __init__(self, *, drop_reused: bool = False, always_drop: bool = False) -> None:
        self.drop_reused = drop_reused
        self.always_drop = always_drop
        self.messages: list[tuple[Any, list[str]]] = []
        self.sessions: list[Any] = []

    def connections(self) -> int:
        return len({id(session) for session in self.sessions})

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if session not in self.sessions:
            self.sessions.append(session)
        if self.always_drop or (self.drop_reused and any(seen is session for seen, _rcpt in self.messages)):
            server.transport.close()
            return "421 4.4.2 closing the connection"
        envelope.mail_from = address
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append((session, list(envelope.rcpt_tos)))
        return "250 OK"
