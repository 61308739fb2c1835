"""The app as production builds it, but never started: its lifespan does not run, so nothing it would connect to
is contacted, and the routes that need no service (the OpenAPI document, the docs pages and their assets) answer
without the embedded stack."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from httpx import ASGITransport, AsyncClient
from litestar import Litestar

from controlplane.app import create_app
from controlplane.core.settings import Settings

# Addresses that are never dialled: only the lifespan connects, and it does not run.
UNREACHABLE = {
    "CONTROLPLANE_ENV": "test",
    "DATABASE_URL": "postgresql://controlplane@127.0.0.1:9/controlplane",
    "REDIS_URL": "redis://127.0.0.1:9/0",
    "BAO_ADDR": "http://127.0.0.1:9",
    "BAO_TOKEN": "unused",
}


@pytest.fixture(scope="module")
def unstarted_app() -> Litestar:
    return create_app(Settings.from_env(UNREACHABLE))


@pytest.fixture(scope="module")
async def unstarted_client(unstarted_app: Litestar) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=unstarted_app), base_url="http://testserver") as client:
        yield client
