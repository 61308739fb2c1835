"""OpenBao, through hvac: the platform's own secrets (KV v2 at `secret/`).

hvac and requests errors are translated here, so callers see `SecretsUnavailable` or `SecretNotFound`
and never a client library's exception.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hvac
import hvac.exceptions
import requests

from controlplane.exceptions import Conflict, NotFound, ServiceUnavailable
from controlplane.settings import Settings

KV_MOUNT = "secret"
JWT_KEYS_PATH = "platform/jwt"
STRIPE_PATH = "platform/stripe"


class SecretsUnavailable(ServiceUnavailable):
    code = "secrets_unavailable"
    title = "The secret store is unavailable"


class SecretNotFound(NotFound):
    code = "secret_not_found"
    title = "A required secret is missing"


class SecretConflict(Conflict):
    code = "secret_conflict"
    title = "The secret changed while it was being written"


@dataclass(frozen=True, slots=True)
class VersionedSecret:
    """A KV v2 secret's data with its version (for check-and-set) and when that version was written."""

    data: dict[str, Any]
    version: int
    created_time: datetime


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except hvac.exceptions.InvalidPath as exc:
        raise SecretNotFound("secret path not found") from exc
    except hvac.exceptions.InvalidRequest as exc:
        if "check-and-set" in str(exc):
            raise SecretConflict("the secret changed since the version read") from exc
        raise SecretsUnavailable(f"OpenBao: {type(exc).__name__}") from exc
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise SecretsUnavailable(f"OpenBao: {type(exc).__name__}") from exc


class SecretStore:
    def __init__(self, client: hvac.Client) -> None:
        self._client = client

    @classmethod
    def connect(cls, settings: Settings, *, timeout: float = 5.0) -> SecretStore:
        client = hvac.Client(url=settings.bao_addr, token=settings.bao_token or None, timeout=timeout)
        if not settings.bao_token:
            with _translated():
                client.auth.approle.login(role_id=settings.bao_role_id, secret_id=settings.bao_secret_id)
        return cls(client)

    @property
    def client(self) -> hvac.Client:
        """The authenticated hvac client, for adapters of other engines (transit license signing)."""
        return self._client

    def read(self, path: str) -> dict[str, Any]:
        with _translated():
            response = self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        return dict(response["data"]["data"])

    def read_versioned(self, path: str) -> VersionedSecret:
        """The current version of a secret; `SecretNotFound` when it has none."""
        with _translated():
            response = self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        metadata = response["data"]["metadata"]
        return VersionedSecret(
            dict(response["data"]["data"]),
            int(metadata["version"]),
            datetime.fromisoformat(metadata["created_time"].replace("Z", "+00:00")),
        )

    def write(self, path: str, data: Mapping[str, Any], *, cas: int) -> int:
        """Write a new version only if the current one is still `cas` (0: only if absent); the new version.

        `SecretConflict` when another writer got there first: re-read and decide again.
        """
        with _translated():
            response = self._client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(data), cas=cas, mount_point=KV_MOUNT
            )
        return int(response["data"]["version"])

    def is_ready(self) -> bool:
        """True when OpenBao answers, is unsealed and our token is valid."""
        try:
            with _translated():
                if self._client.sys.is_sealed():
                    return False
                self._client.auth.token.lookup_self()
        except SecretsUnavailable:
            return False
        return True

    def token_is_root(self) -> bool:
        with _translated():
            data = self._client.auth.token.lookup_self()["data"]
        return "root" in (data.get("policies") or [])
