"""A card added in the console through Stripe.js, in Debian's chromium: localstripe serves its stand-in for
Stripe.js (as it does in development), the browser confirms the page's SetupIntent with it, and our server is
sent only the SetupIntent's id. The card then pays: it is the tenant's default."""

from __future__ import annotations

import pytest
from httpx import AsyncClient
from litestar import Litestar
from playwright.async_api import Page

from tests.browser import assert_accessible, screenshot, serve_asgi
from tests.factories import PASSWORD, Factory

pytestmark = pytest.mark.slow  # a real browser: `make test` runs it, `make test-fast` does not


async def test_a_tenant_admin_adds_a_card_with_stripe_js(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff, name="Card Holders")
    admin = await factory.member(tenant["id"])
    async with serve_asgi(app, lifespan="off") as base:
        await page.goto(f"{base}/console/signin")
        await page.get_by_label("Email").fill(admin.email)
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_label("Password").press("Enter")
        await page.wait_for_url(f"{base}/console/")
        await page.goto(f"{base}/console/tenants/{tenant['id']}/payment-methods")
        await page.get_by_placeholder("number").wait_for()  # the stand-in's fields, mounted by Stripe.js
        # The card's fields are Stripe's (in production an iframe of its own), not ours.
        await assert_accessible(page, exclude=["#card-element"])
        await page.get_by_placeholder("number").fill("4242424242424242")
        await page.get_by_placeholder("exp_month").fill("12")
        await page.get_by_placeholder("exp_year").fill("31")
        await page.get_by_placeholder("cvc").fill("123")
        await page.get_by_placeholder("postal_code").fill("42424")
        await page.get_by_role("button", name="Save the card").click()
        await page.get_by_role("cell", name="ending 4242").wait_for()
        await screenshot(page, "payment_methods")

    cards = await client.get(f"/v1/tenants/{tenant['id']}/payment-methods", headers=admin.headers)
    [card] = cards.json()["items"]
    assert (card["last4"], card["default"]) == ("4242", True)
