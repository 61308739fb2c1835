"""The console over HTTP: sessions, CSRF, security headers, and what a tenant's people may see.

Each test has its own cookie jar (a browser of its own) on the session's app; the pages are read as HTML.
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from httpx import ASGITransport, AsyncClient, Response
from litestar import Litestar

from billing.money import display
from controlplane.console.middleware import CONTENT_SECURITY_POLICY
from controlplane.console.sessions import COOKIE, SECURE_COOKIE, SessionStore
from controlplane.core.errors import DatabaseUnavailable
from tenants import service as tenants_service
from tests.api.billing._support import invoices, plan, subscribe
from tests.factories import PASSWORD, Actor, Factory

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def browser(app: Litestar, client: AsyncClient) -> AsyncIterator[AsyncClient]:
    """A client with a cookie jar of its own, on the app the session's client started."""
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as own:
        yield own


def csrf_of(page: Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text[:2000]
    return found.group(1)


def use_session(browser: AsyncClient, session_id: str) -> None:
    browser.cookies.clear()
    browser.cookies.set(COOKIE, session_id, path="/console")


async def sign_in(browser: AsyncClient, email: str, password: str = PASSWORD) -> Response:
    form = await browser.get("/console/signin")
    assert form.status_code == 200, form.text
    return await browser.post(
        "/console/signin", data={"csrf_token": csrf_of(form), "email": email, "password": password}
    )


async def billed_tenant(
    client: AsyncClient, factory: Factory, name: str = "Acme"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A tenant subscribed to a flat plan (so it has its first invoice), and that invoice (the API's JSON)."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff, name=name)
    code = f"plan-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 1234}])
    await subscribe(client, staff.headers, tenant["id"], code)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    return tenant, invoice


async def test_the_sign_in_page_starts_a_visitors_session_with_the_cookie_and_headers_it_needs(
    browser: AsyncClient,
) -> None:
    page = await browser.get("/console/signin")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= attributes, cookie
    assert "samesite=lax" in cookie.lower() and "path=/console" in cookie.lower()
    assert "secure" not in attributes  # a test environment over http; https sets it (see the next test)
    policy = page.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY and "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    style = await browser.get("/console/static/console.css")
    assert style.status_code == 200 and "content-security-policy" in style.headers


async def test_over_https_the_session_cookie_is_secure_host_only_and_only_it_counts(
    app: Litestar, client: AsyncClient, factory: Factory
) -> None:
    admin = await factory.user()
    served_over_http = app.state.settings
    app.state.settings = dataclasses.replace(served_over_http, public_url="https://console.example")
    try:
        async with AsyncClient(transport=ASGITransport(app=app), base_url="https://testserver") as secure:
            form = await secure.get("/console/signin")
            cookie = form.headers["set-cookie"]
            attributes = {part.strip().lower() for part in cookie.split(";")}
            assert cookie.startswith(f"{SECURE_COOKIE}=") and {"secure", "httponly", "path=/"} <= attributes, cookie
            assert not any(attribute.startswith("domain") for attribute in attributes)  # what __Host- requires
            signed = await secure.post(
                "/console/signin", data={"csrf_token": csrf_of(form), "email": admin.email, "password": PASSWORD}
            )
            assert signed.status_code == 303 and signed.headers["set-cookie"].startswith(f"{SECURE_COOKIE}=")
            home = await secure.get("/console/")  # signed in, with no tenant yet: on with sign-up
            assert home.status_code == 302 and home.headers["location"] == "/console/signup/tenant"
            session_id = secure.cookies[SECURE_COOKIE]
            # The same session id under the http cookie's name, which any subdomain could have set: not signed in.
            planted = await client.get("/console/", headers={"cookie": f"{COOKIE}={session_id}"})
            assert planted.status_code == 303 and planted.headers["location"] == "/console/signin"
    finally:
        app.state.settings = served_over_http


async def test_sign_in_refuses_a_form_without_or_with_another_sessions_csrf_token(
    browser: AsyncClient, app: Litestar, factory: Factory
) -> None:
    admin = await factory.user()
    form = await browser.get("/console/signin")
    attempt = {"email": admin.email, "password": PASSWORD}
    refused = await browser.post("/console/signin", data=attempt)
    assert refused.status_code == 403 and "csrf_refused" in refused.text
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as other:
        their_token = csrf_of(await other.get("/console/signin"))
    refused = await browser.post("/console/signin", data={**attempt, "csrf_token": their_token})
    assert refused.status_code == 403
    for hostile in ("é" * 43, "x" * 10_000, "\x00"):
        assert (await browser.post("/console/signin", data={**attempt, "csrf_token": hostile})).status_code == 403
    wrong = await browser.post("/console/signin", data={**attempt, "password": "not it", "csrf_token": csrf_of(form)})
    assert wrong.status_code == 401 and "not right" in wrong.text
    assert "session" not in (await browser.get("/console/")).headers.get("location", "session")


async def test_signing_in_gives_a_new_session_id_and_signing_out_ends_it(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await browser.get("/console/signin")
    visitor = browser.cookies[COOKIE]
    signed = await sign_in(browser, admin.email)
    assert signed.status_code == 303 and signed.headers["location"] == "/console/"
    session = browser.cookies[COOKIE]
    assert session != visitor
    home = await browser.get("/console/")
    assert home.status_code == 200 and tenant["name"] in home.text

    # The visitor's id is worth nothing now.
    use_session(browser, visitor)
    assert (await browser.get("/console/")).status_code == 303
    use_session(browser, session)
    home = await browser.get("/console/")
    forged = await browser.post("/console/signout", data={"csrf_token": "not this session's"})
    assert forged.status_code == 403  # signed in: no other site's form signs the person out
    out = await browser.post("/console/signout", data={"csrf_token": csrf_of(home)})
    assert out.status_code == 303 and out.headers["location"] == "/console/signin"
    for path in ("/console/signout", "/console/signout/everywhere"):  # retried, as a browser may: harmless
        retried = await browser.post(path, data={"csrf_token": csrf_of(home)})
        assert retried.status_code == 303 and retried.headers["location"] == "/console/signin", path
    use_session(browser, session)  # replayed after sign-out
    again = await browser.get("/console/")
    assert again.status_code == 303 and again.headers["location"] == "/console/signin"


async def test_a_tenant_admin_reads_the_overview_invoices_an_invoice_and_its_pdf(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, invoice = await billed_tenant(client, factory, name="Acme <script>alert(1)</script>")
    invoice_id, total = invoice["id"], display(invoice["total_minor"], "EUR")
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}"
    overview = await browser.get(base)
    assert overview.status_code == 200, overview.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in overview.text and "<script>alert" not in overview.text
    assert "Next invoice (preview)" in overview.text and "12.34 EUR" in overview.text
    assert "Prepaid credits" not in overview.text
    staff = await factory.staff()
    grant = {"amount_minor": 500, "paid": False}
    assert (
        await client.post(f"/v1/tenants/{tenant['id']}/wallet/top-ups", json=grant, headers=staff.headers)
    ).status_code == 201
    credited = (await browser.get(base)).text
    assert "Prepaid credits" in credited and "-5.00 EUR" in credited and "7.34 EUR" in credited  # 12.34 less 5.00
    listed = await browser.get(f"{base}/invoices")
    assert f"{base}/invoices/{invoice_id}" in listed.text
    shown = await browser.get(f"{base}/invoices/{invoice_id}")
    assert shown.status_code == 200 and total in shown.text and invoice["number"] in shown.text
    pdf = await browser.get(f"{base}/invoices/{invoice_id}/pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and "attachment" in pdf.headers["content-disposition"]


async def test_another_tenants_pages_and_invoices_are_not_found(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    mine, _ = await billed_tenant(client, factory, name="Mine")
    theirs, invoice = await billed_tenant(client, factory, name="Theirs")
    their_invoice = invoice["id"]
    admin = await factory.member(mine["id"])
    await sign_in(browser, admin.email)
    for path in (
        f"/console/tenants/{theirs['id']}",
        f"/console/tenants/{theirs['id']}/invoices",
        f"/console/tenants/{mine['id']}/invoices/{their_invoice}",
        f"/console/tenants/{mine['id']}/invoices/{their_invoice}/pdf",
        f"/console/tenants/{theirs['id']}/invoices/{their_invoice}",
    ):
        page = await browser.get(path)
        assert page.status_code == 404, (path, page.status_code)
        assert "Theirs" not in page.text and page.headers["content-type"].startswith("text/html")


async def test_a_member_is_refused_an_admin_page(browser: AsyncClient, client: AsyncClient, factory: Factory) -> None:
    tenant, _ = await billed_tenant(client, factory)
    member = await factory.member(tenant["id"], "tenant_member")
    await sign_in(browser, member.email)
    refused = await browser.get(f"/console/tenants/{tenant['id']}/api-keys")
    assert refused.status_code == 403 and "forbidden_for_role" in refused.text
    overview = await browser.get(f"/console/tenants/{tenant['id']}")  # the tenant, without its billing
    assert overview.status_code == 200 and tenant["name"] in overview.text and "Next invoice" not in overview.text
    admin: Actor = await factory.member(tenant["id"])
    async with AsyncClient(transport=browser._transport, base_url="http://testserver") as other:
        await sign_in(other, admin.email)
        assert (await other.get(f"/console/tenants/{tenant['id']}/api-keys")).status_code == 200


async def test_pages_need_a_session(browser: AsyncClient, client: AsyncClient, factory: Factory) -> None:
    tenant, invoice = await billed_tenant(client, factory)
    for path in ("/console/", f"/console/tenants/{tenant['id']}/invoices/{invoice['id']}/pdf"):
        page = await browser.get(path)
        assert page.status_code == 303 and page.headers["location"] == "/console/signin", path
    use_session(browser, "x" * 4000)  # an absurd cookie is no session either
    assert (await browser.get("/console/")).status_code == 303


async def test_without_redis_the_console_answers_a_named_503(
    browser: AsyncClient, client: AsyncClient, app: Litestar, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    session_id = browser.cookies[COOKIE]
    unreachable = aioredis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.5)
    sessions: SessionStore = app.state.console_sessions
    try:
        with monkeypatch.context() as patched:
            patched.setattr(app.state, "console_sessions", SessionStore(unreachable, sessions._visitor_keys))
            page = await browser.get("/console/")
            browser.cookies.clear()
            form = await browser.get("/console/signin")  # a visitor's session needs no Redis
            signing_in = await browser.post(
                "/console/signin", data={"csrf_token": csrf_of(form), "email": admin.email, "password": PASSWORD}
            )
            style = await browser.get("/console/static/console.css")  # needs no session
    finally:
        await unreachable.aclose()
    for answer in (page, signing_in):
        assert answer.status_code == 503 and "console_sessions_unavailable" in answer.text
        assert answer.headers["content-type"].startswith("text/html") and answer.headers["retry-after"] == "5"
    assert form.status_code == 200 and style.status_code == 200
    use_session(browser, session_id)
    assert (await browser.get("/console/")).status_code == 200  # still signed in once Redis is back


async def test_a_database_outage_does_not_sign_anyone_out(
    browser: AsyncClient, client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)

    async def unavailable(user_id: uuid.UUID) -> None:
        raise DatabaseUnavailable("The database is unavailable; retry shortly")

    with monkeypatch.context() as patched:
        patched.setattr(tenants_service, "principal_for_user", unavailable)
        during = await browser.get("/console/")
    assert during.status_code == 503 and "database_unavailable" in during.text
    after = await browser.get("/console/")
    assert after.status_code == 200 and tenant["name"] in after.text  # still signed in
