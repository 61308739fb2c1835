"""`controlplane db migrate`: run every Piccolo app's migrations as the owner role.

Migrations run under an advisory lock (so two deploys never migrate at once) and grant table rights to
the app role named in DATABASE_URL; the app role itself owns nothing.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import asyncpg

from controlplane.core import db
from controlplane.core.migrate import ROLE_NAME

_MIGRATION_LOCK = 7_305_210_001  # arbitrary, constant: pg_advisory_lock key of schema migrations


async def run_migrations(owner_url: str, app_url: str) -> None:
    from piccolo.apps.migrations.commands.forwards import run_forwards

    role = urlsplit(app_url).username or ""
    if not ROLE_NAME.match(role):
        raise RuntimeError("DATABASE_URL must name the app role as a plain user name")
    os.environ["CONTROLPLANE_APP_ROLE"] = role
    os.environ.setdefault("PICCOLO_CONF", "controlplane.ops.piccolo_conf")
    lock = await asyncpg.connect(owner_url)
    try:
        await lock.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK)
        db.configure(owner_url)
        result = await run_forwards(app_name="all")
        if not result.success:
            raise RuntimeError(f"migrations failed: {result.message}")
    finally:
        await lock.close()
