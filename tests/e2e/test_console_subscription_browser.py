"""The subscription page in Debian's chromium, over real HTTP: a tenant admin upgrades the plan, reads the
proration on the confirmation, confirms, and the overview shows the new plan. Each page is screenshotted
(.artifacts/console/) and checked by axe-core for critical violations."""

from __future__ import annotations

import uuid

import pytest
from httpx import AsyncClient
from litestar import Litestar
from playwright.async_api import Page

from billing.money import display
from tests.api.billing._support import invoices, plan, subscribe
from tests.browser import assert_accessible, screenshot, serve_asgi
from tests.factories import PASSWORD, Factory

pytestmark = pytest.mark.slow  # a real browser: `make test` runs it, `make test-fast` does not


async def _shown(page: Page, name: str) -> None:
    await assert_accessible(page)
    await screenshot(page, name)


async def test_a_tenant_admin_upgrades_the_plan_after_reading_its_proration(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page
) -> None:
    staff = await factory.staff()
    starter, growth = f"starter-{uuid.uuid4().hex[:6]}", f"growth-{uuid.uuid4().hex[:6]}"
    await plan(client, staff.headers, starter, [{"type": "per_seat", "unit_amount_minor": 900}])
    await plan(
        client,
        staff.headers,
        growth,
        [{"type": "flat", "amount_minor": 4900}, {"type": "per_seat", "unit_amount_minor": 1500}],
    )
    tenant = await factory.tenant(staff, name="Acme Widgets", tax_rate_bps=2000)
    await subscribe(client, staff.headers, tenant["id"], starter, seats=2)
    admin = await factory.member(tenant["id"])
    overview_url = f"/console/tenants/{tenant['id']}"

    async with serve_asgi(app, lifespan="off") as base:  # the session's client already runs the app's lifespan
        await page.goto(f"{base}/console/signin")
        await page.get_by_label("Email").fill(admin.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await page.wait_for_url(f"{base}/console/")
        await page.goto(base + overview_url)
        await page.get_by_role("navigation", name="Tenant").get_by_role("link", name="Subscription").click()
        await page.wait_for_url(f"{base}{overview_url}/subscription")
        await _shown(page, "subscription")

        await page.get_by_label("Plan", exact=True).select_option(growth)
        await page.get_by_label("Seats", exact=True).fill("3")
        await page.get_by_role("button", name="Review the change").click()
        await page.get_by_role("heading", name="Confirm the change").wait_for()
        billed_now = await page.locator("#billed-now").inner_text()
        assert billed_now.endswith(" EUR") and billed_now != display(0, "EUR")
        assert await page.get_by_role("table").is_visible()  # the proration, line by line
        await _shown(page, "subscription_confirm")

        await page.get_by_role("button", name="Confirm the change").click()
        await page.wait_for_url(f"{base}{overview_url}/subscription?done=changed")
        assert "Your subscription was changed." in await page.get_by_role("status").inner_text()
        await _shown(page, "subscription_changed")

        await page.get_by_role("navigation", name="Tenant").get_by_role("link", name="Overview").click()
        await page.wait_for_url(base + overview_url)
        assert f"{growth} (version 1), 3 seats" in await page.locator("dl.facts").inner_text()
        await _shown(page, "overview_after_change")

    [change] = [each for each in await invoices(client, staff.headers, tenant["id"]) if each["kind"] == "change"]
    assert billed_now == display(change["total_minor"], "EUR")  # what the confirmation showed was billed
