"""A tenant's plugins in Debian's chromium, over real HTTP: a tenant admin opens the catalogue, starts a paid
plugin's trial and sees its active trial license. The time from opening the catalogue to the license being
shown is printed (not asserted). Each page is screenshotted (.artifacts/console/) and checked by axe-core."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from httpx import AsyncClient
from litestar import Litestar
from playwright.async_api import Page

from tests.api.billing._support import plan, subscribe
from tests.api.console.test_plugin_pages import TRIAL_PRICING, listed_plugin
from tests.browser import assert_accessible, screenshot, serve_asgi
from tests.factories import PASSWORD, Factory

pytestmark = pytest.mark.slow  # a real browser: `make test` runs it, `make test-fast` does not


async def _shown(page: Page, name: str) -> None:
    await assert_accessible(page)
    await screenshot(page, name)


async def test_a_tenant_admin_starts_a_plugins_trial_from_the_catalogue(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, name="Acme Analytics")
    code = f"plan-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 2900}])
    await subscribe(client, staff.headers, tenant["id"], code)
    await listed_plugin(client, staff.headers, "Exporter", {"model": "free"})
    insights = await listed_plugin(client, staff.headers, "Insights", TRIAL_PRICING)
    admin = await factory.member(tenant["id"])
    catalogue = f"/console/tenants/{tenant['id']}/plugins"
    plugin_page = f"{catalogue}/{insights['slug']}"

    async with serve_asgi(app, lifespan="off") as base:  # the session's client already runs the app's lifespan
        await page.goto(f"{base}/console/signin")
        await page.get_by_label("Email").fill(admin.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await page.wait_for_url(f"{base}/console/")
        await page.get_by_role("link", name="Acme Analytics").click()
        await page.get_by_role("navigation", name="Tenant").get_by_role("link", name="Plugins").click()
        await page.wait_for_url(f"{base}{catalogue}")
        await _shown(page, "plugins")  # checked before the timed run, so axe's time is not counted
        await page.get_by_role("link", name="Insights").click()
        await page.wait_for_url(f"{base}{plugin_page}")
        await _shown(page, "plugin")

        started = time.perf_counter()
        await page.goto(f"{base}{catalogue}")
        await page.get_by_role("link", name="Insights").click()
        await page.get_by_role("button", name="Start the 14-day trial").click()
        await page.get_by_role("heading", name="Licenses").wait_for()
        seconds = time.perf_counter() - started

        assert page.url == f"{base}{plugin_page}"  # the POST's 303 back to the plugin's page
        licenses = page.get_by_role("table", name=re.compile("Licenses of Insights"))
        assert "active (trial)" in await licenses.inner_text()
        assert "trial until" in await page.get_by_role("heading", name="Installed").locator("..").inner_text()
        assert await page.get_by_role("button", name="Start the 14-day trial").count() == 0
        await _shown(page, "plugin_trial")

        await page.get_by_role("link", name="All plugins").click()
        await page.wait_for_url(f"{base}{catalogue}")
        installed = page.get_by_role("table", name=re.compile("Plugins installed"))
        assert "trial" in await installed.inner_text() and "0 of 2" in await installed.inner_text()
        await _shown(page, "plugins_installed")
        print(f"\nconsole: plugin trial activation took {seconds:.2f} s")
