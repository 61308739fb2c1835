"""Where a tenant's webhooks may go, and sending one.

In production an endpoint is https and never an address inside our own network: the control plane would
otherwise POST wherever a tenant admin points it (server-side request forgery). An address is allowed only
when it is global (`ipaddress.is_global`: not private, loopback, link-local, carrier-grade NAT 100.64.0.0/10,
reserved ...), and so is every IPv4 address an IPv6 one carries (mapped, 6to4, Teredo, NAT64). The name is
checked when the endpoint is set and resolved again at every delivery, since DNS can change under it; a
delivery resolves it once, checks every address, and connects to the address it checked (sending the name as
`Host` and as TLS SNI, and verifying the certificate for the name), so a second lookup cannot rebind it
elsewhere. Elsewhere (the dev stack, tests) plain http and loopback are allowed, so a receiver on the same
machine works.

Host names are plain ASCII: letters, digits and hyphens in labels of at most 63 characters (an
internationalized name in its `xn--` form), so the name checked is the name connected to.

A failed delivery records a coarse reason only (`unreachable`, `timeout`, `tls`, `http_3xx`, `http_4xx`,
`http_5xx`): finer detail (connection refused rather than timed out) would turn the endpoint into a port
scanner of whatever it points at.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from controlplane.core.errors import InvalidInput

TIMEOUT_SECONDS = 5.0
MAX_HOST_LENGTH = 253
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

UNREACHABLE = "unreachable"
TIMEOUT = "timeout"
TLS = "tls"


class InvalidWebhookEndpoint(InvalidInput):
    code = "invalid_webhook_endpoint"
    title = "The webhook endpoint cannot be used"


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# IPv6 prefixes whose last 32 bits are an IPv4 address that a translator or the stack itself reaches: NAT64
# (RFC 6052 well-known, RFC 8215 local-use) and the deprecated IPv4-compatible form.
_IPV4_IN_LAST_32_BITS = tuple(ipaddress.ip_network(prefix) for prefix in ("64:ff9b::/96", "64:ff9b:1::/48", "::/96"))


def _addresses_reached(ip: IpAddress) -> list[IpAddress]:
    """The address itself and every IPv4 address it carries (mapped, 6to4, Teredo, NAT64, compatible):
    `is_global` judges an IPv6 address by its own prefix, not by the IPv4 address a translator sends to."""
    reached: list[IpAddress] = [ip]
    if isinstance(ip, ipaddress.IPv6Address):
        reached += [v4 for v4 in (ip.ipv4_mapped, ip.sixtofour) if v4 is not None]
        reached += list(ip.teredo or ())
        if any(ip in prefix for prefix in _IPV4_IN_LAST_32_BITS):
            reached.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return reached


def _allowed(address: str) -> bool:
    """A global address: nothing of ours (private, loopback, link-local, CGNAT, reserved, multicast), nor an
    IPv6 address that carries one."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return all(each.is_global and not each.is_multicast for each in _addresses_reached(ip))


def _literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def _valid_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > MAX_HOST_LENGTH or not name.isascii():
        return False
    for label in name.split("."):
        if not _LABEL.match(label):
            return False
        if label.startswith("xn--"):
            try:  # a punycode label must decode, and encode back to itself
                if label.encode("ascii").decode("idna").encode("idna").decode("ascii") != label:
                    return False
            except UnicodeError:
                return False
    return True


def _getaddrinfo(host: str, port: int) -> list[str]:
    """Every address `host` resolves to now (the seam a test replaces to play a DNS server)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _resolve(host: str, port: int) -> list[str]:
    if _literal(host):
        return [host.split("%", 1)[0]]
    return _getaddrinfo(host, port)


def _parts(url: str) -> tuple[SplitResult, str, int]:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError as error:  # a bad port or bracket
        raise InvalidWebhookEndpoint("the endpoint is not a valid URL") from error
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidWebhookEndpoint("the endpoint must be an absolute http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookEndpoint("the endpoint must not carry credentials")
    if not _literal(host) and not _valid_name(host):
        raise InvalidWebhookEndpoint(
            "the host must be an IP address or an ASCII name (labels of letters, digits and hyphens, "
            "an internationalized name in its xn-- form)"
        )
    if port == 0:
        raise InvalidWebhookEndpoint("the endpoint's port must be between 1 and 65535")
    return parts, host, port or (443 if parts.scheme == "https" else 80)


def check(url: str, *, production: bool) -> str:
    """The URL if a tenant may use it; `InvalidWebhookEndpoint` saying why not."""
    parts, host, port = _parts(url)
    if production and parts.scheme != "https":
        raise InvalidWebhookEndpoint("the endpoint must use https")
    if production:
        try:
            addresses = _resolve(host, port)
        except (OSError, UnicodeError):
            addresses = []  # not resolvable now: the delivery fails and is retried
        if host.rstrip(".") == "localhost" or not all(_allowed(address) for address in addresses):
            raise InvalidWebhookEndpoint("the endpoint must be a public address, not one inside our network")
    return url


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the address that was checked; `Host` stays the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def _tls_context() -> ssl.SSLContext:
    """The system's trusted authorities, the host name checked (the seam a test replaces to trust its own)."""
    return ssl.create_default_context()


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """Connects to the address that was checked; SNI and certificate verification are for the name."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=_tls_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Sent:
    delivered: bool
    error: str | None  # a coarse reason (see the module's doc), for the tenant to see


def _status_error(status: int) -> str | None:
    return None if 200 <= status < 300 else f"http_{min(max(status // 100, 1), 5)}xx"


def post(url: str, body: bytes, headers: dict[str, str], *, production: bool) -> Sent:
    """One delivery attempt; a 2xx answer is delivered, anything else (redirects too) is retried later."""
    try:
        parts, host, port = _parts(url)
    except InvalidWebhookEndpoint:
        return Sent(False, UNREACHABLE)
    try:
        addresses = _resolve(host, port)
    except (OSError, UnicodeError):
        return Sent(False, UNREACHABLE)
    if not addresses or (production and not all(_allowed(address) for address in addresses)):
        return Sent(False, UNREACHABLE)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    for address in addresses:  # the first that answers; every one was checked above
        kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
        connection = kind(host, port, address, TIMEOUT_SECONDS)
        try:
            connection.request("POST", target, body=body, headers=headers)
            response = connection.getresponse()
            response.read(65536)  # never kept: the body is the receiver's, not ours to show
            error = _status_error(response.status)
            return Sent(error is None, error)
        except TimeoutError:
            return Sent(False, TIMEOUT)
        except ssl.SSLError:  # CertificateError included
            return Sent(False, TLS)
        except (OSError, http.client.HTTPException):
            continue
        finally:
            connection.close()
    return Sent(False, UNREACHABLE)
