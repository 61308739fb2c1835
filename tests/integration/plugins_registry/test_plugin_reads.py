"""The narrow reads of the console's plugin pages (`get_install`, `latest_licenses`, `list_licenses` with a
plugin, `seats_in_use`): only that tenant's install and licenses (of that plugin), and row-level security
keeps every other tenant's rows out even when a query names that other tenant."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from httpx import AsyncClient
from litestar import Litestar

from controlplane.core.db import tenant_tx
from controlplane.core.errors import InvalidInput
from controlplane.core.pagination import PageRequest
from plugins_registry import repository, service
from tests.api.plugins._support import install, machine_key, plugin, publisher, tenant_with_admin
from tests.factories import Actor, Factory


async def _uninstall(client: AsyncClient, admin: Actor, tenant_id: str, slug: str) -> None:
    response = await client.delete(f"/v1/tenants/{tenant_id}/plugins/{slug}", headers=admin.headers)
    assert response.status_code == 204, response.text


async def _two_tenants(client: AsyncClient, factory: Factory) -> dict[str, Any]:
    """Tenants a and b with the same two plugins; a reinstalled `slug` once (two licenses of it, the older one
    revoked); b holds a license of `slug` too."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    slug = (await plugin(client, staff.headers, pub["id"]))["slug"]
    other = (await plugin(client, staff.headers, pub["id"]))["slug"]
    a, a_admin = await tenant_with_admin(factory, staff, endpoint=False)
    b, b_admin = await tenant_with_admin(factory, staff, endpoint=False)
    first = await install(client, a_admin.headers, a["id"], slug)
    await _uninstall(client, a_admin, a["id"], slug)
    second = await install(client, a_admin.headers, a["id"], slug)
    a_other = await install(client, a_admin.headers, a["id"], other)
    b_install = await install(client, b_admin.headers, b["id"], slug)
    return {
        "staff": staff,
        "b_admin": b_admin,
        "slug": slug,
        "other": other,
        "a": uuid.UUID(a["id"]),
        "b": uuid.UUID(b["id"]),
        "a_admin": a_admin,
        "first": first,
        "second": second,
        "a_other": a_other,
        "b_install": b_install,
    }


async def test_get_install_is_the_tenants_live_install_of_that_plugin_only(
    client: AsyncClient, factory: Factory, app: Litestar
) -> None:
    made = await _two_tenants(client, factory)
    issuer = app.state.licensing
    found = await service.get_install(issuer, made["a"], made["slug"])
    assert found is not None
    assert (found.id, found.tenant_id, found.plugin) == (uuid.UUID(made["second"]["id"]), made["a"], made["slug"])
    assert found.license.id == uuid.UUID(made["second"]["license"]["id"])
    assert found.license.status == "active"
    other = await service.get_install(issuer, made["b"], made["slug"])
    assert other is not None and other.id == uuid.UUID(made["b_install"]["id"]) and other.tenant_id == made["b"]
    # A plugin never installed, or no plugin at all: nothing.
    assert await service.get_install(issuer, made["b"], made["other"]) is None
    assert await service.get_install(issuer, made["a"], "no-such-plugin") is None
    # Uninstalled: the old install stays as history, but it is not the tenant's install any more.
    await _uninstall(client, made["a_admin"], str(made["a"]), made["slug"])
    assert await service.get_install(issuer, made["a"], made["slug"]) is None
    assert await service.get_install(issuer, made["b"], made["slug"]) is not None


