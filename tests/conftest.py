"""Shared fixtures: one real embedded stack per test session, migrated, and a clean database per test.

Nothing here assumes a running service: the stack starts in a temporary folder and stops at the end.
Tests talk to PostgreSQL as the app role (row-level security applies); only the cleanup uses the owner.
"""

from __future__ import annotations

import asyncio
import graphlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from httpx import ASGITransport, AsyncClient
from litestar import Litestar

from billing.subscriptions.state import forget_catalogue
from controlplane.app import create_app
from controlplane.core import invalidation
from controlplane.core.auth import passwords
from controlplane.core.auth.throttle import KEY_PREFIX as THROTTLE_PREFIX
from controlplane.core.ratelimit.store import KEY_PREFIX as RATE_LIMIT_PREFIX
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.tenant_vault import TenantVault
from controlplane.devstack import DevStack
from controlplane.devstack.mail_store import MailStore
from controlplane.ops.migrations import run_migrations
from tests.factories import Factory

# The browser fixtures (`browser`, `page`): Debian's chromium through Playwright, see tests/browser.py.
pytest_plugins = ["tests.browser"]

# Thousands of people are created here: at argon2's full cost each would take ~0.4 s of CPU (hash and sign-in).
passwords.use_cheapest_cost_for_tests()

COUNTS = pytest.StashKey[list[str]]()

TABLES = (
    "mrr_changes",
    "notifications",
    "discount_applications",
    "discounts",
    "coupons",
    "credit_transactions",
    "credit_lots",
    "tenant_billing_profiles",
    "tenant_data_keys",
    "tenant_webhook_endpoints",
    "commission_close_issues",
    "commission_lines",
    "reseller_statements",
    "commission_events",
    "reseller_agreements",
    "partner_checkpoint_history",
    "partner_checkpoints",
    "partner_members",
    "partners",
    "webhook_outbox",
    "plugin_install_events",
    "license_activations",
    "licenses",
    "plugin_installs",
    "plugin_versions",
    "plugins",
    "publishers",
    "stripe_webhook_events",
    "stripe_webhook_rejections",
    "ledger_postings",
    "escrow_milestones",
    "escrows",
    "refunds",
    "ledger_journals",
    "payments",
    "payment_methods",
    "billing_customers",
    "credit_notes",
    "tenant_tax_rates",
    "tax_rates",
    "pending_invoice_items",
    "invoice_lines",
    "invoices",
    "usage_totals",
    "usage_events",
    "trials",
    "subscription_addons",
    "subscriptions",
    "plans",
    "billable_metrics",
    "idempotency_keys",
    "audit_events",
    "api_keys",
    "memberships",
    "tenants",
    "users",
    "disputes",
    "billing_documents",
)


@pytest.fixture(scope="session")
def devstack_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(os.environ.get("CONTROLPLANE_TEST_DEVSTACK_DIR") or tmp_path_factory.mktemp("devstack"))


@pytest.fixture(scope="session")
def stack_env(devstack_root: Path) -> Iterator[dict[str, str]]:
    stack = DevStack(devstack_root, api_port=0, durable=False)
    try:
        env = stack.up(configured={})
        asyncio.run(run_migrations(env["DATABASE_OWNER_URL"], env["DATABASE_URL"]))
        yield env
    finally:
        stack.down()


@pytest.fixture(scope="session")
def mail_store(devstack_root: Path, stack_env: dict[str, str]) -> MailStore:
    """What the stack's SMTP server (the dev stack's own, on a free port; SMTP_URL in `settings`) received."""
    return MailStore(devstack_root / "mail")


@pytest.fixture
def mailbox(mail_store: MailStore) -> Iterator[MailStore]:
    """The stack's mail store, empty at the start and at the end of the test: `mailbox.messages()` parses each
    message received since (email.message.EmailMessage, oldest first); `mailbox.clear()` empties it."""
    mail_store.clear()
    yield mail_store
    mail_store.clear()


# Tests make requests much faster than any client should, from one address: the suite's limiter is on, with
# budgets no test reaches; the rate-limit tests set their own (tests/api/test_rate_limits.py).
UNREACHED_LIMITS = {
    f"RATE_LIMIT_{scope}{limit_class}": "1000000/100000000"
    for scope in ("", "TENANT_")
    for limit_class in ("INGESTION", "ENTITLEMENTS", "READS", "WRITES", "UNAUTHENTICATED")
}


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    return Settings.from_env({**stack_env, **UNREACHED_LIMITS, "CONTROLPLANE_ENV": "test"})


@pytest.fixture(scope="session")
def app(settings: Settings) -> Litestar:
    return create_app(settings)


