"""A real Celery worker process runs tasks inside a tenant's context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery

from tests.workers._worker import running_worker


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Celery]:
    with running_worker(stack_env, tmp_path_factory.mktemp("worker") / "worker.log") as client:
        yield client


async def test_export_runs_in_the_tenants_context_only(worker: Celery, factory) -> None:
    staff = await factory.staff()
    tenant_a = await factory.tenant(staff, name="Alpha")
    tenant_b = await factory.tenant(staff, name="Beta")
    admin_a = await factory.member(tenant_a["id"])
    admin_b = await factory.member(tenant_b["id"])

    first = worker.send_task("controlplane.export_tenant", args=[tenant_a["id"]]).get(timeout=60)
    again = worker.send_task("controlplane.export_tenant", args=[tenant_a["id"]]).get(timeout=60)

    assert first["tenant"]["id"] == tenant_a["id"]
    assert first["tenants_visible"] == 1
    assert [member["email"] for member in first["members"]] == [admin_a.email]
    assert admin_b.email not in str(first)
    assert tenant_b["id"] not in str(first)
    assert first == again  # safe to run twice


async def test_export_of_an_unknown_tenant_fails(worker: Celery) -> None:
    result = worker.send_task("controlplane.export_tenant", args=["00000000-0000-4000-8000-000000000000"])
    with pytest.raises(Exception, match="Tenant not found"):
        result.get(timeout=60)


async def test_purge_of_expired_idempotency_keys_is_repeatable(worker: Celery, factory, client) -> None:
    staff = await factory.staff()
    response = await client.post(
        "/v1/tenants",
        json={"name": "Keyed", "slug": "keyed", "currency": "USD"},
        headers={**staff.headers, "Idempotency-Key": "k-1"},
    )
    assert response.status_code == 201
    # Nothing has expired yet: both runs delete nothing, and the key still replays.
    assert worker.send_task("controlplane.purge_expired_idempotency_keys").get(timeout=60) == 0
    assert worker.send_task("controlplane.purge_expired_idempotency_keys").get(timeout=60) == 0
    replay = await client.post(
        "/v1/tenants",
        json={"name": "Keyed", "slug": "keyed", "currency": "USD"},
        headers={**staff.headers, "Idempotency-Key": "k-1"},
    )
    assert replay.status_code == 201 and replay.json()["id"] == response.json()["id"]
