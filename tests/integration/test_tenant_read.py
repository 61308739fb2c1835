"""`tenant_read`: a read outside any transaction, whose context stays on its connection's session.

Through controlplane.core.db with a pool of one connection, so every unit of work below runs on the same
PostgreSQL session as the reads before it: what a read leaves there must never show to anything but another
read of the same tenant.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from controlplane.core import db
from controlplane.core.db import SystemReason, anonymous_tx, fetch, system_tx, tenant_read, tenant_tx, user_tx
from controlplane.core.settings import Settings
from tests.integration.test_rls_catalogue import populate


@pytest.fixture
async def one_connection(client: Any, stack_env: dict[str, str], settings: Settings) -> AsyncIterator[list[str]]:
    """The engine's pool as one connection; yields the statements run on it, as they run."""
    await db.stop_pool()
    await db.start_pool(stack_env["DATABASE_URL"], min_size=1, max_size=1)
    statements: list[str] = []
    assert db.ENGINE.pool is not None
    async with db.ENGINE.pool.acquire() as connection:
        connection.add_query_logger(lambda record: statements.append(record.query))
    try:
        yield statements
    finally:
        await db.stop_pool()  # the session app's pool again, for the tests that follow
        await db.start_pool(
            settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
        )


async def _tenant_ids() -> set[uuid.UUID]:
    return {row["id"] for row in await fetch("select id from tenants")}


async def test_a_read_sees_its_tenant_and_leaves_nothing_to_other_units_of_work(
    report: Any, one_connection: list[str]
) -> None:
    made = await populate("read")
    a, b = made["a"]["tenant"].id, made["b"]["tenant"].id
    async with tenant_read(a):
        assert await _tenant_ids() == {a}
        assert len(await fetch("select id from memberships")) == 1
    async with tenant_read(b):
        assert await _tenant_ids() == {b}
    async with tenant_tx(a):
        assert await _tenant_ids() == {a}
    async with anonymous_tx():
        assert await _tenant_ids() == set()
    async with tenant_read(b):
        assert await _tenant_ids() == {b}
    # The read's context is session-wide, but a user's transaction names no tenant: it sees its own only.
    async with user_tx(made["a"]["member"].user_id):
        assert await _tenant_ids() == {a}
    async with tenant_read(b):
        assert await _tenant_ids() == {b}
    assert await _tenant_ids() == set()  # a statement outside any unit of work: no context
    async with system_tx(SystemReason.PLATFORM_JOB):
        assert await _tenant_ids() >= {a, b}
    report("tenant_read: on one connection, reads of two tenants between transactions leave no context behind")


async def test_a_read_costs_one_statement_when_its_connection_has_its_context(one_connection: list[str]) -> None:
    made = await populate("trips")
    a, b = made["a"]["tenant"].id, made["b"]["tenant"].id
    async with tenant_read(a):
        await fetch("select id from tenants")
    one_connection.clear()
    async with tenant_read(a):
        await fetch("select id from tenants")
    assert one_connection == ["select id from tenants"]  # no BEGIN, no context, no COMMIT
    one_connection.clear()
    async with tenant_read(b):
        await fetch("select id from tenants")
    assert len(one_connection) == 2 and "set_config('app.tenant_id'" in one_connection[0], one_connection


async def test_a_write_inside_a_read_is_refused(one_connection: list[str]) -> None:
    made = await populate("readonly")
    a = made["a"]["tenant"].id
    async with tenant_read(a):
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await fetch("update tenants set name = 'changed by a read' where id = {}", a)
    async with tenant_tx(a):  # and the connection writes again in a transaction
        await fetch("update tenants set name = 'changed in a transaction' where id = {}", a)
        assert (await fetch("select name from tenants"))[0]["name"] == "changed in a transaction"


async def test_a_context_statement_that_failed_is_not_trusted(one_connection: list[str]) -> None:
    """Had the statement setting a read's context run on the server, unseen (cancelled on the way), the
    connection would hold a context its pool does not know of: it is set again, and cleared before use outside."""
    made = await populate("unknown")
    a = made["a"]["tenant"].id
    async with tenant_read(a):
        connection = db._raw(db.ENGINE.current_transaction.get().connection)  # type: ignore[union-attr]
        with pytest.raises(asyncpg.PostgresError):
            await db._set_session(connection, "select 1 / 0")
        assert connection.session_context == db._UNKNOWN
    one_connection.clear()
    async with tenant_read(a):
        assert await _tenant_ids() == {a}
    assert "set_config('app.tenant_id'" in one_connection[0]  # set anew
    async with tenant_read(a):
        connection = db._raw(db.ENGINE.current_transaction.get().connection)  # type: ignore[union-attr]
        connection.session_context = db._UNKNOWN
    assert await _tenant_ids() == set()  # cleared first, though the pool took it for the read's own


async def test_a_read_cannot_nest_in_a_unit_of_work(one_connection: list[str]) -> None:
    made = await populate("nest")
    a = made["a"]["tenant"].id
    with pytest.raises(RuntimeError, match="cannot run inside"):
        async with tenant_tx(a), tenant_read(a):
            pass
