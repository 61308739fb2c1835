"""ASGI middleware that applies `controlplane.core.idempotency` to authenticated POST requests.

It runs after authentication and before the route's guards, so on a tenant path it first asks `may_act_in`
(handed in by the app factory: identity is the tenants domain's) whether the principal may act in that
tenant at all: otherwise it neither claims (writes) nor replays anything and the guard answers. Every other
authenticated POST is honoured too: one by an API key is stored in the key's tenant, anyone else's outside
any tenant, always under the principal's own key. Routes whose response holds a secret shown only once
name those fields in `opt={"idempotency_redact": (...)}`; they are removed before the response is stored,
so a replay tells the client the first request succeeded without handing the secret out again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from controlplane.core import idempotency
from controlplane.core.auth.principal import Principal
from controlplane.core.idempotency import ClaimOutcome
from controlplane.core.problems import PROBLEM_JSON, problem

HEADER = b"idempotency-key"
# Whether a principal may act in a tenant at all (identity is the tenants domain's; the app factory hands it in).
MayActIn = Callable[[Principal, uuid.UUID], Awaitable[bool]]


async def _send_problem(scope: Scope, receive: Receive, send: Send, status: int, code: str, detail: str) -> None:
    await problem(status, code, detail).to_asgi_response(app=None, request=None)(scope, receive, send)  # type: ignore[arg-type]


def _replaying(body: bytes) -> Receive:
    """A `receive` that hands the already-read body to the app once."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return cast(Message, {"type": "http.disconnect"})
        sent = True
        return cast(Message, {"type": "http.request", "body": body, "more_body": False})

    return receive  # type: ignore[return-value]


def _redacted(body: bytes, fields: tuple[str, ...]) -> bytes:
    if not fields:
        return body
    document = json.loads(body)
    for field in fields:
        document.pop(field, None)
    return json.dumps(document, separators=(",", ":")).encode()


class IdempotencyMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, ttl_seconds: int, max_body_bytes: int, may_act_in: MayActIn) -> None:
        self.may_act_in = may_act_in
        self.ttl = timedelta(seconds=ttl_seconds)
        self.max_body_bytes = max_body_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        # First: the reads, most requests, need nothing more; nor do the console's forms (its pages are not the
        # API's answers, and one may hold a secret shown once, which must not be stored to be replayed).
        if scope.get("method") != "POST" or scope["path"].startswith("/console/"):
            await next_app(scope, receive, send)
            return
        key = next((value for name, value in scope["headers"] if name == HEADER), None)
        principal = scope.get("user")
        if key is None or not isinstance(principal, Principal):
            await next_app(scope, receive, send)
            return
        key_text = key.decode("latin-1")
        if not idempotency.KEY_PATTERN.match(key_text):
            await _send_problem(
                scope,
                receive,
                send,
                400,
                "invalid_idempotency_key",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
            return
        body = b""
        while True:
            message = await receive()
            body += cast(bytes, message.get("body", b""))
            if len(body) > self.max_body_bytes:
                await _send_problem(scope, receive, send, 413, "request_too_large", "The request body is too large")
                return
            if not message.get("more_body", False):
                break
        in_path = scope.get("path_params", {}).get("tenant_id")
        if isinstance(in_path, uuid.UUID):
            if not await self.may_act_in(principal, in_path):
                await next_app(scope, _replaying(body), send)
                return
            tenant_id: uuid.UUID | None = in_path
        else:
            # No tenant in the path (`/v1/usage`, `/v1/escrows`, `/v1/invoices/{id}/pay`, sign-ups): an API key
            # is kept in its own tenant, anyone else outside any tenant; either way scoped to the principal.
            tenant_id = principal.tenant_id if principal.kind == "api_key" else None
        path = scope["path"]
        fingerprint = idempotency.request_fingerprint("POST", path, scope.get("query_string", b""), body)
        claim = await idempotency.claim(tenant_id, principal.key, key_text, "POST", path, fingerprint, self.ttl)

        if claim.outcome is ClaimOutcome.UNSCOPED:
            await next_app(scope, _replaying(body), send)
        elif claim.outcome is ClaimOutcome.MISMATCH:
            await _send_problem(
                scope,
                receive,
                send,
                422,
                "idempotency_key_reused",
                "This Idempotency-Key was used with a different request",
            )
        elif claim.outcome is ClaimOutcome.IN_PROGRESS:
            await _send_problem(
                scope,
                receive,
                send,
                409,
                "idempotency_request_in_progress",
                "A request with this Idempotency-Key is still being processed",
            )
        elif claim.outcome is ClaimOutcome.REPLAY:
            await send(
                {
                    "type": "http.response.start",
                    "status": claim.status or 200,
                    "headers": [
                        (b"content-type", (claim.content_type or PROBLEM_JSON).encode()),
                        (b"idempotent-replayed", b"true"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": claim.body or b"", "more_body": False})
        else:
            redact = tuple(scope["route_handler"].opt.get("idempotency_redact", ()))
            await self._run_and_record(scope, _replaying(body), send, next_app, tenant_id, claim.row_id, redact)

    async def _run_and_record(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        next_app: ASGIApp,
        tenant_id: uuid.UUID | None,
        row_id: Any,
        redact: tuple[str, ...],
    ) -> None:
        status = 500
        content_type = "application/json"
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        try:
            await next_app(scope, receive, capture)
            if 200 <= status < 300:
                stored = _redacted(b"".join(chunks), redact)
                await idempotency.complete(tenant_id, row_id, status, stored, content_type)
                return
        except BaseException:
            await idempotency.release(tenant_id, row_id)
            raise
        await idempotency.release(tenant_id, row_id)
