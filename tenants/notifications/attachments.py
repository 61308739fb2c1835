"""What an email carries, produced when it is sent: one provider per attachment kind (`events.EventType.attachment`).

The composition root registers them (the invoice PDF is billing's, which tenants may not import):

    attachments.provide(INVOICE_PDF, invoice_pdf)   # async (tenant_id, attachment_id) -> (filename, type, bytes)

A kind with no provider, or a provider that fails, fails that email's attempt (`attachment_unavailable`): it is
tried again on the back-off, never sent without its attachment.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Provider = Callable[[uuid.UUID, uuid.UUID], Awaitable[tuple[str, str, bytes]]]

_providers: dict[str, Provider] = {}


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str  # maintype/subtype
    content: bytes


class NoProvider(LookupError):
    """Nothing produces this kind of attachment in this process."""


def provide(kind: str, provider: Provider) -> None:
    """Register (or replace) the provider of `kind`."""
    _providers[kind] = provider


def forget(kind: str) -> None:
    _providers.pop(kind, None)


def registered(kind: str) -> Provider | None:
    return _providers.get(kind)


async def produce(kind: str, tenant_id: uuid.UUID, attachment_id: uuid.UUID) -> Attachment:
    provider = _providers.get(kind)
    if provider is None:
        raise NoProvider(kind)
    filename, content_type, content = await provider(tenant_id, attachment_id)
    if "/" not in content_type or not filename or "\n" in filename or "\r" in filename:
        raise ValueError(f"the {kind} provider answered an unusable filename or content type")
    return Attachment(filename, content_type, bytes(content))
