"""`controlplane db migrate`: run every Piccolo app's migrations as the owner role.

Migrations run under an advisory lock (so two deploys never migrate at once) and grant table rights to
the app role named in DATABASE_URL; the app role itself owns nothing.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

import asyncpg

from controlplane import db

_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 7_305_210_001  # arbitrary, constant: pg_advisory_lock key of schema migrations


def app_role() -> str:
    """The app role that migrations grant to (set by `run_migrations`)."""
    role = os.environ.get("CONTROLPLANE_APP_ROLE", "")
    if not _ROLE_NAME.match(role):
        raise RuntimeError("CONTROLPLANE_APP_ROLE is missing or not a plain role name")
    return role


async def run_migrations(owner_url: str, app_url: str) -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    role = urlsplit(app_url).username or ""
    if not _ROLE_NAME.match(role):
        raise RuntimeError("DATABASE_URL must name the app role as a plain user name")
    os.environ["CONTROLPLANE_APP_ROLE"] = role
    os.environ.setdefault("PICCOLO_CONF", "controlplane.piccolo_conf")
    lock = await asyncpg.connect(owner_url)
    try:
        await lock.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK)
        db.configure(owner_url)
        result = await run_forwards(app_name="all")
        if not result.success:
            raise RuntimeError(f"migrations failed: {result.message}")
    finally:
        await lock.close()


async def execute_all(statements: list[str]) -> None:
    """Run a migration's SQL in one transaction (`execute` without arguments takes several statements)."""
    async with db.ENGINE.transaction() as tx:
        for sql in statements:
            await tx.connection.execute(sql)
