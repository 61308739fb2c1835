"""Checks of the services the API needs: PostgreSQL (reachable, migrated, isolating tenants), Redis,
OpenBao, Stripe, and the Celery workers and beat."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from controlplane.core.celery import create_celery

# At import, not inside a check: checks run in threads at once, and two threads importing piccolo's modules
# together can each see the other's half-initialised module.
from controlplane.core.db_credentials import read_static_credentials
from controlplane.core.secrets import SecretStore
from controlplane.core.stripe_client import make_stripe_client
from controlplane.ops.piccolo_conf import APP_REGISTRY
from controlplane.ops.readiness._model import Context, Outcome, in_daemon_thread
from controlplane.ops.rotation import ROTATION_PERIODS, last_rotations

POSTGRES_BUDGET_SECONDS = 0.1
REDIS_BUDGET_SECONDS = 0.1
BEAT_MAX_AGE_SECONDS = 15 * 60  # beat saves its schedule file at most 3 min after sending a task (every 5 min)
WORKER_PING_SECONDS = 2.0
ROUND_TRIPS = 3

# Tables holding tenant rows: `tenants` itself, and every table with a tenant_id column.
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
POLICIES_SQL = "select pg_get_expr(polqual, polrelid) as qual, pg_get_expr(polwithcheck, polrelid) as with_check "
POLICIES_SQL += "from pg_policy where polrelid = $1"
ROLE_SQL = """
select r.rolname, r.rolsuper, r.rolbypassrls,
       (select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace
         where c.relowner = r.oid and n.nspname not in ('pg_catalog', 'information_schema')
           and n.nspname not like 'pg_toast%') as owned,
       (select count(*) from pg_roles o where o.oid <> r.oid and pg_has_role(r.oid, o.oid, 'MEMBER')
           and (o.rolsuper or o.rolbypassrls or exists (
                select 1 from pg_class c where c.relowner = o.oid and c.relnamespace = 'public'::regnamespace)))
         as escalations
from pg_roles r where r.rolname = current_user
"""
TENANT_SETTING = "current_setting('app.tenant_id'"


def _app_role_password(ctx: Context) -> str | None:
    """With BAO_DB_STATIC_ROLE, DATABASE_URL carries no password: the current one is OpenBao's."""
    if not ctx.settings.bao_db_static_role:
        return None
    client = SecretStore.connect(ctx.settings, timeout=ctx.options.client_timeout).client
    mount, role = ctx.settings.bao_db_mount, ctx.settings.bao_db_static_role
    return read_static_credentials(client, mount=mount, role=role).password


@asynccontextmanager
async def _app_connection(ctx: Context) -> AsyncIterator[asyncpg.Connection]:
    password = await ctx.once("app_role_password", lambda: in_daemon_thread(lambda: _app_role_password(ctx)))
    async with _connection(ctx.settings.database_url, ctx.options.client_timeout, password) as connection:
        yield connection


@asynccontextmanager
async def _connection(
    url: str, client_timeout: float, password: str | None = None
) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(url, timeout=client_timeout, password=password)
    try:
        yield connection
    finally:
        await connection.close(timeout=client_timeout)


async def _fastest_of(times: int, call: Callable[[], Awaitable[Any]]) -> float:
    """The quickest of a few round trips: the service's latency, not the scheduling noise of the checks
    running beside this one on the same event loop."""
    fastest = math.inf
    for _ in range(times):
        started = time.perf_counter()
        await call()
        fastest = min(fastest, time.perf_counter() - started)
    return fastest


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def postgres(ctx: Context) -> Outcome:
    async with _app_connection(ctx) as connection:
        elapsed = await _fastest_of(ROUND_TRIPS, lambda: connection.fetchval("select 1"))
        version = await connection.fetchval("show server_version")
    detail = f"fastest of {ROUND_TRIPS} `select 1` as the app role; PostgreSQL {version}"
    return Outcome(elapsed < POSTGRES_BUDGET_SECONDS, _ms(elapsed), detail, elapsed)