@pytest.fixture(scope="session")
async def client(app: Litestar) -> AsyncIterator[AsyncClient]:
    # The lifespan (and so the connection pool) runs on the test's own event loop; Litestar's
    # AsyncTestClient would run it on another loop in a thread, where the pool cannot be shared.
    async with (
        LifespanManager(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as test_client,
    ):
        yield test_client


@dataclass(frozen=True)
class _Cleanup:
    """How to empty the tables fast: DELETE from the few a test wrote to, children before parents, rather than
    TRUNCATE every table (TRUNCATE recreates each table's files: ~100 ms a test even when it wrote one row).
    Tables whose BEFORE DELETE triggers refuse deletes (append-only ones) are truncated alone."""

    delete_order: tuple[str, ...]  # every table of TABLES, children before parents
    truncated: frozenset[str]
    probe: str  # one statement: the names of the tables that hold a row


async def _cleanup_plan(connection: asyncpg.Connection) -> _Cleanup | None:
    """None when the foreign keys have a cycle: then every test truncates everything."""
    references = await connection.fetch(
        "select conrelid::regclass::text as child, confrelid::regclass::text as parent from pg_constraint "
        "where contype = 'f' and conrelid <> confrelid"
    )
    parents_first: dict[str, set[str]] = {table: set() for table in TABLES}
    for row in references:
        if row["child"] in parents_first and row["parent"] in parents_first:
            parents_first[row["parent"]].add(row["child"])  # a parent waits for its children
    try:
        order = tuple(graphlib.TopologicalSorter(parents_first).static_order())
    except graphlib.CycleError:
        return None
    # TRIGGER_TYPE_BEFORE (2) and TRIGGER_TYPE_DELETE (8) in pg_trigger.tgtype.
    refusing = await connection.fetch(
        "select distinct tgrelid::regclass::text as name from pg_trigger "
        "where not tgisinternal and tgtype & 2 <> 0 and tgtype & 8 <> 0"
    )
    probe = " union all ".join(
        f"select '{table}' as name where exists (select 1 from {table})"  # noqa: S608 (our own table names)
        for table in TABLES
    )
    return _Cleanup(order, frozenset(row["name"] for row in refusing), probe)


_CLEANUP: list[_Cleanup | None] = []  # computed once per session, on the first cleanup


async def _empty_tables(connection: asyncpg.Connection) -> None:
    if not _CLEANUP:
        _CLEANUP.append(await _cleanup_plan(connection))
    plan = _CLEANUP[0]
    if plan is not None:
        try:
            async with connection.transaction():
                # The owner is subject to the forced policies too: the platform scope sees every row.
                await connection.execute("select set_config('app.scope', 'system', true)")
                written = {row["name"] for row in await connection.fetch(plan.probe)}
                for table in plan.delete_order:
                    if table in written:
                        verb = "truncate" if table in plan.truncated else "delete from"
                        await connection.execute(f"{verb} {table}")
            return
        except asyncpg.PostgresError:  # a reference or trigger the plan did not foresee: the slow way
            pass
    await connection.execute(f"truncate {', '.join(TABLES)} cascade")


@pytest.fixture(autouse=True)
async def clean_database(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Each test starts and leaves an empty database (only for tests that use the stack)."""
    yield
    if "stack_env" not in request.fixturenames:
        return
    env = request.getfixturevalue("stack_env")
    connection = await asyncpg.connect(env["DATABASE_OWNER_URL"])
    try:
        await _empty_tables(connection)
        forget_catalogue()
        invalidation.clear_all()
    finally:
        await connection.close()
    # Sign-in counters and rate-limit buckets too (not FLUSHDB: the Celery broker shares this Redis).
    redis_client = aioredis.from_url(env["REDIS_URL"])
    try:
        for prefix in (THROTTLE_PREFIX, RATE_LIMIT_PREFIX):
            async for key in redis_client.scan_iter(match=prefix + "*"):
                await redis_client.delete(key)
    finally:
        await redis_client.aclose()


@pytest.fixture
def tenant_vault(settings: Settings) -> TenantVault:
    return TenantVault(SecretStore.connect(settings).client)


@pytest.fixture
def factory(client: AsyncClient) -> Factory:
    return Factory(client)


async def connect_as_inspector(stack_env: dict[str, str]) -> asyncpg.Connection:
    """A dedicated (never pooled) owner connection in the platform scope, for checking what is really stored.

    The owner is subject to the forced policies too; the scope is a startup setting of this one connection.
    """
    return await asyncpg.connect(stack_env["DATABASE_OWNER_URL"], server_settings={"app.scope": "system"})


def problem_of(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body: dict[str, Any] = response.json()
    for field in ("type", "title", "status", "detail", "code"):
        assert field in body, body
    assert body["status"] == response.status_code
    return body


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Any:
    """`report(line)`: a count (isolation, faults) printed in the run's summary, whatever the capture mode."""
    lines = request.config.stash.setdefault(COUNTS, [])
    return lines.append


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(COUNTS, [])
    if lines:
        terminalreporter.section("isolation and fault counts")
        for line in lines:
            terminalreporter.write_line(line)
