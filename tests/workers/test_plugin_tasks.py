"""The plugin registry's beat tasks in a real Celery worker: expiry, the release of silent seats, and a plugin
trial's add-on entering the MRR history when the trial ends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery

from tests.api.billing._support import plan, subscribe
from tests.api.plugins._support import check, install, machine_key, plugin, publisher, tenant_with_admin
from tests.workers._worker import running_worker
from workers.schedule import BEAT_SCHEDULE


@pytest.fixture(scope="module")
def worker(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Celery]:
    with running_worker(stack_env, tmp_path_factory.mktemp("worker") / "worker.log") as client:
        yield client


def test_both_tasks_are_on_the_beat_schedule() -> None:
    tasks = {entry["task"] for entry in BEAT_SCHEDULE.values()}
    assert {
        "controlplane.plugins.expire_licenses",
        "controlplane.plugins.release_stale_activations",
        "controlplane.webhooks.deliver",
        "controlplane.billing.record_addon_changes",
    } <= tasks


async def test_the_worker_expires_a_lapsed_trial_and_frees_silent_seats(
    worker: Celery, client: Any, factory: Any
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    pricing = {"model": "flat", "amount_minor": 500, "currency": "EUR", "trial_days": 7}
    trial = await plugin(client, staff.headers, pub["id"], pricing=pricing)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    tenant, admin = await tenant_with_admin(factory, staff)
    await subscribe(client, staff.headers, tenant["id"], "pro")
    installed = await install(client, admin.headers, tenant["id"], trial["slug"])
    key = await machine_key(client, admin.headers, tenant["id"])
    license_url = f"/v1/licenses/{installed['license']['id']}"
    held = await client.post(f"{license_url}/activations", json={"fingerprint": "host-1"}, headers=key)
    assert held.status_code == 201, held.text

    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    assert worker.send_task("controlplane.plugins.release_stale_activations", args=[later]).get(timeout=60) == 1
    assert worker.send_task("controlplane.plugins.release_stale_activations", args=[later]).get(timeout=60) == 0
    assert (await client.get(f"{license_url}/activations", headers=key)).json()["items"] == []
    # The trial's 7 days end with no write: the catch-up records the plugin's add-on then, once.
    after_trial = (datetime.now(UTC) + timedelta(days=7, hours=1)).isoformat()
    for recorded in (1, 0):
        assert worker.send_task("controlplane.billing.record_addon_changes", args=[after_trial]).get(timeout=60) == {
            "tenants": recorded,
            "failed": 0,
        }
    # Long after the trial and any period the subscription has paid for: the trial cannot convert.
    far = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    assert worker.send_task("controlplane.plugins.expire_licenses", args=[far]).get(timeout=60) == {
        "converted": 0,
        "expired": 1,
    }
    assert worker.send_task("controlplane.plugins.expire_licenses", args=[far]).get(timeout=60) == {
        "converted": 0,
        "expired": 0,
    }
    assert (await check(client, key, trial["slug"]))["reason"] == "license_expired"


async def test_the_worker_delivers_a_tenants_events_to_its_endpoint(worker: Celery, client: Any, factory: Any) -> None:
    from tests.api._webhooks import Receiver

    receiver = Receiver()
    try:
        staff = await factory.staff()
        pub = await publisher(client, staff.headers)
        made = await plugin(client, staff.headers, pub["id"])
        tenant, admin = await tenant_with_admin(factory, staff)
        base = f"/v1/tenants/{tenant['id']}"
        await client.put(f"{base}/webhook-endpoint", json={"url": receiver.url}, headers=admin.headers)
        await client.post(f"{base}/webhook-secret/rotations", headers=admin.headers)
        await install(client, admin.headers, tenant["id"], made["slug"])
        report = worker.send_task("controlplane.webhooks.deliver").get(timeout=60)
        assert report["delivered"] == len(receiver.received) >= 1
        assert report == {"claimed": report["delivered"], "delivered": report["delivered"], "retrying": 0, "failed": 0}
    finally:
        receiver.server.shutdown()
