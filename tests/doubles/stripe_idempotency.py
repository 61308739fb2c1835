"""Stripe's idempotency, in front of localstripe: the one behaviour localstripe lacks that the fault tests need.

localstripe ignores the `Idempotency-Key` header, so it cannot show what real Stripe does when an answer is
lost after the charge was made: the caller sends the same key again and Stripe replays the first answer
instead of charging twice. This double stands in for exactly that and nothing else. It is a reverse proxy on
127.0.0.1 (stdlib `http.server`, one background thread) placed between the official SDK and localstripe:

* every request is forwarded to localstripe unchanged (method, path, query, body, headers but `Host`), and
  localstripe's answer comes back unchanged: customers, cards, PaymentIntents and refunds stay localstripe's;
* a POST with an `Idempotency-Key` is remembered (per API key and idempotency key, as Stripe scopes them):
  repeating it with the same parameters replays the stored status, headers and body, with
  `Idempotent-Replayed: true`, and localstripe does not hear of it again; repeating it with other parameters
  (or on another endpoint) is Stripe's 400 `idempotency_error`; the same key while its first request is still
  running is Stripe's 409 `idempotency_error`;
* a fault switch, `lose_answers(count, after=0)`: after `after` answers, the next `count` answers are lost. A
  lost answer is still forwarded (so localstripe really charges) and still remembered under its key; only the
  HTTP response is dropped (the connection is closed without a word), as when Stripe charged and the
  network then timed out. The SDK sees a connection error; its own retries (same key) are replays.

Use as a context manager: `with StripeIdempotencyDouble(settings.stripe_api_base) as double: double.url`.
"""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# Never forwarded either way: hop-by-hop headers, and those the proxy sets itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "date",
        "server",
    }
)
# Stripe saves no result for these: the request never ran (a concurrent twin, or rate limited).
_NOT_SAVED = frozenset({409, 429})


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class _Saved:
    fingerprint: tuple[Any, ...]
    answer: _Answer


class StripeIdempotencyDouble:
    """See the module: a proxy to localstripe adding Stripe's idempotent replays and lost answers."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream.rstrip("/"))
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"an http:// localstripe address is needed, not {upstream!r}")
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._upstream_prefix = parts.path
        self._lock = threading.Lock()
        self._saved: dict[tuple[str, str], _Saved] = {}
        self._in_flight: set[tuple[str, str]] = set()
        self._answer_before_losing = 0
        self._to_lose = 0
        # What happened, for the test to check and report.
        self.forwarded = 0  # requests localstripe saw
        self.replayed = 0  # answers replayed from a stored key (localstripe did not see them)
        self.lost = 0  # answers dropped by the fault switch
        self.lost_after_forwarding = 0  # of which localstripe had done the work (a charge made, answer lost)
        self.rejected = 0  # idempotency errors (400 other parameters, 409 in flight)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "the double is not started"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> StripeIdempotencyDouble:
        double = self

        class Handler(_ProxyHandler):
            owner = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stripe-idempotency", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> StripeIdempotencyDouble:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    # -- the fault switch ------------------------------------------------------------------------------------

    def lose_answers(self, count: int, after: int = 0) -> None:
        """Answer the next `after` requests, then lose the `count` answers after them (the work is still done)."""
        with self._lock:
            self._answer_before_losing = after
            self._to_lose = count

    def answer_again(self) -> None:
        """The fault is over: every answer is delivered."""
        self.lose_answers(0)

    @property
    def answers_still_to_lose(self) -> int:
        with self._lock:
            return self._to_lose

    def _lose_this_answer(self) -> bool:
        with self._lock:
            if self._to_lose <= 0:
                return False
            if self._answer_before_losing > 0:
                self._answer_before_losing -= 1
                return False
            self._to_lose -= 1
            self.lost += 1
            return True

    # -- Stripe's idempotency --------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> _Answer | None:
        """The answer to one request, or None when the fault switch loses it."""
        idempotency_key = _header(headers, "idempotency-key")
        if method != "POST" or not idempotency_key:
            answer = self._forward(method, path, headers, body) or _unreachable()
            return None if self._lose_this_answer() else answer
        scope = (_header(headers, "authorization") or "", idempotency_key)
        fingerprint = (method, urlsplit(path).path, _parameters(headers, body))
        with self._lock:
            saved = self._saved.get(scope)
            busy = saved is None and scope in self._in_flight
            if saved is None and not busy:
                self._in_flight.add(scope)
        if busy:
            with self._lock:
                self.rejected += 1
            return _stripe_error(
                409,
                "There is currently another in-progress request using this Stripe API key and idempotency key "
                f"({idempotency_key}). Please try again later.",
            )
        if saved is not None:
            if saved.fingerprint != fingerprint:
                with self._lock:
                    self.rejected += 1
                return _stripe_error(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used "
                    f"with. Try using a key other than '{idempotency_key}' if you meant to execute a different "
                    "request.",
                )
            if self._lose_this_answer():
                return None
            with self._lock:
                self.replayed += 1
            return _Answer(
                saved.answer.status, (*saved.answer.headers, ("Idempotent-Replayed", "true")), saved.answer.body
            )
        try:
            forwarded = self._forward(method, path, headers, body)
            if forwarded is None:  # localstripe is down: nothing ran, nothing is saved
                return _unreachable()
            answer = forwarded
            if answer.status not in _NOT_SAVED:
                answer = _Answer(answer.status, (*answer.headers, ("Idempotency-Key", idempotency_key)), answer.body)
                with self._lock:
                    self._saved[scope] = _Saved(fingerprint, answer)
        finally:
            with self._lock:
                self._in_flight.discard(scope)
        if self._lose_this_answer():
            with self._lock:
                self.lost_after_forwarding += 1
            return None
        return answer

    def _forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> _Answer | None:
        """localstripe's answer, or None when it cannot be reached."""
        connection = http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=60)
        try:
            outgoing = {name: value for name, value in headers if name.lower() not in _HOP_BY_HOP}
            if body or method in ("POST", "PUT", "PATCH"):
                outgoing["Content-Length"] = str(len(body))
            connection.request(method, self._upstream_prefix + path, body=body or None, headers=outgoing)
            response = connection.getresponse()
            content = response.read()
            kept = tuple((name, value) for name, value in response.getheaders() if name.lower() not in _HOP_BY_HOP)
        except OSError:
            return None
        finally:
            connection.close()
        with self._lock:
            self.forwarded += 1
        return _Answer(response.status, kept, content)


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: StripeIdempotencyDouble
    protocol_version = "HTTP/1.1"

    def _proxy(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.owner.handle(self.command, self.path, list(self.headers.items()), body)
        if answer is None:  # lost: the connection closes without a status line
            self.close_connection = True
            return
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _proxy

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures, not traffic
        return


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def _parameters(headers: list[tuple[str, str]], body: bytes) -> Any:
    """The request's parameters, in a form that does not depend on their order (as Stripe compares them)."""
    content_type = (_header(headers, "content-type") or "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            return json.dumps(json.loads(body or b"null"), sort_keys=True)
        except ValueError:
            return body
    return tuple(sorted(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)))


def _unreachable() -> _Answer:
    return _stripe_error(502, "localstripe could not be reached", kind="api_error")


def _stripe_error(status: int, message: str, kind: str = "idempotency_error") -> _Answer:
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    headers = (("Content-Type", "application/json"), ("Stripe-Should-Retry", "false" if status == 400 else "true"))
    return _Answer(status, headers, body)
