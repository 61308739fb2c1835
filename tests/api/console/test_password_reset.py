"""A forgotten password over HTTP: the emailed single-use link, a new password, every older session ended and a
new one begun; the page never tells whether the address has an account."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from litestar import Litestar

from controlplane.console.signup_links import KEY_PREFIX, PER_EMAIL
from controlplane.core.errors import DatabaseUnavailable
from controlplane.devstack.mail_store import MailStore
from tenants import service as tenants_service
from tests.api.console.test_console import browser, csrf_of, sign_in
from tests.api.console.test_signup import ask_for_link, path_of
from tests.factories import PASSWORD, Factory

__all__ = ["browser"]  # the fixture, shared
_LINK = re.compile(r"(http\S+/console/password/reset\?token=\S+)")
NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(autouse=True)
async def fresh_link_budgets(app: Litestar, client: AsyncClient) -> AsyncIterator[None]:
    async def clear() -> None:
        keys = [key async for key in app.state.redis.scan_iter(match=f"{KEY_PREFIX}count:*")]
        if keys:
            await app.state.redis.delete(*keys)

    await clear()
    yield
    await clear()


async def ask_for_reset(browser: AsyncClient, email: str) -> Any:
    form = await browser.get("/console/password/forgot")
    assert form.status_code == 200, form.text
    return await browser.post("/console/password/forgot", data={"csrf_token": csrf_of(form), "email": email})


async def reset_link(mailbox: MailStore, email: str) -> str:
    """The link mailed to `email` (sent after the page answered: waited for)."""
    for _ in range(100):
        links = [_LINK.search(each.get_content()) for each in mailbox.messages() if each["To"] == email]
        found = [each.group(1) for each in links if each]
        if found:
            return path_of(found[-1])
        await asyncio.sleep(0.05)
    raise AssertionError(f"no reset email for {email}")


async def test_a_reset_ends_every_older_session_and_signs_the_person_in(
    browser: AsyncClient, app: Litestar, client: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    member = await factory.member(tenant["id"])
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as stolen:
        await sign_in(stolen, member.email)
        assert (await stolen.get("/console/")).status_code == 200  # cached principal in this process

        signin = await browser.get("/console/signin")
        assert 'href="/console/password/forgot"' in signin.text
        sent = await ask_for_reset(browser, member.email.upper())
        assert sent.status_code == 200 and "If an account exists" in sent.text
        link = await reset_link(mailbox, member.email)

        form = await browser.get(link)
        assert form.status_code == 200 and member.email in form.text
        token = link.split("token=", 1)[1]
        weak = await browser.post(
            "/console/password/reset", data={"csrf_token": csrf_of(form), "token": token, "password": "short"}
        )
        assert weak.status_code == 400 and "Choose a password" in weak.text
        assert (await browser.get(link)).status_code == 200  # still usable after a refused password

        done = await browser.post(
            "/console/password/reset", data={"csrf_token": csrf_of(form), "token": token, "password": NEW_PASSWORD}
        )
        assert done.status_code == 303 and done.headers["location"] == "/console/"
        home = await browser.get("/console/")
        assert home.status_code == 200 and tenant["name"] in home.text  # signed in with a new session

        old = await stolen.get("/console/")
        assert old.status_code == 303 and old.headers["location"] == "/console/signin"

    assert (await browser.get(link)).status_code == 410  # single use
    again = await browser.post(
        "/console/password/reset", data={"csrf_token": csrf_of(home), "token": token, "password": "yet another one!"}
    )
    assert again.status_code == 410
    assert (await client.post("/v1/auth/token", json={"email": member.email, "password": PASSWORD})).status_code == 401
    assert (
        await client.post("/v1/auth/token", json={"email": member.email, "password": NEW_PASSWORD})
    ).status_code == 200


async def test_the_page_reads_the_same_whether_or_not_an_account_exists(
    browser: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    existing = await factory.user()
    unknown = f"nobody-{uuid.uuid4().hex[:8]}@example.com"
    for_existing, for_unknown = await ask_for_reset(browser, existing.email), await ask_for_reset(browser, unknown)
    assert for_existing.status_code == for_unknown.status_code == 200
    assert for_existing.text.replace(existing.email, "X") == for_unknown.text.replace(unknown, "X")
    await reset_link(mailbox, existing.email)
    await asyncio.sleep(0.3)
    assert [each for each in mailbox.messages() if each["To"] == unknown] == []


async def test_reset_links_are_limited_with_sign_up_links_and_are_no_sign_up_links(
    browser: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    existing = await factory.user()
    await ask_for_link(browser, existing.email)  # a sign-up email counts in the same window
    for _ in range(PER_EMAIL - 1):
        assert (await ask_for_reset(browser, existing.email)).status_code == 200
    refused = await ask_for_reset(browser, existing.email)
    assert refused.status_code == 429 and "signup_rate_limited" in refused.text and refused.headers["retry-after"]

    link = await reset_link(mailbox, existing.email)
    token = link.split("token=", 1)[1]
    assert (await browser.get(f"/console/signup/verify?token={token}")).status_code == 410
    form = await browser.get(link)
    forged = await browser.post(
        "/console/password/reset", data={"csrf_token": csrf_of(form), "token": "x" * 43, "password": NEW_PASSWORD}
    )
    assert forged.status_code == 410
    for hostile in ("é" * 200, "x" * 400):
        assert (await browser.get("/console/password/reset", params={"token": hostile})).status_code in (400, 410)
    bad = await browser.post("/console/password/forgot", data={"csrf_token": csrf_of(form), "email": "a@b, c@d"})
    assert bad.status_code == 400 and "Enter one email address" in bad.text


async def test_a_disabled_account_gets_no_link_and_cannot_use_one_sent_before(
    browser: AsyncClient, factory: Factory, mailbox: MailStore, stack_env: dict[str, str]
) -> None:
    from tests.conftest import connect_as_inspector

    person = await factory.user()
    await ask_for_reset(browser, person.email)
    link = await reset_link(mailbox, person.email)
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute("update users set status = 'disabled' where id = $1", person.user_id)
    finally:
        await inspector.close()
    assert (await browser.get(link)).status_code == 410  # the page says so before a password is chosen
    form = await browser.get("/console/password/forgot")
    refused = await browser.post(
        "/console/password/reset",
        data={"csrf_token": csrf_of(form), "token": link.split("token=", 1)[1], "password": NEW_PASSWORD},
    )
    assert refused.status_code == 410
    mailbox.clear()
    assert (await ask_for_reset(browser, person.email)).status_code == 200
    await asyncio.sleep(0.3)
    assert mailbox.messages() == []


async def test_a_link_sent_before_the_password_changed_no_longer_resets_it(
    browser: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    """Two links asked for (or one asked for by someone who read the mailbox once): the first one used changes
    the password, and every link sent before that change is spent with it."""
    person = await factory.user()
    await ask_for_reset(browser, person.email)
    older = await reset_link(mailbox, person.email)
    mailbox.clear()
    await ask_for_reset(browser, person.email)
    newer = await reset_link(mailbox, person.email)
    assert older != newer

    form = await browser.get(newer)
    done = await browser.post(
        "/console/password/reset",
        data={"csrf_token": csrf_of(form), "token": newer.split("token=", 1)[1], "password": NEW_PASSWORD},
    )
    assert done.status_code == 303
    browser.cookies.clear()
    assert (await browser.get(older)).status_code == 410
    form = await browser.get("/console/password/forgot")
    refused = await browser.post(
        "/console/password/reset",
        data={"csrf_token": csrf_of(form), "token": older.split("token=", 1)[1], "password": "an attacker's choice"},
    )
    assert refused.status_code == 410
    assert (await sign_in(browser, person.email, NEW_PASSWORD)).status_code == 303


async def test_a_reset_the_database_could_not_make_leaves_the_link_usable(
    browser: AsyncClient, factory: Factory, mailbox: MailStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage is a named 503 the person retries: the link is spent by the reset, not by the attempt."""
    person = await factory.user()
    await ask_for_reset(browser, person.email)
    link = await reset_link(mailbox, person.email)
    form = await browser.get(link)
    attempt = {"csrf_token": csrf_of(form), "token": link.split("token=", 1)[1], "password": NEW_PASSWORD}

    async def unavailable(*_: Any) -> None:
        raise DatabaseUnavailable("The database is unavailable; retry shortly")

    with monkeypatch.context() as patched:
        patched.setattr(tenants_service, "reset_password", unavailable)
        during = await browser.post("/console/password/reset", data=attempt)
    assert during.status_code == 503 and "database_unavailable" in during.text
    retried = await browser.post("/console/password/reset", data=attempt)
    assert retried.status_code == 303 and retried.headers["location"] == "/console/"
    assert (await browser.get(link)).status_code == 410  # used now
    browser.cookies.clear()
    again = {**attempt, "csrf_token": csrf_of(await browser.get("/console/password/forgot"))}
    assert (await browser.post("/console/password/reset", data=again)).status_code == 410


async def test_one_link_sent_twice_at_once_makes_one_reset(
    browser: AsyncClient, app: Litestar, factory: Factory, mailbox: MailStore
) -> None:
    person = await factory.user()
    await ask_for_reset(browser, person.email)
    link = await reset_link(mailbox, person.email)
    token = link.split("token=", 1)[1]
    async with (
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as first,
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as second,
    ):
        forms = [await each.get(link) for each in (first, second)]
        answers = await asyncio.gather(
            *(
                each.post(
                    "/console/password/reset",
                    data={"csrf_token": csrf_of(form), "token": token, "password": f"{NEW_PASSWORD} {n}"},
                )
                for n, (each, form) in enumerate(zip((first, second), forms, strict=True))
            )
        )
    assert sorted(answer.status_code for answer in answers) == [303, 410]
