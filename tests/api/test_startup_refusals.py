"""The app refuses to serve when its database role could defeat row-level security."""

from __future__ import annotations

import dataclasses

import pytest
from asgi_lifespan import LifespanManager

from controlplane.app import create_app
from controlplane.core import db
from controlplane.core.settings import Settings
from controlplane.ops.startup_checks import UnsafeConfiguration


async def test_the_owner_role_is_refused_as_the_app_role(settings: Settings, client) -> None:
    unsafe = dataclasses.replace(settings, database_url=settings.database_owner_url)
    await db.stop_pool()  # the session app's; one engine serves one pool at a time
    with pytest.raises(BaseExceptionGroup) as refused:
        async with LifespanManager(create_app(unsafe)):
            pass
    assert refused.group_contains(UnsafeConfiguration, match="owns tables")
    # The refused app closed its pool; put the session's back for the tests that follow.
    await db.start_pool(settings.database_url, min_size=settings.db_pool_min_size, max_size=settings.db_pool_max_size)
    assert (await client.get("/health/ready")).status_code == 200
