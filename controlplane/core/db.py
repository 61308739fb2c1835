"""The database engine and the only ways to open a unit of work.

Every query that touches tenant data runs inside one of these transactions, whose BEGIN statement also
sets the row-level-security context with `set_config(..., true)` (transaction-local, so nothing leaks
to the next user of a pooled connection):

- `tenant_tx(tenant_id)`: one tenant's rows, nothing else. The normal case.
- `user_tx(user_id)`: a signed-in user's own memberships and the tenants they belong to (listing
  "my tenants" before any tenant is chosen).
- `system_tx(reason)`: every tenant's rows. Only for platform staff views and platform work across tenants
  (sign-in and invitations by email, erasure, billing runs, idempotency bookkeeping of staff requests).
  Each use names a `SystemReason`, is logged, and is counted in `controlplane_system_context_total{reason}`.

Transactions open in the service layer, never in Litestar dependencies (which run in other tasks).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from asyncpg.transaction import Transaction as AsyncpgTransaction
from asyncpg.transaction import TransactionState
from piccolo.engine.postgres import PostgresEngine, PostgresTransaction
from piccolo.querystring import QueryString

from controlplane.core import context, metrics
from controlplane.core.errors import DatabaseUnavailable

log = logging.getLogger("controlplane.db")
T = TypeVar("T")


# What says PostgreSQL cannot be reached or the connection was lost (a restart, a failover, an outage), as
# opposed to an error of the statement: refused or reset sockets and timeouts (OSError), class 08 (connection
# exceptions, e.g. ConnectionDoesNotExistError), 57P01-57P03 (admin or crash shutdown, "cannot connect now":
# starting up or shutting down) and 53300 (too many connections).
_CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def is_connection_lost(exc: BaseException) -> bool:
    """True when `exc` means the database is unreachable or dropped the connection (not a statement's error)."""
    if isinstance(exc, _CONNECTION_LOST):
        return True
    # asyncpg's "connection is closed" / "cannot rollback; the connection is closed".
    return isinstance(exc, asyncpg.exceptions.InterfaceError) and "closed" in str(exc)


def _unavailable(exc: BaseException) -> DatabaseUnavailable:
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return DatabaseUnavailable("The database is unavailable; retry shortly")


class _PooledConnection(asyncpg.Connection):
    """A pooled connection that needs no reset when it goes back to the pool.

    Every setting made on it is transaction-local (`set_config(…, true)`), and none listens (the invalidation
    listener has a connection of its own), holds a session advisory lock or keeps a cursor open past its
    transaction. asyncpg's reset (RESET ALL, UNLISTEN *, …) would cost a round trip per transaction for nothing;
    an open transaction is still rolled back on release.
    """

    def get_reset_query(self) -> str:
        return ""


# A context value inlined into BEGIN's statement: a UUID's text or a fixed word, never anything to quote.
_CONTEXT_VALUE = re.compile(r"[0-9a-z_-]{1,64}")


def _begin_with(settings: Mapping[str, str]) -> str:
    """BEGIN and `set_config(name, value, is_local => true)` for each setting, as one simple-protocol statement."""
    for value in settings.values():
        if not _CONTEXT_VALUE.fullmatch(value):
            raise ValueError(f"not a context value: {value!r}")
    assignments = ", ".join(f"set_config('app.{name}', '{value}', true)" for name, value in settings.items())
    return f"BEGIN; SELECT {assignments}"


class _BeginWithContext(AsyncpgTransaction):
    """A top-level asyncpg transaction whose BEGIN also sets the transaction's context: one round trip where
    BEGIN then a `set_config` select took two, on every transaction of every request."""

    __slots__ = ("_begin",)

    def __init__(self, connection: asyncpg.Connection, begin: str) -> None:
        super().__init__(connection, None, False, False)
        self._begin = begin

    async def start(self) -> None:
        # asyncpg's own start, for a top-level transaction (ours never nest: allow_nested=False).
        connection = self._connection
        if connection._top_xact is not None or connection._protocol.is_in_transaction():
            raise asyncpg.InterfaceError("a transaction with a context cannot be nested")
        connection._top_xact = self
        try:
            await connection.execute(self._begin)
        except BaseException:
            self._state = TransactionState.FAILED  # type: ignore[misc]  # asyncpg's slot, untyped
            raise
        self._state = TransactionState.STARTED


class _Transaction(PostgresTransaction):
    """Piccolo's transaction, with connection losses translated into `DatabaseUnavailable` (a 503 naming the
    database, never a 500) and the connection always given back to the pool.

    A pooled connection found broken at BEGIN (PostgreSQL restarted since it was last used) is replaced and the
    transaction begun once more: nothing was done on it, so this is safe whatever the request. A connection lost
    later is not retried: what the unit of work did is rolled back by PostgreSQL, except at COMMIT, whose outcome
    is then unknown; either way the client gets the 503 and retries (every state-changing handler is safe to
    retry).
    """

    __slots__ = ("_begin",)

    def __init__(self, engine: PostgresEngine, allow_nested: bool, begin: str | None) -> None:
        super().__init__(engine=engine, allow_nested=allow_nested)
        self._begin = begin

    async def __aenter__(self) -> PostgresTransaction:
        if self._parent is not None:
            return self._parent
        for attempt in (1, 2):
            try:
                connection = await self.get_connection()
            except Exception as exc:
                if is_connection_lost(exc):
                    raise _unavailable(exc) from exc
                raise
            # A pooled connection is a proxy; asyncpg's transactions hold the connection behind it.
            raw = connection._con if isinstance(connection, PoolConnectionProxy) else connection
            transaction = connection.transaction() if self._begin is None else _BeginWithContext(raw, self._begin)
            try:
                await transaction.start()
            except BaseException as exc:
                await self._give_back(connection)
                if not is_connection_lost(exc):
                    raise
                if attempt == 2:
                    raise _unavailable(exc) from exc
                metrics.DB_CONNECTION_RETRIES_TOTAL.inc()
                log.info("pooled connection broken at BEGIN (%s): beginning again on another", type(exc).__name__)
                continue
            self.connection, self.transaction = connection, transaction
            break
        self.context = self.engine.current_transaction.set(self)
        return self

    async def __aexit__(self, exception_type: Any, exception: BaseException | None, traceback: Any) -> bool:
        if self._parent:
            return exception is None
        lost = exception is not None and self._lost(exception)
        try:
            if exception is not None:
                if not self._rolled_back:
                    try:
                        await self.rollback()
                    except Exception as failed:
                        if not is_connection_lost(failed):
                            raise
                        lost = True  # PostgreSQL rolls back a transaction whose connection ends
            elif not self._committed and not self._rolled_back:
                try:
                    await self.commit()
                except Exception as failed:
                    if is_connection_lost(failed):
                        # It may have committed: never begun again here.
                        raise _unavailable(failed) from failed
                    raise
        finally:
            await self._give_back(self.connection)
            self.engine.current_transaction.reset(self.context)
        if lost:
            assert exception is not None
            raise _unavailable(exception) from exception
        return exception is None

    def _lost(self, exception: BaseException) -> bool:
        # An OSError of the unit of work's own (a file, say) is the database's only if its connection is gone.
        if isinstance(exception, OSError) and not self.connection.is_closed():
            return False
        return is_connection_lost(exception)

    async def _give_back(self, connection: asyncpg.Connection) -> None:
        try:
            if self.engine.pool:
                await self.engine.pool.release(connection)
            else:
                await connection.close()
        except Exception:
            log.warning("could not give a database connection back", exc_info=True)


class _DeferredEngine(PostgresEngine):
    async def check_version(self) -> None:
        # Piccolo connects at construction to check the server version; ours is built at import, before
        # settings exist, so the check is skipped (startup checks the database role instead).
        return None

    def transaction(self, allow_nested: bool = True, context: Mapping[str, str] | None = None) -> PostgresTransaction:
        """A transaction; with `context`, its settings are made by BEGIN's own statement (see `_begin_with`)."""
        return _Transaction(self, allow_nested, _begin_with(context) if context else None)

    async def run_querystring(self, querystring: QueryString, in_pool: bool = True) -> Any:
        try:
            return await super().run_querystring(querystring, in_pool)
        except Exception as exc:
            # Inside a transaction, the transaction translates (and rolls back) on the way out.
            if self.current_transaction.get() is None and is_connection_lost(exc):
                raise _unavailable(exc) from exc
            raise


# Tables bind to this engine at import; `start_pool` / `configure` point it at the configured database.
ENGINE = _DeferredEngine(config={"dsn": "postgresql://unconfigured.invalid/controlplane"})


class SystemReason(enum.StrEnum):
    STAFF_VIEW = "staff_view"
    STAFF_CHANGE = "staff_change"
    AUTHENTICATION = "authentication"
    IDEMPOTENCY = "idempotency"
    PLATFORM_JOB = "platform_job"
    MEMBER_INVITE = "member_invite"
    # Erasing a tenant's former members asks whether they belong to any other tenant: a cross-tenant read.
    ERASURE = "erasure"
    # Finding which tenant an id-addressed resource (a subscription, an invoice) belongs to, before the
    # principal is authorized for that tenant; reads only the tenant id.
    ROUTING = "routing"
    # A Stripe webhook names its tenant only inside its payload; it is recorded and applied in one transaction.
    WEBHOOK = "webhook"
    # Yanking a plugin version tells every tenant that has it installed.
    PLUGIN_YANK = "plugin_yank"
    # The public license revocation list: revoked license ids (nothing else) across tenants.
    REVOCATION_LIST = "revocation_list"
    # A partner signs up (no partner context exists yet); staff work the qualification queue.
    PARTNER_SIGNUP = "partner_signup"
    PARTNER_REVIEW = "partner_review"
    # Delivering the plugin outbox claims due events across tenants, each to its own tenant's endpoint.
    WEBHOOK_DELIVERY = "webhook_delivery"
    # Platform-wide counts for the business gauges (active tenants, subscriptions, MRR), read when scraped.
    METRICS = "metrics"
    # Sending the notification outbox claims due emails across tenants and partners, and looks up each
    # recipient's address, the tenant's or partner's name, when it sends.
    NOTIFICATION_DELIVERY = "notification_delivery"
    # Analytics read across every tenant, read-only: the MRR history (amounts and causes) for staff or a
    # reseller's admins, plugin adoption for staff.
    ANALYTICS = "analytics"
    # Showing rows of several tenants at once (a list of tenants) reads each one's wrapped data key to open its
    # personal data, when that key is not in memory; nothing else of the tenants.
    DATA_KEYS = "data_keys"
    # Self-service sign-up: a new user (the email is unique across tenants), then that person's own tenant.
    SIGNUP = "signup"
    # A person's own row, by email or id, outside any tenant: "sign out everywhere" and a forgotten password's
    # reset (the emailed link proved the address).
    SESSIONS = "sessions"


# asyncpg's `password=`: awaited for every new connection (`db_credentials.StaticRolePassword` reads OpenBao).
PasswordProvider = Callable[[], Awaitable[str]]
# Waits before trying a refused password again: a connection that read the password while OpenBao was rotating
# it may have read the old one; the next read has the new one.
_PASSWORD_RETRY_DELAYS = (0.1, 0.3, 0.6)


# A new connection that takes longer (an unreachable host drops packets) is an outage (`DatabaseUnavailable`), not
# asyncpg's 60 s wait per request.
CONNECT_TIMEOUT_SECONDS = 10.0


def configure(dsn: str, *, password: PasswordProvider | None = None) -> None:
    ENGINE.config = {"dsn": dsn} if password is None else {"dsn": dsn, "password": password}


async def start_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, password: PasswordProvider | None = None
) -> None:
    """Point the engine at `dsn` and open its pool.

    With `password`, every new connection asks it for the password (over one written in `dsn`). Connections
    already open are kept through a rotation: PostgreSQL checks a password only when a connection starts. Idle
    connections above `min_size` are closed after asyncpg's 300 s and any connection after 50,000 queries, so
    connections are re-made (and the provider exercised) in normal running without closing busy ones.
    """
    if ENGINE.pool is not None:
        # Piccolo would keep the old pool (and its database role) with only a warning.
        raise RuntimeError("a connection pool is already running; stop it first")
    configure(dsn, password=password)
    extra: dict[str, Any] = {} if password is None else {"connect": _connect_through_rotation}
    await ENGINE.start_connection_pool(
        min_size=min_size,
        max_size=max_size,
        init=_instrument_connection,
        timeout=CONNECT_TIMEOUT_SECONDS,
        connection_class=_PooledConnection,
        **extra,
    )