def _migration_files() -> dict[str, set[str]]:
    """Every migration id of every Piccolo app, found the way `piccolo migrations forwards` finds them."""
    from piccolo.apps.migrations.commands.base import BaseMigrationManager

    finder = BaseMigrationManager()
    return {
        name: set(finder.get_migration_modules(config.resolved_migrations_folder_path))
        for name, config in APP_REGISTRY.app_configs.items()
    }


async def migrations(ctx: Context) -> Outcome:
    expected = await in_daemon_thread(_migration_files)
    # The app role may not read Piccolo's migration table; the owner role (which runs migrations) can.
    url = ctx.settings.database_owner_url or ctx.settings.database_url
    async with _connection(url, ctx.options.client_timeout) as connection:
        try:
            rows = await connection.fetch("select app_name, name from migration")
        except asyncpg.UndefinedTableError:
            return Outcome(False, "never migrated", "no migration table: run `controlplane db migrate`", 0)
        except asyncpg.InsufficientPrivilegeError:
            return Outcome.not_observed("cannot read the migration table: set DATABASE_OWNER_URL")
    applied: dict[str, set[str]] = {}
    for row in rows:
        applied.setdefault(row["app_name"], set()).add(row["name"])
    missing = sorted(f"{app}:{name}" for app, names in expected.items() for name in names - applied.get(app, set()))
    total = sum(len(names) for names in expected.values())
    unknown = sorted(f"{app}:{name}" for app, names in applied.items() for name in names - expected.get(app, set()))
    detail = f"{len(expected)} apps ({', '.join(sorted(expected))})"
    if missing:
        detail += "; not applied: " + ", ".join(missing)
    if unknown:
        detail += "; applied but unknown to this code (newer schema): " + ", ".join(unknown)
    return Outcome(not missing, f"{total - len(missing)}/{total} applied", detail, float(len(missing)))


async def rls(ctx: Context) -> Outcome:
    problems: list[str] = []
    async with _app_connection(ctx) as connection:
        tables = await connection.fetch(TENANT_TABLES_SQL)
        for table in tables:
            name = table["relname"]
            if not table["relrowsecurity"]:
                problems.append(f"{name}: RLS not enabled")
            if not table["relforcerowsecurity"]:
                problems.append(f"{name}: RLS not forced")
            policies = await connection.fetch(POLICIES_SQL, table["oid"])
            isolating = [
                policy
                for policy in policies
                if TENANT_SETTING in (policy["qual"] or "").lower()
                and TENANT_SETTING in (policy["with_check"] or policy["qual"] or "").lower()
            ]
            if not isolating:
                problems.append(f"{name}: no policy against app.tenant_id")
            # A policy that opens rows unconditionally (`using (true)`) would undo all the others.
            expressions = [e for policy in policies for e in (policy["qual"], policy["with_check"]) if e]
            if any("current_setting('app." not in expression.lower() for expression in expressions):
                problems.append(f"{name}: a policy does not depend on the app.* context")
        role = await connection.fetchrow(ROLE_SQL)
    if role is None:
        problems.append("the connected role is not in pg_roles")
    else:
        if role["rolsuper"]:
            problems.append(f"{role['rolname']} is a superuser")
        if role["rolbypassrls"]:
            problems.append(f"{role['rolname']} has BYPASSRLS")
        if role["owned"]:
            problems.append(f"{role['rolname']} owns {role['owned']} relations")
        if role["escalations"]:
            problems.append(f"{role['rolname']} is a member of {role['escalations']} roles that bypass RLS")
    if not tables:
        problems.append("no tenant tables found (not migrated?)")
    observed = f"{len(tables)} tenant tables, {len(problems)} problems"
    detail = "; ".join(problems) or f"RLS enabled, forced and with a tenant policy; app role {role['rolname']} "
    if not problems and role is not None:
        detail += "is no superuser, has no BYPASSRLS and owns nothing"
    return Outcome(not problems, observed, detail, float(len(problems)))


