"""A visitor's session (not signed in) is stored nowhere: its cookie carries a start and a nonce, its CSRF token is
an HMAC of the cookie under a server key, so a flood of cookieless page views writes nothing to Redis."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from httpx import AsyncClient
from litestar import Litestar

from controlplane.console.sessions import COOKIE, KEY_PREFIX, MAX_SECONDS
from tests.api.console.test_console import browser, csrf_of, sign_in, use_session
from tests.factories import PASSWORD, Factory

__all__ = ["browser"]  # the fixture, shared


async def stored_sessions(app: Litestar) -> int:
    return len([key async for key in app.state.redis.scan_iter(match=f"{KEY_PREFIX}*")])


def token_under(key: bytes, cookie: str) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, cookie.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()


async def test_cookieless_views_of_the_visitor_pages_store_nothing(
    app: Litestar, client: AsyncClient, factory: Factory
) -> None:
    before = await stored_sessions(app)
    cookies = set()
    for path in ("/console/signin", "/console/signup", "/console/password/forgot") * 10:
        async with AsyncClient(transport=client._transport, base_url="http://testserver") as fresh:
            page = await fresh.get(path)
            assert page.status_code == 200 and csrf_of(page)
            cookies.add(fresh.cookies[COOKIE])
    assert len(cookies) == 30  # each its own
    assert await stored_sessions(app) == before

    person = await factory.user()
    async with AsyncClient(transport=client._transport, base_url="http://testserver") as fresh:
        assert (await sign_in(fresh, person.email)).status_code == 303
    assert await stored_sessions(app) == before + 1  # signing in is what stores a session


async def test_a_visitors_form_needs_the_token_made_for_its_own_cookie(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    person = await factory.user()
    form = await browser.get("/console/signin")
    cookie, token = browser.cookies[COOKIE], csrf_of(form)
    attempt = {"email": person.email, "password": PASSWORD}
    assert (await browser.post("/console/signin", data=attempt)).status_code == 403
    assert (await browser.get("/console/signin")).text.count(token) == 1  # the same cookie, the same token

    # The same token with another nonce, or the nonce under a key of one's own: refused.
    started, nonce = cookie.split(".")[1:]
    for forged_cookie, forged_token in (
        (f"v1.{started}.{secrets.token_urlsafe(32)}", token),
        (cookie, token_under(b"k" * 32, cookie)),
        (f"v1.{int(started) - 1}.{nonce}", token),
    ):
        use_session(browser, forged_cookie)
        refused = await browser.post("/console/signin", data={**attempt, "csrf_token": forged_token})
        assert refused.status_code == 403 and "csrf_refused" in refused.text, forged_cookie

    # A cookie of a key of one's own: refused; past its life, or from the future, or malformed: no session.
    old = f"v1.{int(time.time()) - MAX_SECONDS - 1}.{secrets.token_urlsafe(32)}"
    future = f"v1.{int(time.time()) + 3600}.{secrets.token_urlsafe(32)}"
    for hopeless in (old, future, "v1.x.y", "v1." + "9" * 40 + "." + "a" * 43, "v1.1.2.3", "v1.+1." + "a" * 43):
        use_session(browser, hopeless)
        key = b"k" * 32
        refused = await browser.post("/console/signin", data={**attempt, "csrf_token": token_under(key, hopeless)})
        assert refused.status_code == 403, hopeless
        page = await browser.get("/console/signin")
        given = page.headers["set-cookie"]  # a new visitor's cookie
        assert page.status_code == 200 and given.startswith(f"{COOKIE}=v1.") and hopeless not in given

    use_session(browser, cookie)
    signed = await browser.post("/console/signin", data={**attempt, "csrf_token": token})
    session = signed.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    assert signed.status_code == 303 and session != cookie and "." not in session  # a stored session's id
    use_session(browser, session)
    assert (await browser.get("/console/signup/tenant")).status_code == 200  # signed in: the sign-up's next step


async def test_a_visitors_cookie_is_no_session_for_pages_of_signed_in_people(browser: AsyncClient) -> None:
    await browser.get("/console/signin")
    home = await browser.get("/console/")
    assert home.status_code == 303 and home.headers["location"] == "/console/signin"
    out = await browser.post("/console/signout", data={"csrf_token": csrf_of(await browser.get("/console/signin"))})
    assert out.status_code == 303
