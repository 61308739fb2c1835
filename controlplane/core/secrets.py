"""OpenBao, through hvac: the platform's own secrets (KV v2 at `secret/`).

hvac and requests errors are translated here, so callers see `SecretsUnavailable` or `SecretNotFound`
and never a client library's exception.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hvac
import hvac.exceptions
import requests

from controlplane.core.errors import (
    OpenBaoUnavailable,
    SecretConflict,
    SecretNotFound,
    SecretsUnavailable,
)
from controlplane.core.settings import Settings

log = logging.getLogger("controlplane.secrets")

KV_MOUNT = "secret"
JWT_KEYS_PATH = "platform/jwt"
STRIPE_PATH = "platform/stripe"


@dataclass(frozen=True, slots=True)
class VersionedSecret:
    """A KV v2 secret's data with its version (for check-and-set) and when that version was written."""

    data: dict[str, Any]
    version: int
    created_time: datetime


# OpenBao down, unreachable, slow, sealed or failing (5xx), rather than refusing the request (403, 400).
_OUTAGES: tuple[type[Exception], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    hvac.exceptions.VaultDown,
    hvac.exceptions.InternalServerError,
    hvac.exceptions.BadGateway,
)


@contextmanager
def openbao_errors() -> Iterator[None]:
    """hvac and requests errors as this module's: `SecretNotFound`, `SecretConflict`, `OpenBaoUnavailable` (an
    outage: unreachable, timed out, sealed, 5xx) or `SecretsUnavailable` (any other refusal)."""
    try:
        yield
    except hvac.exceptions.InvalidPath as exc:
        raise SecretNotFound("secret path not found") from exc
    except hvac.exceptions.InvalidRequest as exc:
        if "check-and-set" in str(exc):
            raise SecretConflict("the secret changed since the version read") from exc
        raise SecretsUnavailable(f"OpenBao: {type(exc).__name__}") from exc
    except _OUTAGES as exc:
        raise OpenBaoUnavailable(f"OpenBao: {type(exc).__name__}") from exc
    except (hvac.exceptions.VaultError, requests.RequestException) as exc:
        raise SecretsUnavailable(f"OpenBao: {type(exc).__name__}") from exc


class SecretStore:
    def __init__(self, client: hvac.Client, *, approle: tuple[str, str] | None = None) -> None:
        self._client = client
        self._approle = approle  # (role id, secret id): to log in again when the token cannot be renewed

    @classmethod
    def connect(cls, settings: Settings, *, timeout: float = 5.0) -> SecretStore:
        client = hvac.Client(url=settings.bao_addr, token=settings.bao_token or None, timeout=timeout)
        if settings.bao_token:
            return cls(client)
        store = cls(client, approle=(settings.bao_role_id, settings.bao_secret_id))
        store._login()
        return store

    def _login(self) -> None:
        assert self._approle is not None
        role_id, secret_id = self._approle
        with openbao_errors():
            self._client.auth.approle.login(role_id=role_id, secret_id=secret_id)

    def keep_alive(self) -> str:
        """Keep the token valid, run every half minute or so: renew it once a third of its TTL is left, and log in
        again (AppRole) when it cannot be renewed further; what was done: "fresh", "renewed" or "logged_in".

        A token without a TTL (the dev stack's root token) is always fresh. Everything that uses this store's
        client (license signing, PII, tenant namespaces) sees the new token at once."""
        try:
            with openbao_errors():
                data = self._client.auth.token.lookup_self()["data"]
        except SecretsUnavailable:
            if self._approle is None:
                raise
            self._login()  # expired already (the process was stopped, say): a new one
            return "logged_in"
        ttl, full = int(data.get("ttl") or 0), int(data.get("creation_ttl") or 0)
        if not full or ttl > full / 3:  # no TTL at all (a root token), or plenty left
            return "fresh"
        if data.get("renewable"):
            with openbao_errors():
                renewed = self._client.auth.token.renew_self()["auth"]
            # OpenBao caps a renewal at the token's max TTL: a renewal that no longer extends it is not enough.
            if int(renewed.get("lease_duration") or 0) > ttl or self._approle is None:
                return "renewed"
        if self._approle is None:
            return "fresh"
        self._login()
        return "logged_in"

    @property
    def client(self) -> hvac.Client:
        """The authenticated hvac client, for adapters of other engines (transit license signing)."""
        return self._client

    def read(self, path: str) -> dict[str, Any]:
        with openbao_errors():
            response = self._client.secrets.kv.v2.read_secret_version(
                path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True
            )
        return dict(response["data"]["data"])

    def read_versioned(self, path: str) -> VersionedSecret:
        """The current version of a secret; `SecretNotFound` when it has none."""
        with openbao_errors():
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
        with openbao_errors():
            response = self._client.secrets.kv.v2.create_or_update_secret(
                path=path, secret=dict(data), cas=cas, mount_point=KV_MOUNT
            )
        return int(response["data"]["version"])

    async def keep_token_alive(self, *, interval: float = 30.0) -> None:
        """`keep_alive` every `interval` seconds until cancelled; a failure is logged and tried again."""
        while True:
            await asyncio.sleep(interval)
            await asyncio.to_thread(self._keep_alive_logged)

    def keep_token_alive_in_thread(self, *, interval: float = 30.0) -> threading.Event:
        """`keep_alive` every `interval` seconds in a daemon thread (processes without an event loop of their own:
        Celery workers); set the returned event to stop it."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval):
                self._keep_alive_logged()

        threading.Thread(target=run, name="openbao-token", daemon=True).start()
        return stop

    def _keep_alive_logged(self) -> None:
        try:
            outcome = self.keep_alive()
        except SecretsUnavailable as exc:
            log.warning("OpenBao token not kept alive: %s", exc.detail)
            return
        if outcome != "fresh":
            log.info("OpenBao token %s", outcome.replace("_", " "))

    def is_ready(self) -> bool:
        """True when OpenBao answers, is unsealed and our token is valid."""
        try:
            with openbao_errors():
                if self._client.sys.is_sealed():
                    return False
                self._client.auth.token.lookup_self()
        except SecretsUnavailable:
            return False
        return True

    def token_is_root(self) -> bool:
        with openbao_errors():
            data = self._client.auth.token.lookup_self()["data"]
        return "root" in (data.get("policies") or [])


_process_store: tuple[tuple[Any, ...], SecretStore, threading.Event] | None = None
_process_lock = threading.Lock()


def process_store(settings: Settings) -> SecretStore:
    """This process's one secret store: logged in at first use, then shared by every later caller (each Celery
    task run) with its token kept alive in a thread, renewed or replaced by a new login as the API's is.

    Made again in a forked child (a prefork pool's process: the parent's keep-alive thread does not follow it)
    and for other settings.
    """
    global _process_store
    key = (os.getpid(), settings.bao_addr, settings.bao_token, settings.bao_role_id, settings.bao_secret_id)
    with _process_lock:
        if _process_store is None or _process_store[0] != key:
            store = SecretStore.connect(settings)
            if _process_store is not None:
                _process_store[2].set()  # this process's previous store's keeper, if any
            _process_store = (key, store, store.keep_token_alive_in_thread())
        return _process_store[1]
