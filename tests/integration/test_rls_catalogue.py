"""Row-level security as PostgreSQL really has it, read from pg_catalog while connected as the app role.

The catalogue checks find tenant tables by their `tenant_id` column, so a table added by a later
migration is held to the same rules without editing this file. The behaviour checks then show that the
policies do what the catalogue says: no context reads nothing, a committed context does not outlive its
transaction on a reused connection, WITH CHECK refuses another tenant's rows, and `tenant_tx` never nests.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from piccolo.engine.exceptions import TransactionError

from controlplane.core import db, idempotency
from controlplane.core.db import SystemReason, anonymous_tx, fetch, system_tx, tenant_tx, user_tx
from controlplane.core.settings import Settings
from tenants import repository, service
from tests.integration.conftest import staff_principal

TENANT_SETTING = "nullif(current_setting('app.tenant_id',true),'')"
KNOWN_TENANT_TABLES = {"tenants", "memberships", "api_keys", "audit_events", "idempotency_keys"}

TENANT_TABLES_SQL = """
select c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity,
       case when c.relname = 'tenants' then 'id' else 'tenant_id' end as tenant_column
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p')
  and (c.relname = 'tenants' or exists (
        select 1 from pg_attribute a
        where a.attrelid = c.oid and a.attname = 'tenant_id' and a.attnum > 0 and not a.attisdropped))
order by c.relname
"""


def normalise(expression: str | None) -> str:
    """pg_get_expr's text without casts to text, whitespace or case, so it can be matched."""
    if expression is None:
        return ""
    return re.sub(r"\s+", "", expression.lower().replace("::text", ""))


async def tenant_tables(connection: asyncpg.Connection) -> list[asyncpg.Record]:
    tables = await connection.fetch(TENANT_TABLES_SQL)
    # Not vacuous: the tenants domain's own tables are there.
    assert {row["relname"] for row in tables} >= KNOWN_TENANT_TABLES, tables
    return tables


# -- the catalogue -----------------------------------------------------------------------------------


async def test_every_tenant_table_forces_a_tenant_policy(report: Any, app_connection: asyncpg.Connection) -> None:
    tables = await tenant_tables(app_connection)
    for table in tables:
        name = table["relname"]
        assert table["relrowsecurity"], f"{name}: row level security is not enabled"
        assert table["relforcerowsecurity"], f"{name}: row level security is not forced"
        policies = await app_connection.fetch(
            "select polname, polpermissive, polcmd, pg_get_expr(polqual, polrelid) as qual, "
            "pg_get_expr(polwithcheck, polrelid) as with_check from pg_policy where polrelid = $1",
            table["oid"],
        )
        assert policies, f"{name}: no policy"
        column = table["tenant_column"]
        isolating = [
            policy
            for policy in policies
            if TENANT_SETTING in normalise(policy["qual"])
            and TENANT_SETTING in normalise(policy["with_check"])
            and column in normalise(policy["qual"])
            and column in normalise(policy["with_check"])
        ]
        assert isolating, f"{name}: no policy checks {column} against app.tenant_id in USING and WITH CHECK"
        for policy in isolating:
            # `(select …)`: evaluated once per statement, not once per row.
            assert "select(nullif(current_setting('app.tenant_id'" in normalise(policy["qual"]), policy
        for policy in policies:
            # No policy may open rows unconditionally (`using (true)` would undo all the others).
            assert "current_setting('app." in normalise(policy["qual"]), f"{name}: {policy['polname']} {policy}"
            if policy["with_check"] is not None:
                assert "current_setting('app." in normalise(policy["with_check"]), f"{name}: {policy}"
        report(f"rls: {name}: {len(policies)} policies, {len(isolating)} isolating on {column}")


