"""Envelope encryption of a tenant's personal data, through the API and the real OpenBao: a read with the data key
in memory makes no OpenBao call; erasure destroys the key (here, and in every process through the invalidation
topic); a value moved to another tenant does not open; an OpenBao outage is a named 503 for a cold key only; two
first seals at once leave one key."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import hvac
import pytest
from httpx import AsyncClient
from litestar import Litestar

from controlplane.core import invalidation
from controlplane.core.pii import PersonalDataUnreadable, PiiCipher
from tenants import billing_contact, data_keys, service
from tests.api._helpers import assert_problem
from tests.api.test_dependency_outages import _closed_port
from tests.conftest import connect_as_inspector
from tests.factories import Factory
from tests.integration.conftest import staff_principal


@pytest.fixture
def transit_calls(app: Litestar, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path of every transit request the API process makes from now on (the PII cipher's client)."""
    # The API's own cipher: another app started earlier in this process (a startup test) installed its own.
    monkeypatch.setattr(billing_contact, "_cipher", app.state.pii_cipher)
    adapter = app.state.secret_store.client.adapter
    send = adapter.request
    calls: list[str] = []

    def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if "/transit/" in url:
            calls.append(url)
        return send(method, url, *args, **kwargs)

    monkeypatch.setattr(adapter, "request", counted)
    return calls


async def _stored_email(stack_env: dict[str, str], tenant_id: str) -> str:
    inspector = await connect_as_inspector(stack_env)
    try:
        return str(await inspector.fetchval("select billing_email from tenants where id = $1", uuid.UUID(tenant_id)))
    finally:
        await inspector.close()


async def _reveal(tenant_id: str, sealed: str) -> str:
    (row,) = await billing_contact.reveal([{"id": uuid.UUID(tenant_id), "billing_email": sealed}])
    return str(row["billing_email"])


async def test_a_tenant_read_makes_no_openbao_call_once_its_data_key_is_warm(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], transit_calls: list[str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="ap@warm.example")
    admin = await factory.member(tenant["id"], "tenant_admin")
    url = f"/v1/tenants/{tenant['id']}"
    sealed = await _stored_email(stack_env, tenant["id"])
    assert sealed.startswith("dk:v1:") and "warm.example" not in sealed

    invalidation.clear_all()  # nothing in memory, as after a restart
    transit_calls.clear()
    cold = await client.get(url, headers=admin.headers)
    assert cold.json()["billing_email"] == "ap@warm.example"
    assert [path.split("/transit/")[1].split("/")[0] for path in transit_calls] == ["decrypt"]  # unwrapped once

    transit_calls.clear()
    for _ in range(20):
        warm = await client.get(url, headers=admin.headers)
        assert warm.json()["billing_email"] == "ap@warm.example"
    listed = (await client.get("/v1/tenants", headers=staff.headers)).json()["items"]
    assert [item["billing_email"] for item in listed] == ["ap@warm.example"]
    # Writes seal with the key in memory too.
    changed = await client.patch(url, json={"billing_email": "ar@warm.example"}, headers=admin.headers)
    assert changed.json()["billing_email"] == "ar@warm.example"
    profile_url = f"{url}/billing-profile"
    assert (await client.put(profile_url, json={"tax_id": "DE 1"}, headers=admin.headers)).status_code == 200
    assert (await client.get(profile_url, headers=admin.headers)).json()["tax_id"] == "DE 1"
    assert transit_calls == []


async def test_an_erased_tenants_data_key_is_gone_and_its_values_no_longer_open(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="ap@doomed.example")
    url = f"/v1/tenants/{tenant['id']}"
    sealed = await _stored_email(stack_env, tenant["id"])  # as a backup or a copy keeps it
    assert (await client.get(url, headers=staff.headers)).json()["billing_email"] == "ap@doomed.example"
    assert await _reveal(tenant["id"], sealed) == "ap@doomed.example"  # the key is in memory

    assert (await client.delete(url, headers=staff.headers)).status_code == 202
    inspector = await connect_as_inspector(stack_env)
    try:
        keys = await inspector.fetchval(
            "select count(*) from tenant_data_keys where tenant_id = $1", uuid.UUID(tenant["id"])
        )
    finally:
        await inspector.close()
    assert keys == 0
    with pytest.raises(PersonalDataUnreadable):
        await _reveal(tenant["id"], sealed)


