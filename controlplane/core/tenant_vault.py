"""Each tenant's secrets in an OpenBao namespace of its own, `tenants/<tenant id>`.

The app's own token only creates and deletes these namespaces. A tenant's secrets are read and written with
a token made inside that tenant's namespace whose one policy allows its `kv/` mount and nothing else, so
code handling tenant A holds no credential that can reach tenant B. Deleting the namespace destroys every
secret in it: that is how an erased tenant's secrets go.

hvac and requests errors become `SecretsUnavailable` / `SecretNotFound` (as in `controlplane.core.secrets`).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

import hvac
import hvac.exceptions

from controlplane.core.secrets import openbao_errors

PARENT = "tenants"
KV_MOUNT = "kv"
POLICY = "tenant"
POLICY_RULES = f'path "{KV_MOUNT}/*" {{ capabilities = ["create", "read", "update", "delete", "list"] }}\n'
TOKEN_TTL_SECONDS = 3600
# A cached tenant token is replaced this long before it expires, so no request carries a dying token.
TOKEN_MARGIN_SECONDS = 300


def namespace_of(tenant_id: uuid.UUID) -> str:
    return f"{PARENT}/{tenant_id}"


class TenantVault:
    def __init__(self, admin: hvac.Client, *, timeout: float = 5.0) -> None:
        self._admin = admin
        self._timeout = timeout
        self._tokens: dict[uuid.UUID, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def _in(self, namespace: str | None, token: str | None = None) -> hvac.Client:
        return hvac.Client(
            url=self._admin.url, token=token or self._admin.token, namespace=namespace, timeout=self._timeout
        )

    def provision(self, tenant_id: uuid.UUID) -> None:
        """The tenant's namespace, its KV mount and its policy; safe to repeat."""
        with openbao_errors():
            for parent, name in ((None, PARENT), (PARENT, str(tenant_id))):
                client = self._in(parent)
                if f"{name}/" not in _child_namespaces(client):
                    _ignore_existing(lambda client=client, name=name: client.sys.create_namespace(name))
            inside = self._in(namespace_of(tenant_id))
            if f"{KV_MOUNT}/" not in inside.sys.list_mounted_secrets_engines()["data"]:
                _ignore_existing(
                    lambda: inside.sys.enable_secrets_engine("kv", path=KV_MOUNT, options={"version": "2"})
                )
            inside.sys.create_or_update_policy(POLICY, POLICY_RULES)

    def client_for(self, tenant_id: uuid.UUID) -> hvac.Client:
        """A client confined to the tenant's namespace and its KV mount (a cached token of its own)."""
        with self._lock:
            token, expires = self._tokens.get(tenant_id, ("", 0.0))
        if time.monotonic() >= expires - TOKEN_MARGIN_SECONDS:
            with openbao_errors():
                created = self._in(namespace_of(tenant_id)).auth.token.create(
                    policies=[POLICY], ttl=f"{TOKEN_TTL_SECONDS}s", no_parent=True, renewable=False
                )
            token, expires = created["auth"]["client_token"], time.monotonic() + TOKEN_TTL_SECONDS
            with self._lock:
                self._tokens[tenant_id] = (token, expires)
        return self._in(namespace_of(tenant_id), token)

    def read(self, tenant_id: uuid.UUID, path: str) -> tuple[dict[str, Any], int]:
        """A secret's data and version; `SecretNotFound` when the tenant has none there."""
        with openbao_errors():
            response = self.client_for(tenant_id).secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        return dict(response["data"]["data"]), int(response["data"]["metadata"]["version"])

    def write(self, tenant_id: uuid.UUID, path: str, data: Mapping[str, Any], *, cas: int) -> int:
        """Write only if the current version is still `cas` (0: only if absent); the new version."""
        with openbao_errors():
            response = self.client_for(tenant_id).secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(data), cas=cas, mount_point=KV_MOUNT
            )
        return int(response["data"]["version"])

    def destroy(self, tenant_id: uuid.UUID) -> None:
        """Delete the tenant's namespace and every secret in it; safe to repeat."""
        with self._lock:
            self._tokens.pop(tenant_id, None)
        with openbao_errors():
            parent = self._in(PARENT)
            if f"{tenant_id}/" in _child_namespaces(parent):
                parent.sys.delete_namespace(str(tenant_id))

    def exists(self, tenant_id: uuid.UUID) -> bool:
        with openbao_errors():
            return f"{tenant_id}/" in _child_namespaces(self._in(PARENT))


def _child_namespaces(client: hvac.Client) -> list[str]:
    """Child namespaces, less those being deleted (OpenBao deletes in the background and marks them tainted)."""
    try:
        data = client.sys.list_namespaces()["data"]
    except hvac.exceptions.InvalidPath:
        return []
    info = data.get("key_info") or {}
    return [key for key in data["keys"] if not (info.get(key) or {}).get("tainted")]


def _ignore_existing(create: Any) -> None:
    """Two provisions at once: the loser's "already exists" means the work is done."""
    try:
        create()
    except hvac.exceptions.InvalidRequest as exc:
        if "already" not in str(exc).lower() and "existing mount" not in str(exc).lower():
            raise