async def test_every_tenant_column_leads_an_index(report: Any, app_connection: asyncpg.Connection) -> None:
    tables = await tenant_tables(app_connection)
    for table in tables:
        leading = await app_connection.fetchval(
            "select count(*) from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
            "and a.attnum = i.indkey[0] where i.indrelid = $1 and a.attname = $2",
            table["oid"],
            table["tenant_column"],
        )
        assert leading >= 1, f"{table['relname']}.{table['tenant_column']} leads no index"
    report(f"rls: {len(tables)} tenant tables, each with an index led by its tenant column")


async def test_the_app_role_cannot_bypass_row_level_security(report: Any, app_connection: asyncpg.Connection) -> None:
    role = await app_connection.fetchrow(
        "select oid, rolname, rolsuper, rolbypassrls from pg_roles where rolname = current_user"
    )
    assert role is not None
    assert role["rolsuper"] is False
    assert role["rolbypassrls"] is False
    owned = await app_connection.fetch(
        "select c.relname, n.nspname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where c.relowner = $1 and n.nspname not in ('pg_catalog', 'information_schema') "
        "and n.nspname not like 'pg_toast%'",
        role["oid"],
    )
    assert owned == [], f"the app role owns {owned}"
    # Nor can it become a role that could: a member of a superuser, BYPASSRLS role or the tables' owner.
    escalations = await app_connection.fetch(
        "select r.rolname from pg_roles r where r.oid <> $1 and pg_has_role($1, r.oid, 'MEMBER') and "
        "(r.rolsuper or r.rolbypassrls or exists (select 1 from pg_class c where c.relowner = r.oid "
        "and c.relnamespace = 'public'::regnamespace))",
        role["oid"],
    )
    assert escalations == [], escalations
    # Views run as their owner unless security_invoker: none may expose tenant tables that way.
    views = await app_connection.fetch(
        "select c.relname from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('v', 'm') "
        "and not coalesce('security_invoker=true' = any(c.reloptions) or 'security_invoker=on' = any(c.reloptions), "
        "false)"
    )
    assert views == [], f"views that bypass RLS as their owner: {views}"
    report(f"rls: app role {role['rolname']}: rolsuper=false rolbypassrls=false owns 0 relations")


# -- behaviour ---------------------------------------------------------------------------------------


async def populate(prefix: str) -> dict[str, Any]:
    """Two tenants with members, API keys, audit events and idempotency keys, through the services."""
    staff = staff_principal()
    made: dict[str, Any] = {}
    for name in ("a", "b"):
        tenant = await service.create_tenant(
            staff,
            service.NewTenant(name=f"{prefix} {name}", slug=f"{prefix}-{name}-{uuid.uuid4().hex[:8]}", currency="EUR"),
        )
        member = await service.add_member(staff, tenant.id, f"{prefix}-{name}@example.com", "tenant_admin")
        key = (await service.create_api_key(staff, tenant.id, f"{name} key", "tenant_member")).key
        await service.update_tenant(staff, tenant.id, {"billing_email": f"billing-{name}@example.com"})
        claim = await idempotency.claim(
            tenant.id, staff.key, f"key-{name}", "POST", "/v1/x", "f" * 64, timedelta(hours=1)
        )
        assert claim.outcome is idempotency.ClaimOutcome.CLAIMED
        made[name] = {"tenant": tenant, "member": member, "key": key}
    return made


async def counts(connection: asyncpg.Connection, tables: list[str]) -> dict[str, int]:
    return {table: await connection.fetchval(f'select count(*) from "{table}"') for table in tables}  # noqa: S608


async def test_no_context_reads_no_tenant_rows(
    report: Any,
    client: Any,
    app_connection: asyncpg.Connection,
    owner_connection: asyncpg.Connection,
    stack_env: dict[str, str],
) -> None:
    await populate("noctx")
    tables = [row["relname"] for row in await tenant_tables(app_connection)]

    stored = await counts(owner_connection, tables)
    assert all(stored[table] > 0 for table in KNOWN_TENANT_TABLES), stored

    seen = await counts(app_connection, tables)
    assert seen == dict.fromkeys(tables, 0), seen
    # The same through the application's own engine: outside any transaction, and in anonymous_tx.
    for table in tables:
        assert (await fetch(f'select count(*) as n from "{table}"'))[0]["n"] == 0  # noqa: S608
        async with anonymous_tx():
            assert (await fetch(f'select count(*) as n from "{table}"'))[0]["n"] == 0  # noqa: S608
    # An empty setting (what a pooled connection holds after a context ended) is no tenant.
    emptied = await asyncpg.connect(stack_env["DATABASE_URL"], server_settings={"app.tenant_id": "", "app.scope": ""})
    try:
        assert await counts(emptied, tables) == dict.fromkeys(tables, 0)
    finally:
        await emptied.close()
    report(f"rls: stored {stored}; seen without context {seen}")