async def _eventually_raises(attempt: Callable[[], Awaitable[Any]], error: type[Exception]) -> float:
    """Seconds until `attempt()` raises `error` (at most 5)."""
    started = time.monotonic()
    while time.monotonic() - started < 5:
        try:
            await attempt()
        except error:
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    raise AssertionError(f"{attempt} never raised {error.__name__}")


async def test_a_key_destroyed_by_another_process_leaves_this_ones_memory_at_once(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, billing_email="ap@elsewhere.example")
    sealed = await _stored_email(stack_env, tenant["id"])
    assert await _reveal(tenant["id"], sealed) == "ap@elsewhere.example"  # warm here
    # What another API process's erasure commits: the key's row deleted and its eviction published.
    inspector = await connect_as_inspector(stack_env)
    try:
        async with inspector.transaction():
            await inspector.execute("delete from tenant_data_keys where tenant_id = $1", uuid.UUID(tenant["id"]))
            await inspector.execute(
                "select pg_notify($1, $2)", invalidation.CHANNEL, f"{data_keys.TOPIC}:{tenant['id']}"
            )
    finally:
        await inspector.close()
    # Well within the key's time in memory (minutes): the notification evicted it.
    assert await _eventually_raises(lambda: _reveal(tenant["id"], sealed), PersonalDataUnreadable) < 5


async def test_a_value_moved_to_another_tenants_row_does_not_open_there(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    staff = await factory.staff()
    victim = await factory.tenant(staff, billing_email="ap@victim.example")
    thief = await factory.tenant(staff, billing_email="ap@thief.example")
    stolen = await _stored_email(stack_env, victim["id"])
    assert await _reveal(thief["id"], await _stored_email(stack_env, thief["id"])) == "ap@thief.example"
    with pytest.raises(PersonalDataUnreadable):
        await _reveal(thief["id"], stolen)
    # Copied into the thief's row in the database: the read fails rather than show it.
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute("update tenants set billing_email = $1 where id = $2", stolen, uuid.UUID(thief["id"]))
    finally:
        await inspector.close()
    response = await client.get(f"/v1/tenants/{thief['id']}", headers=staff.headers)
    assert_problem(response, 500, "internal_error")
    assert "victim" not in response.text


async def test_with_openbao_down_a_warm_key_keeps_serving_and_a_cold_one_is_a_named_503(
    app: Litestar, client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    warm = await factory.tenant(staff, billing_email="ap@warm.example")
    cold = await factory.tenant(staff, billing_email="ap@cold.example")
    invalidation.clear_all()
    assert (await client.get(f"/v1/tenants/{warm['id']}", headers=staff.headers)).status_code == 200
    billing_contact.use(PiiCipher(hvac.Client(url=f"http://127.0.0.1:{_closed_port()}", token="x", timeout=2)))
    try:
        served = await client.get(f"/v1/tenants/{warm['id']}", headers=staff.headers)
        refused = await client.get(f"/v1/tenants/{cold['id']}", headers=staff.headers)
    finally:
        billing_contact.use(app.state.pii_cipher)
    assert (served.status_code, served.json()["billing_email"]) == (200, "ap@warm.example")
    assert_problem(refused, 503, "openbao_unavailable")
    assert int(refused.headers["Retry-After"]) > 0
    assert (await client.get(f"/v1/tenants/{cold['id']}", headers=staff.headers)).json()["billing_email"] == (
        "ap@cold.example"
    )


class SlowToMakeKeys(PiiCipher):
    """Makes a data key slowly, so that two first seals at once both find none and both make one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.made = 0

    def new_data_key(self, tenant_id: uuid.UUID) -> tuple[bytes, str]:
        time.sleep(0.3)
        self.made += 1
        return super().new_data_key(tenant_id)


async def test_two_first_seals_at_once_leave_one_key_that_opens_both(
    app: Litestar, client: AsyncClient, stack_env: dict[str, str]
) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(staff, service.NewTenant(name="Race", slug="race", currency="EUR"))
    cipher = SlowToMakeKeys(app.state.secret_store.client)
    await asyncio.gather(
        *(
            service.put_billing_profile(staff, cipher, tenant.id, service.BillingProfileValues(tax_id=tax_id))
            for tax_id in ("FIRST", "SECOND")
        )
    )
    assert cipher.made == 2  # both made one: one was stored, the other given up for it
    inspector = await connect_as_inspector(stack_env)
    try:
        assert await inspector.fetchval("select count(*) from tenant_data_keys where tenant_id = $1", tenant.id) == 1
    finally:
        await inspector.close()
    invalidation.clear_all()
    assert (await service.get_billing_profile(cipher, tenant.id)).tax_id in ("FIRST", "SECOND")
