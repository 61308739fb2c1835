"""A tenant's webhook endpoint for tests: a local HTTP receiver, a tenant pointed at it with a signing secret,
and the tenant's webhook outbox as stored (read behind the application's back)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from httpx import AsyncClient

from controlplane.core.db import fetch, tenant_tx
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory


class Receiver:
    """A tenant's webhook endpoint: records each delivery and answers with `status`."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((dict(self.headers), body))
                self.send_response(receiver.status)
                if receiver.status == 302:
                    self.send_header("Location", "http://169.254.169.254/latest/meta-data")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _headers, body in self.received]


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made = [Receiver(), Receiver()]
    yield made
    for receiver in made:
        receiver.server.shutdown()


async def tenant_with_endpoint(
    client: AsyncClient, factory: Factory, staff: Actor, url: str
) -> tuple[dict[str, Any], Actor, str]:
    """A tenant, its admin, and its signing secret; its deliveries go to `url`."""
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    base = f"/v1/tenants/{tenant['id']}"
    for _ in range(2):  # a repeated PUT changes nothing more
        assert (
            await client.put(f"{base}/webhook-endpoint", json={"url": url}, headers=admin.headers)
        ).status_code == 200
    secret = (await client.post(f"{base}/webhook-secret/rotations", headers=admin.headers)).json()["secret"]
    return tenant, admin, secret


async def outbox_rows(stack_env: dict[str, str], tenant_id: str) -> list[dict[str, Any]]:
    """The tenant's webhook outbox as stored, oldest first."""
    inspector = await connect_as_inspector(stack_env)
    try:
        rows = await inspector.fetch(
            "select id, event_type, event_key, attempts, delivered_at, failed_at, last_error, "
            "next_attempt_at > now() as waiting from webhook_outbox where tenant_id = $1 order by id",
            uuid.UUID(tenant_id),
        )
    finally:
        await inspector.close()
    return [dict(row) for row in rows]


async def make_due(stack_env: dict[str, str], tenant_id: str, attempts: int | None = None) -> None:
    """The clock moved past the back-off (and, given `attempts`, that many tries already made)."""
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute(
            "update webhook_outbox set next_attempt_at = now() - interval '1 second', "
            "attempts = coalesce($2, attempts) where tenant_id = $1 and delivered_at is null",
            uuid.UUID(tenant_id),
            attempts,
        )
    finally:
        await inspector.close()


@dataclass(frozen=True)
class OutboxEvent:
    """One event as stored for delivery to the tenant's webhook endpoint."""

    id: int
    tenant_id: uuid.UUID
    event_type: str
    event_key: str | None
    payload: dict[str, Any]
    created_at: datetime
    delivered_at: datetime | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    failed_at: datetime | None


async def webhook_outbox_events(tenant_id: uuid.UUID) -> list[OutboxEvent]:
    """The tenant's webhook outbox, oldest first, read in the tenant's own context (so row-level security
    applies as it does to the application)."""
    async with tenant_tx(tenant_id):
        rows = await fetch(
            "select id, tenant_id, event_type, event_key, payload, created_at, delivered_at, attempts, "
            "next_attempt_at, last_error, failed_at from webhook_outbox where tenant_id = {} order by id",
            tenant_id,
        )
    return [
        OutboxEvent(
            **{**row, "payload": json.loads(row["payload"]) if isinstance(row["payload"], str) else row["payload"]}
        )
        for row in rows
    ]
