"""Self-service sign-up over HTTP: the emailed link, the password, the tenant, a plan whose trial starts at once,
and the first API key shown once; each step repeated, raced or abused the way a hostile visitor would."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import ASGITransport, AsyncClient
from litestar import Litestar

from controlplane.console.signup_links import KEY_PREFIX, PER_ADDRESS, PER_EMAIL
from controlplane.core.errors import DatabaseUnavailable
from controlplane.devstack.mail_store import MailStore
from tenants import service as tenants_service
from tests.api.billing._support import plan
from tests.api.console.test_console import browser, csrf_of
from tests.factories import PASSWORD, Factory

__all__ = ["browser"]  # the fixture, shared
_LINK = re.compile(r"(http\S+/console/signup/verify\?token=\S+)")


@pytest.fixture(autouse=True)
async def fresh_signup_budgets(app: Litestar, client: AsyncClient) -> AsyncIterator[None]:
    """Every test signs up from the one test address: each starts with unspent budgets."""

    async def clear() -> None:
        keys = [key async for key in app.state.redis.scan_iter(match=f"{KEY_PREFIX}count:*")]
        if keys:
            await app.state.redis.delete(*keys)

    await clear()
    yield
    await clear()


async def trial_plan(client: AsyncClient, factory: Factory, currency: str = "EUR") -> dict[str, Any]:
    staff = await factory.staff()
    code = f"starter-{uuid.uuid4().hex[:6]}"
    charges = [{"type": "flat", "amount_minor": 2900}]
    return await plan(client, staff.headers, code, charges, currency=currency, trial_days=14)


async def ask_for_link(browser: AsyncClient, email: str) -> Any:
    form = await browser.get("/console/signup")
    return await browser.post("/console/signup", data={"csrf_token": csrf_of(form), "email": email})


def link_in(mailbox: MailStore, email: str) -> str:
    [message] = [each for each in mailbox.messages() if each["To"] == email]
    found = _LINK.search(message.get_content())
    assert found, message.get_content()
    return found.group(1)


def path_of(url: str) -> str:
    return url[url.index("/console/") :]


async def test_a_newcomer_signs_up_to_an_active_trial_and_gets_an_api_key_once(
    browser: AsyncClient, client: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    offered = await trial_plan(client, factory)
    email = f"new-{uuid.uuid4().hex[:8]}@example.com"
    sent = await ask_for_link(browser, email)
    assert sent.status_code == 200 and "Check your email" in sent.text
    link = path_of(link_in(mailbox, email))

    password_form = await browser.get(link)
    assert password_form.status_code == 200 and email in password_form.text
    token = link.split("token=", 1)[1]
    created = await browser.post(
        "/console/signup/verify", data={"csrf_token": csrf_of(password_form), "token": token, "password": PASSWORD}
    )
    assert created.status_code == 303 and created.headers["location"] == "/console/signup/tenant"
    assert (await browser.get(link)).status_code == 410  # the link is used up

    tenant_form = await browser.get("/console/signup/tenant")
    assert "EUR" in tenant_form.text
    slug = f"acme-{uuid.uuid4().hex[:6]}"
    made = await browser.post(
        "/console/signup/tenant",
        data={"csrf_token": csrf_of(tenant_form), "name": "Acme Rockets", "slug": slug, "currency": "EUR"},
    )
    assert made.status_code == 303 and made.headers["location"].endswith("/start")
    start = made.headers["location"]
    tenant_id = start.split("/")[3]

    plans = await browser.get(start)
    assert offered["name"] in plans.text and "14-day free trial" in plans.text
    welcome = await browser.post(start, data={"csrf_token": csrf_of(plans), "plan_code": offered["code"]})
    assert welcome.status_code == 200 and "trialing" in welcome.text
    key = re.search(r'value="(cpk_[^"]+)"', welcome.text)
    assert key, welcome.text
    check = await client.get("/v1/tenants/" + tenant_id, headers={"Authorization": f"Bearer {key.group(1)}"})
    assert check.status_code == 200 and check.json()["slug"] == slug

    # Repeated: no second subscription, no key shown again.
    again = await browser.post(start, data={"csrf_token": csrf_of(plans), "plan_code": offered["code"]})
    assert again.status_code == 303 and again.headers["location"] == f"/console/tenants/{tenant_id}"
    overview = await browser.get(f"/console/tenants/{tenant_id}")
    assert "Trial ends" in overview.text and "cpk_" not in overview.text
    keys = await browser.get(f"/console/tenants/{tenant_id}/api-keys")
    assert keys.text.count("<td>First key</td>") == 1
    another = await browser.post(
        "/console/signup/tenant",
        data={"csrf_token": csrf_of(tenant_form), "name": "Second", "slug": f"{slug}-2", "currency": "EUR"},
    )
    assert another.status_code == 303 and another.headers["location"] == "/console/"


async def test_an_address_with_an_account_is_told_by_email_not_by_the_page(
    browser: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    existing = await factory.user()
    fresh = f"fresh-{uuid.uuid4().hex[:8]}@example.com"
    for_existing, for_fresh = await ask_for_link(browser, existing.email), await ask_for_link(browser, fresh)
    assert for_existing.status_code == for_fresh.status_code == 200
    assert for_existing.text.replace(existing.email, "X") == for_fresh.text.replace(fresh, "X")
    [told] = [each for each in mailbox.messages() if each["To"] == existing.email]
    assert "already has an account" in told.get_content() and "token=" not in told.get_content()


async def test_links_are_limited_per_email_and_a_weak_password_keeps_the_link(
    browser: AsyncClient, client: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    email = f"limited-{uuid.uuid4().hex[:8]}@example.com"
    for _ in range(PER_EMAIL):
        assert (await ask_for_link(browser, email)).status_code == 200
    refused = await ask_for_link(browser, email)
    assert refused.status_code == 429 and "signup_rate_limited" in refused.text
    assert len([each for each in mailbox.messages() if each["To"] == email]) == PER_EMAIL

    link = path_of(_LINK.findall(mailbox.messages()[-1].get_content())[0])
    form = await browser.get(link)
    token = link.split("token=", 1)[1]
    weak = await browser.post(
        "/console/signup/verify", data={"csrf_token": csrf_of(form), "token": token, "password": "short"}
    )
    assert weak.status_code == 400 and "Choose a password" in weak.text
    assert (await browser.get(link)).status_code == 200  # still usable
    forged = await browser.post(
        "/console/signup/verify", data={"csrf_token": csrf_of(form), "token": "x" * 43, "password": PASSWORD}
    )
    assert forged.status_code == 410


async def test_the_tenant_form_refuses_a_bad_slug_and_a_taken_one(
    browser: AsyncClient, client: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    await trial_plan(client, factory)
    staff = await factory.staff()
    taken = await factory.tenant(staff)
    email = f"slug-{uuid.uuid4().hex[:8]}@example.com"
    await ask_for_link(browser, email)
    link = path_of(link_in(mailbox, email))
    form = await browser.get(link)
    await browser.post(
        "/console/signup/verify",
        data={"csrf_token": csrf_of(form), "token": link.split("token=", 1)[1], "password": PASSWORD},
    )
    tenant_form = await browser.get("/console/signup/tenant")
    for slug, said in (("Not A Slug", "lowercase"), (taken["slug"], "taken"), ("x" * 64, "lowercase")):
        refused = await browser.post(
            "/console/signup/tenant",
            data={"csrf_token": csrf_of(tenant_form), "name": "Acme", "slug": slug, "currency": "EUR"},
        )
        assert refused.status_code == 400 and said in refused.text, (slug, refused.text[-600:])
    bad_currency = await browser.post(
        "/console/signup/tenant",
        data={"csrf_token": csrf_of(tenant_form), "name": "Acme", "slug": "fine-slug", "currency": "ZZZ"},
    )
    assert bad_currency.status_code == 400


async def test_an_invited_person_signs_up_with_the_link_and_lands_in_the_inviting_tenant(
    browser: AsyncClient, client: AsyncClient, factory: Factory, mailbox: MailStore
) -> None:
    """An invitation makes an account without a password: signing up gives it one (the link proves the address),
    instead of telling the invited person an account exists that they could never sign in to."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    invited = f"invited-{uuid.uuid4().hex[:8]}@example.com"
    admin = await factory.member(tenant["id"])
    added = await client.post(
        f"/v1/tenants/{tenant['id']}/members", json={"email": invited, "role": "tenant_member"}, headers=admin.headers
    )
    assert added.status_code == 201, added.text
    await ask_for_link(browser, invited)
    link = path_of(link_in(mailbox, invited))  # a link, not "you already have an account"
    form = await browser.get(link)
    created = await browser.post(
        "/console/signup/verify",
        data={"csrf_token": csrf_of(form), "token": link.split("token=", 1)[1], "password": PASSWORD},
    )
    assert created.status_code == 303
    onward = await browser.get("/console/signup/tenant")
    assert onward.status_code == 302 and onward.headers["location"] == f"/console/tenants/{tenant['id']}"
    signed = await client.post("/v1/auth/token", json={"email": invited, "password": PASSWORD})
    assert signed.status_code == 200

    # Once it has a password, the address is an account like any other: told by email, no link.
    mailbox.clear()
    async with AsyncClient(transport=browser._transport, base_url="http://testserver") as stranger:
        await ask_for_link(stranger, invited)
    [told] = [each for each in mailbox.messages() if each["To"] == invited]
    assert "already has an account" in told.get_content()


