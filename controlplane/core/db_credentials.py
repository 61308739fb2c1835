"""The app role's database password from OpenBao's database secrets engine (a static role).

OpenBao owns the password of DATABASE_URL's user: it sets it with `ALTER ROLE` on a schedule (the static role's
rotation period) or on demand (`rotate_static_role`), and `GET {mount}/static-creds/{role}` answers the current
one. The app never keeps it in its settings:

- `StaticRolePassword` is asyncpg's `password=` (a coroutine function asyncpg awaits for every new connection),
  so each connection the pool opens logs in with the password of the moment. Connections already open keep
  their session: PostgreSQL checks a password only when a connection starts, so a rotation breaks nothing in
  flight and needs no pool restart.
- If OpenBao cannot be reached, the provider answers the last password it read (with a warning): an OpenBao
  blip must not stop the pool from growing. A rotation during such a blip is the one case that still fails.
- `configure_static_role` sets the engine up (the dev stack and the tests; in production SRE/OpenTofu do it).
- `rotate_static_role` and `last_rotated` are for `controlplane secrets rotate --what db`, the beat task and
  the secret-age gauge.

Synchronous hvac calls, except the provider, which runs them in a thread. hvac and requests errors come out as
the secret store's `SecretsUnavailable` / `SecretNotFound` (translated by `controlplane.core.secrets`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import hvac

from controlplane.core.db import run_with_pool
from controlplane.core.errors import SecretsUnavailable, StaticRoleMismatch
from controlplane.core.secrets import SecretStore, openbao_errors
from controlplane.core.settings import Settings

T = TypeVar("T")

log = logging.getLogger("controlplane.db_credentials")

PLUGIN = "postgresql-database-plugin"
# OpenBao's default for PostgreSQL, written out so the role's definition says what it runs.
ROTATION_STATEMENTS = ("ALTER ROLE \"{{name}}\" WITH PASSWORD '{{password}}';",)
# OpenBao refuses shorter periods.
MIN_ROTATION_PERIOD_SECONDS = 5


@dataclass(frozen=True, slots=True)
class StaticCredentials:
    username: str
    password: str = field(repr=False)  # never in a log line or a traceback's locals repr
    last_rotated: datetime | None
    # Seconds until OpenBao rotates it on its own (None when it did not say).
    ttl_seconds: int | None


@dataclass(frozen=True, slots=True)
class DbRotation:
    role: str
    username: str
    rotated_at: datetime
    previous: datetime | None
    next_in_seconds: int | None

    def describe(self) -> str:
        after = f"{self.previous:%Y-%m-%d %H:%M:%S} UTC" if self.previous else "never"
        following = f"; next automatic rotation in {self.next_in_seconds} s" if self.next_in_seconds else ""
        return (
            f"database static role {self.role} (user {self.username}) rotated at "
            f"{self.rotated_at:%Y-%m-%d %H:%M:%S} UTC (previous {after}){following}; open connections stay"
        )


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))  # nanoseconds are accepted (3.11)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def read_static_credentials(client: hvac.Client, *, mount: str, role: str) -> StaticCredentials:
    """`GET {mount}/static-creds/{role}`: the current password, and when OpenBao last set it."""
    with openbao_errors():
        data = client.secrets.database.get_static_credentials(role, mount_point=mount)["data"]
    ttl = data.get("ttl")
    return StaticCredentials(
        username=str(data["username"]),
        password=str(data["password"]),
        last_rotated=_utc(data.get("last_vault_rotation")),
        ttl_seconds=int(ttl) if ttl is not None else None,
    )


def last_rotated(client: hvac.Client, *, mount: str, role: str) -> datetime | None:
    """When OpenBao last set the role's password (`last_vault_rotation`), in UTC; None if it never did.

    Read from static-creds, the one path the app's policy must allow anyway (not static-roles, an admin path).
    """
    return read_static_credentials(client, mount=mount, role=role).last_rotated


def rotate_static_role(client: hvac.Client, *, mount: str, role: str) -> DbRotation:
    """`POST {mount}/rotate-role/{role}`: OpenBao sets a new password now (and restarts the role's period).

    Running it twice rotates twice; pools with a `StaticRolePassword` keep working (new connections read the new
    password, open ones keep their session). OpenBao answers only once PostgreSQL has the new password.
    """
    previous = last_rotated(client, mount=mount, role=role)
    with openbao_errors():
        client.secrets.database.rotate_static_role_credentials(role, mount_point=mount)
    current = read_static_credentials(client, mount=mount, role=role)
    if current.last_rotated is None:
        raise SecretsUnavailable(f"OpenBao did not record a rotation of {mount}/static-roles/{role}")
    return DbRotation(role, current.username, current.last_rotated, previous, current.ttl_seconds)


def configure_static_role(
    client: hvac.Client,
    *,
    mount: str,
    connection_name: str,
    admin_dsn: str,
    app_username: str,
    role: str,
    rotation_period_seconds: int,
) -> None:
    """Enable the database engine at `mount` (if absent), configure the PostgreSQL connection `connection_name`
    through `admin_dsn` (a role allowed to `ALTER ROLE app_username ... PASSWORD`: a superuser, or one with
    CREATEROLE and ADMIN OPTION on it), and make `role` a static role for `app_username`. Idempotent.

    Creating the static role rotates the password at once: the password `app_username` had stops working.
    Updating an existing one (same user) does not rotate.
    """
    if rotation_period_seconds < MIN_ROTATION_PERIOD_SECONDS:
        raise ValueError(f"rotation period must be at least {MIN_ROTATION_PERIOD_SECONDS} s")
    admin = urlsplit(admin_dsn)
    if not admin.username or not admin.password or not admin.hostname:
        raise ValueError("admin_dsn needs a user, a password and a host")
    host = f"[{admin.hostname}]" if ":" in admin.hostname else admin.hostname
    netloc = "{{username}}:{{password}}@" + host + (f":{admin.port}" if admin.port else "")
    connection_url = urlunsplit(admin._replace(netloc=netloc))
    with openbao_errors():
        if f"{mount.strip('/')}/" not in client.sys.list_mounted_secrets_engines()["data"]:
            client.sys.enable_secrets_engine("database", path=mount)
        client.secrets.database.configure(
            connection_name,
            PLUGIN,
            verify_connection=True,
            allowed_roles=[role],
            mount_point=mount,
            connection_url=connection_url,
            username=admin.username,
            password=admin.password,
            password_authentication="scram-sha-256",  # noqa: S106 (how PostgreSQL hashes it)
        )
        client.secrets.database.create_static_role(
            role,
            connection_name,
            app_username,
            list(ROTATION_STATEMENTS),
            rotation_period=rotation_period_seconds,
            mount_point=mount,
        )


class StaticRolePassword:
    """asyncpg's `password=`: each new connection logs in with OpenBao's current password of `role`.

    Falls back to the last password read when OpenBao does not answer within `timeout` seconds or fails, so the
    pool can still grow through an OpenBao blip. With `username`, a static role for another user is refused
    (`StaticRoleMismatch`, no fallback): it would only fail later as "password authentication failed".
    Holds no event loop state: one provider may serve pools on several loops (workers make a loop per task).
    """

    def __init__(
        self,
        client: hvac.Client,
        *,
        mount: str,
        role: str,
        username: str | None = None,
        timeout: float = 2.0,
    ) -> None:
        self._client = client
        self._mount = mount
        self._role = role
        self._username = username
        self._timeout = timeout
        self._lock = threading.Lock()
        self._last: str | None = None
        self.reads = 0
        self.fallbacks = 0

    @property
    def role(self) -> str:
        return self._role

    def read(self) -> str:
        """The current password, read from OpenBao now (blocking); remembered for the fallback."""
        credentials = read_static_credentials(self._client, mount=self._mount, role=self._role)
        if self._username is not None and credentials.username != self._username:
            raise StaticRoleMismatch(
                f"{self._mount}/static-roles/{self._role} is for {credentials.username!r}, not {self._username!r}"
            )
        with self._lock:
            self._last = credentials.password
            self.reads += 1
        return credentials.password

    async def __call__(self) -> str:
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.read), self._timeout)
        except StaticRoleMismatch:
            raise
        except (SecretsUnavailable, TimeoutError) as exc:
            with self._lock:
                last = self._last
                if last is not None:
                    self.fallbacks += 1
            if last is None:
                raise SecretsUnavailable(
                    f"no database password: OpenBao {self._mount}/static-creds/{self._role} unreadable "
                    f"({type(exc).__name__}) and none read before"
                ) from exc
            log.warning(
                "OpenBao %s/static-creds/%s unreadable (%s): connecting with the last password read",
                self._mount,
                self._role,
                type(exc).__name__,
            )
            return last


def password_for(settings: Settings, store: SecretStore) -> StaticRolePassword | None:
    """The provider DATABASE_URL's user needs when `BAO_DB_STATIC_ROLE` is set; None when it is not."""
    if not settings.bao_db_static_role:
        return None
    return StaticRolePassword(
        store.client,
        mount=settings.bao_db_mount,
        role=settings.bao_db_static_role,
        username=urlsplit(settings.database_url).username or None,
    )


def run_with_app_pool(settings: Settings, work: Callable[[], Awaitable[T]], *, max_size: int = 2) -> T:
    """`run_with_pool` on DATABASE_URL for a CLI command or a Celery task; with BAO_DB_STATIC_ROLE, each new
    connection reads OpenBao's current password (a secret store per run: no token is kept past it)."""
    password = password_for(settings, SecretStore.connect(settings)) if settings.bao_db_static_role else None
    return run_with_pool(settings.database_url, work, max_size=max_size, password=password)


__all__ = [
    "DbRotation",
    "StaticCredentials",
    "StaticRolePassword",
    "configure_static_role",
    "last_rotated",
    "password_for",
    "read_static_credentials",
    "rotate_static_role",
    "run_with_app_pool",
]