async def redis(ctx: Context) -> Outcome:
    timeout = ctx.options.client_timeout
    client = aioredis.from_url(ctx.settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        elapsed = await _fastest_of(ROUND_TRIPS, client.ping)
    finally:
        await client.aclose()
    return Outcome(elapsed < REDIS_BUDGET_SECONDS, _ms(elapsed), f"fastest of {ROUND_TRIPS} PINGs", elapsed)


def _overdue_secrets(store: Any) -> list[str]:
    """Secrets older than their rotation period and a day (as ControlPlaneSecretOverdue): rotation has stopped."""
    now = datetime.now(UTC)
    return [
        f"{secret} last rotated {when:%Y-%m-%d} (every {period.days} days)"
        for secret, when in sorted(last_rotations(store).items())
        if (period := ROTATION_PERIODS.get(secret)) is not None and now - when > period + timedelta(days=1)
    ]


async def openbao(ctx: Context) -> Outcome:
    def probe() -> Outcome:

        store = SecretStore.connect(ctx.settings, timeout=ctx.options.client_timeout)
        if store.is_ready():
            overdue = _overdue_secrets(store)
            if overdue:
                return Outcome(False, f"{len(overdue)} secret(s) overdue", "; ".join(overdue), 0)
            return Outcome(True, "unsealed, token valid", f"{ctx.settings.bao_addr}; every secret within its period", 1)
        try:
            sealed = store.client.sys.is_sealed()
        except Exception as exc:  # what is_ready already judged; only to say why
            return Outcome(False, "unreachable", f"{ctx.settings.bao_addr}: {type(exc).__name__}", 0)
        return Outcome(False, "sealed" if sealed else "token invalid", ctx.settings.bao_addr, 0)

    return await in_daemon_thread(probe)


async def stripe(ctx: Context) -> Outcome:
    def probe() -> Outcome:

        try:
            store = SecretStore.connect(ctx.settings, timeout=ctx.options.client_timeout)
            client = make_stripe_client(ctx.settings, store)
        except Exception as exc:  # the key is in OpenBao: without it Stripe cannot be reached at all
            return Outcome(False, "no API key", f"reading the key from OpenBao: {type(exc).__name__}: {exc}", 0)
        started = time.perf_counter()
        client.v1.customers.list(params={"limit": 1})
        elapsed = time.perf_counter() - started
        where = ctx.settings.stripe_api_base or "api.stripe.com"
        return Outcome(True, f"key accepted ({_ms(elapsed)})", f"GET /v1/customers?limit=1 at {where}", elapsed)

    return await in_daemon_thread(probe)


async def celery_workers(ctx: Context) -> Outcome:
    def probe() -> Outcome:

        app = create_celery(ctx.settings)
        app.conf.broker_connection_timeout = ctx.options.client_timeout
        # The broker first, once: a ping through an unreachable broker would retry until the check's timeout.
        with app.connection_for_write() as connection:
            try:
                connection.ensure_connection(max_retries=1, timeout=ctx.options.client_timeout)
            except Exception as exc:  # kombu's OperationalError, or the transport's own
                return Outcome(False, "broker unreachable", f"{type(exc).__name__}: {exc}"[:300], 0)
        replies = app.control.ping(timeout=WORKER_PING_SECONDS)
        names = sorted(name for reply in replies for name in reply)
        if not names:
            return Outcome(False, "no workers", f"no worker answered a ping within {WORKER_PING_SECONDS:g} s", 0)
        return Outcome(True, f"{len(names)} worker(s)", ", ".join(names), float(len(names)))

    return await in_daemon_thread(probe)


def _last_saved(schedule: Path) -> float | None:
    """When beat last saved its schedule (the shelve may add a suffix: .db, .dat, ...), or None."""
    files = [path for path in schedule.parent.glob(schedule.name + "*") if path.is_file()]
    return max((path.stat().st_mtime for path in files), default=None)


async def celery_beat(ctx: Context) -> Outcome:
    schedule = ctx.options.beat_schedule
    saved = await in_daemon_thread(lambda: _last_saved(schedule))
    if saved is None:
        return Outcome.not_observed(
            f"no beat schedule file {schedule}* on this host (set CONTROLPLANE_BEAT_SCHEDULE where beat runs)"
        )
    age = datetime.now(UTC).timestamp() - saved
    return Outcome(age < BEAT_MAX_AGE_SECONDS, f"saved {age / 60:.1f} min ago", f"mtime of {schedule}*", age)