async def _connect_through_rotation(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """asyncpg.connect, asked again (the password provider re-read) when PostgreSQL refuses the password."""
    for delay in _PASSWORD_RETRY_DELAYS:
        try:
            return await asyncpg.connect(*args, **kwargs)
        except asyncpg.InvalidPasswordError:
            log.info("database password refused (rotated meanwhile?); reading it again in %.1fs", delay)
            await asyncio.sleep(delay)
    return await asyncpg.connect(*args, **kwargs)


def run_with_pool(
    dsn: str, work: Callable[[], Awaitable[T]], *, max_size: int = 2, password: PasswordProvider | None = None
) -> T:
    """Run `work` on a fresh event loop with a small pool of its own (Celery tasks, the CLI).

    An asyncpg pool belongs to the loop that made it, so each synchronous caller gets both anew.
    """

    async def main() -> T:
        await start_pool(dsn, min_size=1, max_size=max_size, password=password)
        try:
            return await work()
        finally:
            await stop_pool()

    return asyncio.run(main())


async def stop_pool() -> None:
    if ENGINE.pool is not None:
        await ENGINE.close_connection_pool()


async def _instrument_connection(connection: asyncpg.Connection) -> None:
    connection.add_query_logger(_observe_query)


def _observe_query(record: Any) -> None:
    metrics.DB_QUERY_SECONDS.observe(record.elapsed)


@asynccontextmanager
async def tenant_tx(tenant_id: uuid.UUID) -> AsyncIterator[PostgresTransaction]:
    """A transaction that sees exactly one tenant's rows."""
    if not isinstance(tenant_id, uuid.UUID):
        raise TypeError("tenant_tx needs a UUID")
    # Nesting would silently reuse the outer transaction and its (possibly other) tenant.
    async with ENGINE.transaction(allow_nested=False, context={"tenant_id": str(tenant_id), "scope": "tenant"}) as tx:
        yield tx


@asynccontextmanager
async def user_tx(user_id: uuid.UUID) -> AsyncIterator[PostgresTransaction]:
    """A transaction that sees one user's memberships and the tenants they belong to."""
    async with ENGINE.transaction(allow_nested=False, context={"user_id": str(user_id), "scope": "user"}) as tx:
        yield tx


@asynccontextmanager
async def partner_tx(partner_id: uuid.UUID) -> AsyncIterator[PostgresTransaction]:
    """A transaction that sees one partner's rows and, for a reseller, the tenants it owns."""
    if not isinstance(partner_id, uuid.UUID):
        raise TypeError("partner_tx needs a UUID")
    async with ENGINE.transaction(
        allow_nested=False, context={"reseller_id": str(partner_id), "scope": "partner"}
    ) as tx:
        yield tx


@asynccontextmanager
async def system_tx(reason: SystemReason) -> AsyncIterator[PostgresTransaction]:
    """A transaction across every tenant; audited by reason."""
    reason = SystemReason(reason)
    metrics.SYSTEM_CONTEXT_TOTAL.labels(reason=reason.value).inc()
    log.info("system context opened: %s (request %s)", reason.value, context.request_id.get() or "-")
    started = time.perf_counter()
    async with ENGINE.transaction(allow_nested=False, context={"scope": "system"}) as tx:
        yield tx
    log.debug("system context closed after %.3fs", time.perf_counter() - started)


@asynccontextmanager
async def anonymous_tx() -> AsyncIterator[PostgresTransaction]:
    """A transaction with no tenant context: tenant tables read as empty. For global tables only."""
    async with ENGINE.transaction(allow_nested=False) as tx:
        yield tx


async def fetch(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Raw SQL inside the current transaction (`{}` placeholders, values bound)."""
    rows = await ENGINE.run_querystring(QueryString(sql, *args))
    return [dict(row) for row in rows]
