"""Request-scoped values that the service layer records (request id for audit events)."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def request_id_from(incoming: bytes) -> str:
    """The id a request is known by: the caller's `X-Request-ID` when it is short and printable, else a new one."""
    text = incoming.decode("latin-1")
    return text if 0 < len(text) <= 128 and text.isprintable() else uuid.uuid4().hex
