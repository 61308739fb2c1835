"""The console in Debian's chromium, over real HTTP: a tenant admin signs in, reads the overview, the invoices and
an invoice, and downloads its PDF, by keyboard where a person would type. Each page is screenshotted
(.artifacts/console/) and checked by axe-core for critical violations."""

from __future__ import annotations

import uuid

from httpx import AsyncClient
from litestar import Litestar
from playwright.async_api import Page

from tests.api.billing._support import invoices, plan, subscribe
from tests.browser import assert_accessible, screenshot, serve_asgi
from tests.factories import PASSWORD, Factory


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
        await page.get_by_role("link", name=invoice["number"]).click()
        await page.wait_for_url(f"{base}/console/tenants/{tenant['id']}/invoices/{invoice['id']}")
        await _shown(page, "invoice")

        async with page.expect_download() as started:
            await page.get_by_role("link", name="Download the PDF").click()
        download = await started.value
        assert download.suggested_filename.endswith(".pdf")
        saved = await download.path()
        assert saved is not None and saved.read_bytes().startswith(b"%PDF")

        await page.get_by_role("button", name="Sign out").click()
        await page.wait_for_url(f"{base}/console/signin")
        await page.goto(f"{base}/console/tenants/{tenant['id']}")
        assert page.url == f"{base}/console/signin"