async def test_a_committed_context_does_not_outlive_its_transaction(
    report: Any, client: Any, stack_env: dict[str, str], settings: Settings
) -> None:
    made = await populate("reuse")
    tenant_a = made["a"]["tenant"].id
    tables = sorted(KNOWN_TENANT_TABLES)
    pool = await asyncpg.create_pool(stack_env["DATABASE_URL"], min_size=1, max_size=1)
    assert pool is not None
    try:
        async with pool.acquire() as connection, connection.transaction():
            pid = await connection.fetchval("select pg_backend_pid()")
            await connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_a))
            inside = await counts(connection, tables)
        assert inside["tenants"] == 1 and inside["memberships"] == 1 and inside["api_keys"] == 1, inside
        async with pool.acquire() as connection:
            assert await connection.fetchval("select pg_backend_pid()") == pid  # the very same connection
            assert await connection.fetchval("select current_setting('app.tenant_id', true)") == ""
            async with connection.transaction():
                after = await counts(connection, tables)
            outside = await counts(connection, tables)
        assert after == outside == dict.fromkeys(tables, 0), (after, outside)
    finally:
        await pool.close()

    # And through controlplane.core.db with a pool of one connection: tenant_tx, then no context.
    await db.stop_pool()
    await db.start_pool(stack_env["DATABASE_URL"], min_size=1, max_size=1)
    try:
        async with tenant_tx(tenant_a):
            pid = (await fetch("select pg_backend_pid() as pid"))[0]["pid"]
            assert len(await fetch("select id from memberships")) == 1
        async with anonymous_tx():
            assert (await fetch("select pg_backend_pid() as pid"))[0]["pid"] == pid
            assert await fetch("select id from memberships") == []
            assert await fetch("select id from tenants") == []
        assert await fetch("select id from api_keys") == []
        # user_tx and system_tx contexts end with their transactions too.
        async with user_tx(made["a"]["member"].user_id):
            assert len(await fetch("select id from tenants")) == 1
        assert await fetch("select id from tenants") == []
        async with system_tx(SystemReason.PLATFORM_JOB):
            assert len(await fetch("select id from tenants")) == 2
        assert await fetch("select id from tenants") == []
        # An aborted transaction leaves nothing behind either.
        with pytest.raises(RuntimeError):
            async with tenant_tx(tenant_a):
                raise RuntimeError("abort")
        assert await fetch("select id from tenants") == []
    finally:
        await db.stop_pool()  # the session app's pool again, for the tests that follow
        await db.start_pool(
            settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size
        )
    report(f"rls: one connection (pid {pid}): inside the tenant {inside}, after commit {after}")


