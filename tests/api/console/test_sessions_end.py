"""A person's console sessions end when their password changes, however it changes, and when they ask to sign out
everywhere: the database moves their session generation on, and every process drops its cached principal."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from httpx import ASGITransport, AsyncClient
from litestar import Litestar

from controlplane.console.sessions import COOKIE, KEY_PREFIX
from tenants import service as tenants_service
from tests.api.console.test_console import browser, csrf_of, sign_in
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

__all__ = ["browser"]  # the fixture, shared
NEW_PASSWORD = "another long passphrase"


async def signed_in_member(factory: Factory, browser: AsyncClient) -> tuple[Actor, dict[str, Any]]:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    member = await factory.member(tenant["id"])
    assert (await sign_in(browser, member.email)).status_code == 303
    home = await browser.get("/console/")  # the principal is cached in this process now
    assert home.status_code == 200 and tenant["name"] in home.text
    return member, tenant


def stored(app: Litestar, session_id: str) -> Any:
    return app.state.redis.exists(KEY_PREFIX + hashlib.sha256(session_id.encode()).hexdigest())


async def test_an_operators_password_reset_ends_the_persons_sessions(
    browser: AsyncClient, app: Litestar, factory: Factory
) -> None:
    member, _ = await signed_in_member(factory, browser)
    session_id = browser.cookies[COOKIE]
    await tenants_service.create_or_update_user(member.email, NEW_PASSWORD, staff=False)  # what the CLI calls

    after = await browser.get("/console/")
    assert after.status_code == 303 and after.headers["location"] == "/console/signin"
    assert await stored(app, session_id) == 0  # ended, not only refused
    assert (await sign_in(browser, member.email, NEW_PASSWORD)).status_code == 303
    assert (await browser.get("/console/")).status_code == 200  # a session begun after the change lives


async def test_a_password_changed_in_sql_ends_the_sessions_of_every_process(
    browser: AsyncClient, factory: Factory, stack_env: dict[str, str]
) -> None:
    """An operator's UPDATE behind the application's back: the trigger moves the generation on and NOTIFY evicts
    the principal cached here, as it would in any other API process."""
    member, _ = await signed_in_member(factory, browser)
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute("update users set password_hash = 'x' where id = $1", member.user_id)
    finally:
        await inspector.close()
    for _ in range(50):  # the notification arrives asynchronously
        after = await browser.get("/console/")
        if after.status_code == 303:
            break
        await asyncio.sleep(0.05)
    assert after.status_code == 303 and after.headers["location"] == "/console/signin"


async def test_sign_out_everywhere_ends_every_session_of_the_person_and_only_theirs(
    browser: AsyncClient, app: Litestar, factory: Factory
) -> None:
    member, tenant = await signed_in_member(factory, browser)
    other_member = await factory.member(tenant["id"])
    async with (
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as laptop,
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as colleague,
    ):
        await sign_in(laptop, member.email)
        await sign_in(colleague, other_member.email)
        home = await browser.get("/console/")
        assert "Sign out everywhere" in home.text

        refused = await browser.post("/console/signout/everywhere", data={})
        assert refused.status_code == 403 and "csrf_refused" in refused.text
        assert (await laptop.get("/console/")).status_code == 200

        out = await browser.post("/console/signout/everywhere", data={"csrf_token": csrf_of(home)})
        assert out.status_code == 303 and out.headers["location"] == "/console/signin"
        assert (await browser.get("/console/")).status_code == 303
        on_laptop = await laptop.get("/console/")
        assert on_laptop.status_code == 303 and on_laptop.headers["location"] == "/console/signin"
        assert (await colleague.get("/console/")).status_code == 200  # another person's session is theirs

    assert (await sign_in(browser, member.email)).status_code == 303
    assert (await browser.get("/console/")).status_code == 200


async def test_sign_out_everywhere_needs_a_signed_in_person(browser: AsyncClient) -> None:
    form = await browser.get("/console/signin")
    answer = await browser.post("/console/signout/everywhere", data={"csrf_token": csrf_of(form)})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/signin"
