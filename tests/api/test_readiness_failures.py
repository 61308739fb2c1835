"""/health/ready answers 503 and names the dependency that failed."""

from __future__ import annotations

import dataclasses
import socket

from tests.conftest import problem_of


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_unreachable_redis_makes_the_api_not_ready(app, client) -> None:
    settings = app.state.settings
    app.state.settings = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        response = await client.get("/health/ready")
    finally:
        app.state.settings = settings
    body = problem_of(response)
    assert response.status_code == 503
    assert body["code"] == "not_ready"
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["openbao"] == "ok"
    assert body["checks"]["redis"].startswith("failed")
    assert (await client.get("/health/ready")).status_code == 200
