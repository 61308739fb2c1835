"""A person's session generation: the database moves it on at every password change (whoever makes it) and when
they sign out everywhere, and the principal read for their requests carries it."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from tenants import service
from tenants.errors import InvalidCredentials

PASSWORD = "a long enough passphrase"


async def test_a_password_change_and_signing_out_everywhere_move_the_generation_on(
    client: Any, owner_connection: asyncpg.Connection
) -> None:
    email = f"gen-{uuid.uuid4().hex[:8]}@example.com"
    user = await service.create_or_update_user(email, PASSWORD, staff=False)
    assert user.session_generation == 0
    assert (await service.principal_for_user(user.id)).session_generation == 0

    reset = await service.create_or_update_user(email, "another passphrase!", staff=False)  # the CLI's reset
    assert reset.session_generation == 1
    assert (await service.principal_for_user(user.id)).session_generation == 1  # evicted, not the cached 0

    await service.end_sessions(user.id)
    assert (await service.principal_for_user(user.id)).session_generation == 2

    by_link = await service.reset_password(email.upper(), "a third passphrase")
    assert by_link.session_generation == 3 and by_link.id == user.id
    assert (await service.authenticate_password(email, "a third passphrase")).session_generation == 3

    # Other changes leave it where it is; only the hash counts (SQL behind the application's back too).
    await owner_connection.execute("update users set email = $1 where id = $2", "moved-" + email, user.id)
    await owner_connection.execute("update users set password_hash = password_hash where id = $1", user.id)
    generation = await owner_connection.fetchval("select session_generation from users where id = $1", user.id)
    assert generation == 3
    await owner_connection.execute("update users set password_hash = 'other' where id = $1", user.id)
    generation = await owner_connection.fetchval("select session_generation from users where id = $1", user.id)
    assert generation == 4


async def test_a_reset_is_refused_to_a_disabled_or_unknown_account(
    client: Any, owner_connection: asyncpg.Connection
) -> None:
    email = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    user = await service.create_or_update_user(email, PASSWORD, staff=False)
    assert await service.can_reset_password(email)
    await owner_connection.execute("update users set status = 'disabled' where id = $1", user.id)
    assert not await service.can_reset_password(email)
    assert not await service.can_reset_password("nobody-" + email)
    for address in (email, "nobody-" + email):
        with pytest.raises(InvalidCredentials):
            await service.reset_password(address, "a new passphrase!")
    stored = await owner_connection.fetchrow("select session_generation from users where id = $1", user.id)
    assert stored["session_generation"] == 0


async def test_a_reset_stamped_before_a_change_of_password_is_refused(
    client: Any, owner_connection: asyncpg.Connection
) -> None:
    email = f"stamp-{uuid.uuid4().hex[:8]}@example.com"
    user = await service.create_or_update_user(email, PASSWORD, staff=False)
    stamp = await service.reset_stamp(email.upper())
    assert stamp is not None and stamp == await service.reset_stamp(email)
    await service.end_sessions(user.id)  # or any change of the password
    with pytest.raises(InvalidCredentials):
        await service.reset_password(email, "a new passphrase!", stamp)
    fresh = await service.reset_stamp(email)
    assert fresh is not None and fresh != stamp
    assert (await service.reset_password(email, "a new passphrase!", fresh)).id == user.id
    await owner_connection.execute("update users set status = 'disabled' where id = $1", user.id)
    assert await service.reset_stamp(email) is None
