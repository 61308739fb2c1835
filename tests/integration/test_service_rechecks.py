"""Services check access again inside their own transaction: the guard's answer may be stale by then."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.core.auth.principal import Principal
from controlplane.core.pagination import PageRequest
from controlplane.core.tenant_vault import TenantVault
from tenants import service
from tenants.errors import ForbiddenForRole, TenantNotFound
from tests.integration.conftest import staff_principal


async def test_a_demoted_admin_cannot_finish_a_change(client: Any, tenant_vault: TenantVault) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(staff, service.NewTenant(name="A", slug="recheck", currency="EUR"))
    admin = await service.add_member(staff, tenant.id, "admin@a.example", "tenant_admin")
    await service.add_member(staff, tenant.id, "other@a.example", "tenant_admin")
    acting = Principal(kind="user", id=admin.user_id)
    # The guard let this admin in; then, before the handler ran, someone demoted them.
    await service.change_member_role(staff, tenant.id, admin.user_id, "tenant_member")

    refused = [
        service.update_tenant(acting, tenant.id, {"name": "Mine now"}),
        service.add_member(acting, tenant.id, "friend@a.example", "tenant_admin"),
        service.create_api_key(acting, tenant.id, "backdoor", "tenant_admin"),
        service.request_erasure(acting, tenant.id, tenant_vault),
    ]
    for attempt in refused:
        with pytest.raises(ForbiddenForRole):
            await attempt
    assert (await service.get_tenant(tenant.id)).name == "A"
    members = (await service.list_members(tenant.id, PageRequest())).items
    assert {m.email for m in members} == {"admin@a.example", "other@a.example"}


async def test_a_removed_member_cannot_finish_a_change(client: Any) -> None:
    staff = staff_principal()
    tenant = await service.create_tenant(staff, service.NewTenant(name="A", slug="removed", currency="EUR"))
    leaving = await service.add_member(staff, tenant.id, "leaving@a.example", "tenant_admin")
    await service.add_member(staff, tenant.id, "staying@a.example", "tenant_admin")
    await service.remove_member(staff, tenant.id, leaving.user_id)
    with pytest.raises(TenantNotFound):
        await service.update_tenant(Principal(kind="user", id=leaving.user_id), tenant.id, {"name": "X"})
