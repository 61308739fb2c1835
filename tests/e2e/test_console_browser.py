"""The console in Debian's chromium, over real HTTP: a newcomer signs up through the emailed link to an active
trial (the time it takes is printed); a tenant admin signs in, reads the overview, the invoices and an invoice,
and downloads its PDF. Each page is screenshotted (.artifacts/console/) and checked by axe-core for critical
violations."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from httpx import AsyncClient
from litestar import Litestar
from playwright.async_api import Page

from controlplane.devstack.mail_store import MailStore
from tests.api.billing._support import invoices, plan, subscribe
from tests.browser import assert_accessible, screenshot, serve_asgi
from tests.factories import PASSWORD, Factory

pytestmark = pytest.mark.slow  # a real browser: `make test` runs it, `make test-fast` does not


async def _shown(page: Page, name: str) -> None:
    await assert_accessible(page)
    await screenshot(page, name)


async def test_a_tenant_admin_signs_in_reads_an_invoice_and_downloads_its_pdf(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, name="Acme Widgets")
    code = f"plan-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 4900}])
    await subscribe(client, staff.headers, tenant["id"], code)
    [invoice] = await invoices(client, staff.headers, tenant["id"])
    admin = await factory.member(tenant["id"])

    async with serve_asgi(app, lifespan="off") as base:  # the session's client already runs the app's lifespan
        await page.goto(f"{base}/console/")
        assert page.url == f"{base}/console/signin"  # no session yet: sent to sign in
        await _shown(page, "signin")
        await page.get_by_label("Email").fill(admin.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")  # the keyboard submits the form
        await page.wait_for_url(f"{base}/console/")
        await _shown(page, "tenants")

        await page.get_by_role("link", name="Acme Widgets").click()
        await page.wait_for_url(f"{base}/console/tenants/{tenant['id']}")
        assert await page.get_by_role("heading", name="Next invoice (preview)").is_visible()
        await _shown(page, "overview")

        await page.get_by_role("navigation", name="Tenant").get_by_role("link", name="Invoices").click()
        await page.get_by_role("heading", name="Invoices").wait_for()
        await _shown(page, "invoices")
        await page.get_by_role("link", name=invoice["number"]).click()
        await page.wait_for_url(f"{base}/console/tenants/{tenant['id']}/invoices/{invoice['id']}")
        await _shown(page, "invoice")

        async with page.expect_download() as started:
            await page.get_by_role("link", name="Download the PDF").click()
        download = await started.value
        assert download.suggested_filename.endswith(".pdf")
        saved = await download.path()
        assert saved is not None and saved.read_bytes().startswith(b"%PDF")

        tabs = page.get_by_role("navigation", name="Tenant")
        for tab, name in (
            ("Usage", "usage"),
            ("Credits", "credits"),
            ("Members", "members"),
            ("API keys", "api_keys"),
            ("Webhooks", "webhooks"),
            ("Notifications", "notifications"),
            ("Audit trail", "audit"),
        ):
            await tabs.get_by_role("link", name=tab).click()
            await page.get_by_role("heading", name=tab).wait_for()
            await _shown(page, name)

        await page.get_by_role("button", name="Sign out", exact=True).click()
        await page.wait_for_url(f"{base}/console/signin")
        await page.goto(f"{base}/console/tenants/{tenant['id']}")
        assert page.url == f"{base}/console/signin"


async def test_a_newcomer_signs_up_through_the_emailed_link_to_an_active_trial(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page, mailbox: MailStore
) -> None:
    staff = await factory.staff()
    code = f"starter-{uuid.uuid4().hex[:6]}"
    charges = [{"type": "flat", "amount_minor": 2900}]
    await plan(client, staff.headers, code, charges, trial_days=14)
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.com"

    async with serve_asgi(app, lifespan="off") as base:
        started = time.perf_counter()
        await page.goto(f"{base}/console/signin")
        await page.get_by_role("link", name="Sign up").click()
        await _shown(page, "signup")
        await page.get_by_label("Email").fill(email)
        await page.get_by_role("button", name="Email me a link").click()
        await page.get_by_role("heading", name="Check your email").wait_for()
        await _shown(page, "signup_sent")

        [message] = [each for each in mailbox.messages() if each["To"] == email]
        link = re.search(r"\S+/console/signup/verify\?token=\S+", message.get_content())
        assert link is not None
        await page.goto(base + link.group(0)[link.group(0).index("/console/") :])
        await _shown(page, "signup_password")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await page.wait_for_url(f"{base}/console/signup/tenant")
        await _shown(page, "signup_tenant")
        await page.get_by_label("Name").fill("Rocket Labs")
        await page.get_by_label("Slug").fill(f"rocket-{uuid.uuid4().hex[:6]}")
        await page.get_by_label("Currency").select_option("EUR")
        await page.get_by_role("button", name="Create the tenant").click()
        await page.get_by_role("heading", name="Choose a plan").wait_for()
        await _shown(page, "signup_plan")
        await page.get_by_label(re.compile("Starter")).check()
        await page.get_by_role("button", name="Start").click()
        await page.get_by_role("heading", name="Welcome to Rocket Labs").wait_for()
        seconds = time.perf_counter() - started
        assert "trialing" in await page.get_by_role("status").inner_text()
        assert (await page.get_by_role("textbox", name="API key").input_value()).startswith("cpk_")
        await _shown(page, "welcome")
        print(f"\nconsole: sign-up to an active trial took {seconds:.2f} s (wall clock, in the browser)")


async def test_staff_search_tenants_and_read_the_revenue_dashboard(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, name="Searchable Industries")
    code = f"plan-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 9900}])
    await subscribe(client, staff.headers, tenant["id"], code)

    async with serve_asgi(app, lifespan="off") as base:
        await page.goto(f"{base}/console/signin")
        await page.get_by_label("Email").fill(staff.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await page.wait_for_url(f"{base}/console/")
        back_office = page.get_by_role("navigation", name="Back office")
        await back_office.get_by_role("link", name="Tenants").click()
        await page.get_by_label("Name or slug contains").fill("searchable")
        await page.get_by_label("Name or slug contains").press("Enter")
        await page.get_by_role("link", name="Searchable Industries").wait_for()
        await _shown(page, "staff_tenants")
        await back_office.get_by_role("link", name="Revenue").click()
        await page.get_by_role("img", name=re.compile("MRR at each month's end")).wait_for()
        await _shown(page, "staff_revenue")
        for link, name in (("Catalogue", "staff_catalogue"), ("Disputes", "staff_disputes")):
            await back_office.get_by_role("link", name=link).click()
            await page.get_by_role("heading", level=1).wait_for()
            await _shown(page, name)


async def test_a_person_who_forgot_their_password_resets_it_and_signs_out_everywhere(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page, mailbox: MailStore
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, name="Forgetful Ltd")
    person = await factory.member(tenant["id"])
    new_password = "a brand new passphrase"

    async with serve_asgi(app, lifespan="off") as base:
        await page.goto(f"{base}/console/signin")
        await page.get_by_role("link", name="Forgot your password?").click()
        await _shown(page, "password_forgot")
        await page.get_by_label("Email").fill(person.email)
        await page.get_by_role("button", name="Email me a link").click()
        await page.get_by_role("heading", name="Check your email").wait_for()
        await _shown(page, "password_sent")

        link = None
        for _ in range(100):  # mailed after the page answered
            found = [re.search(r"\S+/console/password/reset\?token=\S+", m.get_content()) for m in mailbox.messages()]
            link = next((each.group(0) for each in found if each), None)
            if link:
                break
            await page.wait_for_timeout(50)
        assert link is not None
        await page.goto(base + link[link.index("/console/") :])
        await _shown(page, "password_reset")
        await page.get_by_label("New password").fill(new_password)
        await page.get_by_role("button", name="Set my password").click()
        await page.wait_for_url(f"{base}/console/")
        assert await page.get_by_role("link", name="Forgetful Ltd").is_visible()

        await page.get_by_role("button", name="Sign out everywhere").click()
        await page.wait_for_url(f"{base}/console/signin")
        await page.goto(f"{base}/console/")
        assert page.url == f"{base}/console/signin"