async def test_with_check_refuses_another_tenants_rows(
    report: Any, client: Any, owner_connection: asyncpg.Connection
) -> None:
    made = await populate("check")
    tenant_a, tenant_b = made["a"]["tenant"].id, made["b"]["tenant"].id
    user_b = made["b"]["member"].user_id
    key_a = made["a"]["key"].id
    before = await owner_connection.fetch(
        "select 'm' as t, id, tenant_id from memberships union all select 'k', id, tenant_id from api_keys "
        "union all select 'a', id, tenant_id from audit_events union all select 'i', id, tenant_id "
        "from idempotency_keys union all select 't', id, id from tenants order by 1, 2"
    )
    attempts = {
        "insert membership": (
            "insert into memberships (id, tenant_id, user_id, role) values ({}, {}, {}, 'tenant_admin')",
            (uuid.uuid4(), tenant_b, user_b),
        ),
        "insert api key": (
            "insert into api_keys (id, tenant_id, name, role, secret_hash) "
            "values ({}, {}, 'x', 'tenant_admin', '\\x00')",
            (uuid.uuid4(), tenant_b),
        ),
        "insert audit event": (
            "insert into audit_events (id, tenant_id, actor_type, action, target_type, target_id) "
            "values ({}, {}, 'system', 'x', 'x', 'x')",
            (uuid.uuid4(), tenant_b),
        ),
        "insert idempotency key": (
            "insert into idempotency_keys (id, tenant_id, principal, key, method, path, request_hash, state, "
            "expires_at) values ({}, {}, 'p', 'k', 'POST', '/', 'h', 'in_progress', now())",
            (uuid.uuid4(), tenant_b),
        ),
        "insert tenant": (
            "insert into tenants (id, name, slug, currency) values ({}, 'x', {}, 'EUR')",
            (uuid.uuid4(), f"x-{uuid.uuid4().hex[:8]}"),
        ),
        "move own api key": ("update api_keys set tenant_id = {} where id = {}", (tenant_b, key_a)),
        "move own membership": ("update memberships set tenant_id = {} where tenant_id = {}", (tenant_b, tenant_a)),
    }
    refused = 0
    for _name, (sql, args) in attempts.items():
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with tenant_tx(tenant_a):
                await fetch(sql, *args)
        refused += 1
    # Reads and writes aimed at the other tenant's rows by id find nothing to touch.
    async with tenant_tx(tenant_a):
        assert await repository.get_tenant(tenant_b) is None
        assert await repository.get_membership(tenant_b, user_b) is None
        assert await repository.get_api_key(made["b"]["key"].id) is None
        assert await fetch("update api_keys set name = 'pwned' where tenant_id = {} returning id", tenant_b) == []
        assert await fetch("delete from memberships where tenant_id = {} returning id", tenant_b) == []
        assert await fetch("update tenants set name = 'pwned' where id = {} returning id", tenant_b) == []
    after = await owner_connection.fetch(
        "select 'm' as t, id, tenant_id from memberships union all select 'k', id, tenant_id from api_keys "
        "union all select 'a', id, tenant_id from audit_events union all select 'i', id, tenant_id "
        "from idempotency_keys union all select 't', id, id from tenants order by 1, 2"
    )
    assert after == before
    assert await owner_connection.fetchval("select count(*) from api_keys where name = 'pwned'") == 0
    report(f"rls: WITH CHECK refused {refused}/{len(attempts)} cross-tenant writes; stored rows unchanged")


async def test_tenant_tx_refuses_to_nest(report: Any, client: Any) -> None:
    made = await populate("nest")
    tenant_a, tenant_b = made["a"]["tenant"].id, made["b"]["tenant"].id
    outers = {
        "tenant_tx": lambda: tenant_tx(tenant_a),
        "user_tx": lambda: user_tx(made["a"]["member"].user_id),
        "system_tx": lambda: system_tx(SystemReason.PLATFORM_JOB),
        "anonymous_tx": anonymous_tx,
        "engine transaction": db.ENGINE.transaction,
    }
    refused = 0
    for name, outer in outers.items():
        with pytest.raises(TransactionError):
            async with outer():
                async with tenant_tx(tenant_b):
                    pytest.fail(f"tenant_tx nested in {name} ran with the outer transaction")
        refused += 1
    # The outer context is untouched by the refused inner one.
    async with tenant_tx(tenant_a):
        with pytest.raises(TransactionError):
            async with tenant_tx(tenant_b):
                pass
        rows = await fetch("select id from tenants")
        assert [row["id"] for row in rows] == [tenant_a]
    report(f"rls: tenant_tx refused to nest in {refused}/{len(outers)} kinds of transaction")
