"""What the domains' migration files use: the app role they grant to, and one transaction for their SQL.

`controlplane.ops.migrations.run_migrations` runs them and names the app role."""

from __future__ import annotations

import os
import re

from controlplane.core import db

ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def app_role() -> str:
    """The app role that migrations grant to (set by `run_migrations`)."""
    role = os.environ.get("CONTROLPLANE_APP_ROLE", "")
    if not ROLE_NAME.match(role):
        raise RuntimeError("CONTROLPLANE_APP_ROLE is missing or not a plain role name")
    return role


async def execute_all(statements: list[str]) -> None:
    """Run a migration's SQL in one transaction (`execute` without arguments takes several statements)."""
    async with db.ENGINE.transaction() as tx:
        for sql in statements:
            await tx.connection.execute(sql)
