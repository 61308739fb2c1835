"""Where a tenant's webhooks may go, and sending one.

In production an endpoint is https and never an address inside our own network: the control plane would
otherwise POST wherever a tenant admin points it (server-side request forgery). The name is checked when the
endpoint is set and resolved again at every delivery, since DNS can change under it. Elsewhere (the dev stack,
tests) plain http and loopback are allowed, so a receiver on the same machine works.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

from controlplane.exceptions import InvalidInput

TIMEOUT_SECONDS = 5.0
MAX_ERROR_LENGTH = 500


class InvalidWebhookEndpoint(InvalidInput):
    code = "invalid_webhook_endpoint"
    title = "The webhook endpoint cannot be used"


def _internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def _resolves_internal(host: str) -> bool:
    try:
        return _internal(host)
    except ValueError:  # a name, not an address
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False  # not resolvable now: the delivery fails and is retried
    return any(_internal(str(address)) for address in addresses)


def check(url: str, *, production: bool) -> str:
    """The URL if a tenant may use it; `InvalidWebhookEndpoint` saying why not."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidWebhookEndpoint("the endpoint must be an absolute http(s) URL")
    if parts.username or parts.password:
        raise InvalidWebhookEndpoint("the endpoint must not carry credentials")
    if production and parts.scheme != "https":
        raise InvalidWebhookEndpoint("the endpoint must use https")
    if production and (parts.hostname == "localhost" or _resolves_internal(parts.hostname)):
        raise InvalidWebhookEndpoint("the endpoint must not be a private, loopback or link-local address")
    return url


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect could lead anywhere, past the address check: a 3xx is a failed attempt."""

    def redirect_request(self, *_args: object, **_kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True, slots=True)
class Sent:
    delivered: bool
    error: str | None  # why not, for the tenant to see (never a response body)


def post(url: str, body: bytes, headers: dict[str, str], *, production: bool) -> Sent:
    """One delivery attempt; a 2xx answer is delivered, anything else is retried later."""
    host = urlsplit(url).hostname or ""
    if production and _resolves_internal(host):
        return Sent(False, "the endpoint resolves to an internal address")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (checked above)
    try:
        with _OPENER.open(request, timeout=TIMEOUT_SECONDS) as response:  # nosec B310 - the URL is checked above
            return Sent(200 <= response.status < 300, None if response.status < 300 else f"HTTP {response.status}")
    except urllib.error.HTTPError as error:
        return Sent(False, f"HTTP {error.code}")
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Sent(False, f"{type(reason).__name__}: {reason}"[:MAX_ERROR_LENGTH])
