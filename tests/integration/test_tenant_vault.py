"""Per-tenant OpenBao namespaces against the real OpenBao: one tenant's credentials reach no other's secrets."""

from __future__ import annotations

import uuid
from typing import Any

import hvac
import hvac.exceptions
import pytest

from controlplane.core.errors import SecretConflict
from controlplane.core.tenant_vault import KV_MOUNT, TenantVault, namespace_of


def _attempts(client_a: hvac.Client, tenant_b: uuid.UUID) -> dict[str, Any]:
    """Every way tenant A's token might name tenant B's secret."""
    url, token = client_a.url, client_a.token
    return {
        "B's namespace": lambda: hvac.Client(url=url, token=token, namespace=namespace_of(tenant_b)).read(
            f"{KV_MOUNT}/data/webhook-signing"
        ),
        "the parent namespace": lambda: hvac.Client(url=url, token=token, namespace="tenants").read(
            f"{tenant_b}/{KV_MOUNT}/data/webhook-signing"
        ),
        "the root namespace": lambda: hvac.Client(url=url, token=token).read(
            f"tenants/{tenant_b}/{KV_MOUNT}/data/webhook-signing"
        ),
        "a relative path": lambda: client_a.read(f"{KV_MOUNT}/data/../../{tenant_b}/{KV_MOUNT}/data/webhook-signing"),
        "B's namespace, listing": lambda: hvac.Client(url=url, token=token, namespace=namespace_of(tenant_b)).list(
            f"{KV_MOUNT}/metadata"
        ),
        "a new token": lambda: hvac.Client(url=url, token=token, namespace=namespace_of(tenant_b)).auth.token.create(
            policies=["tenant"]
        ),
        "the platform's secrets": lambda: hvac.Client(url=url, token=token).read("secret/data/platform/stripe"),
    }


def test_tenant_credentials_reach_only_their_own_namespace(tenant_vault: TenantVault, report: Any) -> None:
    tenant_a, tenant_b = uuid.uuid4(), uuid.uuid4()
    for tenant in (tenant_a, tenant_b):
        tenant_vault.provision(tenant)
        tenant_vault.provision(tenant)  # safe to repeat
        tenant_vault.write(tenant, "webhook-signing", {"secret": f"whsec_{tenant}"}, cas=0)
    assert tenant_vault.read(tenant_a, "webhook-signing")[0] == {"secret": f"whsec_{tenant_a}"}

    client_a = tenant_vault.client_for(tenant_a)
    refused = 0
    for name, attempt in _attempts(client_a, tenant_b).items():
        try:
            answer = attempt()
        except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidPath):
            refused += 1
            continue
        assert answer is None, f"{name}: {answer}"  # not found in A's own namespace, which is not a leak
        refused += 1
    report(f"tenant namespaces: {refused} of {len(_attempts(client_a, tenant_b))} reaches into another tenant refused")

    # Check-and-set: a writer holding an old version loses.
    with pytest.raises(SecretConflict):
        tenant_vault.write(tenant_a, "webhook-signing", {"secret": "late"}, cas=0)

    # Destroying B takes its secrets with it and leaves A's alone.
    tenant_vault.destroy(tenant_b)
    tenant_vault.destroy(tenant_b)  # safe to repeat
    assert not tenant_vault.exists(tenant_b)
    assert tenant_vault.read(tenant_a, "webhook-signing")[0] == {"secret": f"whsec_{tenant_a}"}
    tenant_vault.destroy(tenant_a)
