"""Fixtures of the integration suite: raw connections as the app role and as the owner.

The app role is what the service connects as: row-level security applies to it. The owner connection is
only for looking behind the application's back (what is really stored); the owner is subject to the
forced policies too, so it opens the platform scope for its own session.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from controlplane.core.auth.principal import Principal
from tests.conftest import connect_as_inspector


@pytest.fixture
async def app_connection(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A plain connection as the app role, with no context set."""
    connection = await asyncpg.connect(stack_env["DATABASE_URL"])
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def owner_connection(stack_env: dict[str, str]) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the schema owner that sees every tenant's rows (for checking what is stored)."""
    connection = await connect_as_inspector(stack_env)
    try:
        yield connection
    finally:
        await connection.close()


def staff_principal() -> Principal:
    """Platform staff as the services see them (audit only records the id)."""
    return Principal(kind="user", id=uuid.uuid4(), is_staff=True)