async def test_the_start_page_is_for_a_tenant_that_never_subscribed(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    from tests.api.console.test_console import billed_tenant, sign_in

    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    start = f"/console/tenants/{tenant['id']}/start"
    shown = await browser.get(start)
    assert shown.status_code == 302 and shown.headers["location"].endswith("/subscription")
    home = await browser.get("/console/")
    again = await browser.post(start, data={"csrf_token": csrf_of(home), "plan_code": "anything"})
    assert again.status_code == 303
    keys = await client.get(f"/v1/tenants/{tenant['id']}/api-keys", headers=admin.headers)
    assert keys.json()["items"] == []  # no key made by a start that did not happen


async def test_the_per_email_limit_counts_one_mailbox_whatever_its_case_or_tag(
    browser: AsyncClient, mailbox: MailStore
) -> None:
    """`Name+1@x`, `name+2@x` and `NAME@x` are one mailbox: one budget. Each account keeps the address typed."""
    local = f"tagged-{uuid.uuid4().hex[:8]}"
    typed = [f"{local}+{n}@Example.com" for n in range(PER_EMAIL - 1)] + [f"{local.upper()}@example.COM"]
    for email in typed:
        assert (await ask_for_link(browser, email)).status_code == 200
    for walk_around in (f"{local}+{PER_EMAIL}@example.com", f"{local}+@example.com", f"{local}@EXAMPLE.com"):
        refused = await ask_for_link(browser, walk_around)
        assert refused.status_code == 429 and "signup_rate_limited" in refused.text, walk_around
    assert (await ask_for_link(browser, f"{local}x@example.com")).status_code == 200  # another mailbox

    first = f"{local}+0@example.com"  # lowercased as before, its tag kept
    link = path_of(link_in(mailbox, first))
    form = await browser.get(link)
    created = await browser.post(
        "/console/signup/verify",
        data={"csrf_token": csrf_of(form), "token": link.split("token=", 1)[1], "password": PASSWORD},
    )
    assert created.status_code == 303
    account = await tenants_service.find_user(first)
    assert account is not None and account.email == first
    assert await tenants_service.find_user(f"{local}@example.com") is None


async def test_the_per_address_limit_counts_an_ipv6_clients_whole_64(app: Litestar, mailbox: MailStore) -> None:
    async def ask_from(address: str) -> Any:
        transport = ASGITransport(app=app, client=(address, 40000))
        async with AsyncClient(transport=transport, base_url="http://testserver") as visitor:
            return await ask_for_link(visitor, f"v6-{uuid.uuid4().hex[:8]}@example.com")

    for n in range(PER_ADDRESS):
        assert (await ask_from(f"2001:db8:aa:bb::{n + 1:x}")).status_code == 200
    refused = await ask_from("2001:db8:aa:bb:ffff:ffff:ffff:fffe")  # another address of the same /64
    assert refused.status_code == 429 and "signup_rate_limited" in refused.text
    assert (await ask_from("2001:db8:aa:bc::1")).status_code == 200  # the next /64 is another client

    for _ in range(PER_ADDRESS):  # IPv4 as is: each address its own budget
        assert (await ask_from("192.0.2.10")).status_code == 200
    assert (await ask_from("192.0.2.10")).status_code == 429
    assert (await ask_from("::ffff:192.0.2.10")).status_code == 429  # the same client, mapped into IPv6
    assert (await ask_from("192.0.2.11")).status_code == 200


async def test_an_account_the_database_could_not_make_leaves_the_link_usable(
    browser: AsyncClient, mailbox: MailStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outage is a named 503 the person retries: the link is spent by the account made, not by the attempt."""
    email = f"outage-{uuid.uuid4().hex[:8]}@example.com"
    await ask_for_link(browser, email)
    link = path_of(link_in(mailbox, email))
    form = await browser.get(link)
    attempt = {"csrf_token": csrf_of(form), "token": link.split("token=", 1)[1], "password": PASSWORD}

    async def unavailable(*_: Any) -> None:
        raise DatabaseUnavailable("The database is unavailable; retry shortly")

    with monkeypatch.context() as patched:
        patched.setattr(tenants_service, "register_user", unavailable)
        during = await browser.post("/console/signup/verify", data=attempt)
    assert during.status_code == 503 and "database_unavailable" in during.text
    retried = await browser.post("/console/signup/verify", data=attempt)
    assert retried.status_code == 303 and retried.headers["location"] == "/console/signup/tenant"
    assert (await browser.get(link)).status_code == 410  # spent now
    assert await tenants_service.find_user(email) is not None