async def test_latest_licenses_are_the_tenants_of_that_plugin_newest_first_and_bounded(
    client: AsyncClient, factory: Factory, app: Litestar
) -> None:
    made = await _two_tenants(client, factory)
    issuer = app.state.licensing
    newest, oldest = (uuid.UUID(made[key]["license"]["id"]) for key in ("second", "first"))
    found = await service.latest_licenses(issuer, made["a"], made["slug"], 50)
    assert [each.id for each in found] == [newest, oldest]
    assert [each.status for each in found] == ["active", "revoked"]
    assert {(each.tenant_id, each.plugin) for each in found} == {(made["a"], made["slug"])}
    assert [each.id for each in await service.latest_licenses(issuer, made["a"], made["slug"], 1)] == [newest]
    b_license = uuid.UUID(made["b_install"]["license"]["id"])
    assert [each.id for each in await service.latest_licenses(issuer, made["b"], made["slug"], 50)] == [b_license]
    assert await service.latest_licenses(issuer, made["b"], made["other"], 50) == []
    assert await service.latest_licenses(issuer, made["a"], "no-such-plugin", 50) == []
    for limit in (0, -1, 101):
        with pytest.raises(InvalidInput):
            await service.latest_licenses(issuer, made["a"], made["slug"], limit)


async def test_list_licenses_of_one_plugin_pages_oldest_first(
    client: AsyncClient, factory: Factory, app: Litestar
) -> None:
    made = await _two_tenants(client, factory)
    issuer = app.state.licensing
    oldest, newest = (uuid.UUID(made[key]["license"]["id"]) for key in ("first", "second"))
    first = await service.list_licenses(issuer, made["a"], PageRequest.parse(1, None), made["slug"])
    assert [each.id for each in first.items] == [oldest] and first.next_cursor is not None
    second = await service.list_licenses(issuer, made["a"], PageRequest.parse(1, first.next_cursor), made["slug"])
    assert [each.id for each in second.items] == [newest] and second.next_cursor is None
    # Without the plugin: every license of the tenant, its other plugin's too.
    every = await service.list_licenses(issuer, made["a"], PageRequest.parse(None, None))
    assert [each.id for each in every.items] == [oldest, newest, uuid.UUID(made["a_other"]["license"]["id"])]


async def _activate(client: AsyncClient, admin: Actor, tenant_id: uuid.UUID, license_id: str, host: str) -> None:
    key = await machine_key(client, admin.headers, str(tenant_id))
    response = await client.post(f"/v1/licenses/{license_id}/activations", json={"fingerprint": host}, headers=key)
    assert response.status_code == 201, response.text


async def test_seats_in_use_count_each_active_license_of_the_tenant_only(client: AsyncClient, factory: Factory) -> None:
    made = await _two_tenants(client, factory)
    a_license, a_other = (made[key]["license"]["id"] for key in ("second", "a_other"))
    for host in ("one", "two"):
        await _activate(client, made["a_admin"], made["a"], a_license, host)
    await _activate(client, made["b_admin"], made["b"], made["b_install"]["license"]["id"], "b-host")
    # The revoked license of the first install is not active: it holds no seat and is not listed.
    assert await service.seats_in_use(made["a"]) == {uuid.UUID(a_license): 2, uuid.UUID(a_other): 0}
    assert await service.seats_in_use(made["b"]) == {uuid.UUID(made["b_install"]["license"]["id"]): 1}


async def test_row_level_security_hides_another_tenants_install_and_licenses_whatever_the_query_names(
    client: AsyncClient, factory: Factory, report: Any
) -> None:
    """The reads name their tenant; in tenant a's transaction, a query naming tenant b finds nothing of b's."""
    made = await _two_tenants(client, factory)
    async with tenant_tx(made["a"]):
        assert await repository.live_install(made["b"], made["slug"]) is None
        assert await repository.latest_licenses(made["b"], made["slug"], 50) == []
        assert await repository.list_licenses(made["b"], PageRequest.parse(None, None), made["slug"]) == []
        assert await repository.seats_in_use(made["b"]) == []
        # The same queries for tenant a find its rows: it is the policy that hid b's, not the query.
        assert await repository.live_install(made["a"], made["slug"]) is not None
        assert len(await repository.latest_licenses(made["a"], made["slug"], 50)) == 2
    async with tenant_tx(made["b"]):
        assert await repository.live_install(made["a"], made["slug"]) is None
        assert await repository.latest_licenses(made["a"], made["slug"], 50) == []
    report("plugin reads: 6 reads of another tenant's install and licenses found nothing under RLS")
