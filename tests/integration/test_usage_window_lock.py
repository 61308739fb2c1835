"""A billing run waits for usage batches in flight on the same tenant, so no accepted event lands in a window
that has just been invoiced (and is then never billed)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from httpx import AsyncClient

from billing import service
from billing.subscriptions import repository as subscriptions_repository
from tests.api.billing._support import metric, plan, subscribe
from tests.factories import Factory


async def test_billing_waits_for_an_ingestion_holding_the_usage_window(
    client: AsyncClient, factory: Factory, app_connection: asyncpg.Connection
) -> None:
    staff = await factory.staff()
    await metric(client, staff.headers, "api_calls")
    await plan(client, staff.headers, "metered", [{"type": "flat", "amount_minor": 100}])
    tenant = await factory.tenant(staff)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    subscription = await subscribe(client, staff.headers, tenant["id"], "metered", start_at=start)
    tenant_id, subscription_id = uuid.UUID(tenant["id"]), uuid.UUID(subscription["id"])
    as_of = datetime(2026, 2, 1, 1, tzinfo=UTC)

    # What `ingest` does first: hold the tenant's usage window shared until its transaction ends.
    batch = app_connection.transaction()
    await batch.start()
    await app_connection.execute("select set_config('app.tenant_id', $1, true)", str(tenant_id))
    await app_connection.execute(
        "select pg_advisory_xact_lock_shared($1, hashtext($2))",
        subscriptions_repository.USAGE_WINDOW_LOCK,
        str(tenant_id),
    )
    billing = asyncio.create_task(service.bill_subscription(tenant_id, subscription_id, as_of, timedelta(0)))
    await asyncio.sleep(0.5)
    assert not billing.done(), "billing moved the usage window while a batch held it"
    await batch.commit()
    assert await asyncio.wait_for(billing, timeout=10) == 1
