"""The reseller portal and the staff review queue in Debian's chromium, over real HTTP: a reseller's admin reads
the portal, a statement, and downloads its CSV; a new reseller's admin submits a checkpoint and staff approve it
(and reject another with a reason). Each page is screenshotted (.artifacts/console/) and checked by axe-core for
critical and serious violations."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import AsyncClient
from litestar import Litestar
from playwright.async_api import Page

from billing import service as billing
from tests.api.billing.test_payments import stripe_client
from tests.api.partners.test_commissions import _closed_month_with_payable
from tests.api.partners.test_resellers import _sign_up, _step
from tests.browser import assert_accessible, screenshot, serve_asgi
from tests.factories import PASSWORD, Actor, Factory

pytestmark = pytest.mark.slow  # a real browser: `make test` runs it, `make test-fast` does not

__all__ = ["stripe_client"]  # the fixture, used by name


async def _shown(page: Page, name: str) -> None:
    # Stricter than the console's floor (critical only): these pages pass serious ones too, and should go on to.
    await assert_accessible(page, impacts=("critical", "serious"))
    await screenshot(page, name)


async def _sign_in(page: Page, base: str, person: Actor) -> None:
    await page.goto(f"{base}/console/signin")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_label("Password").press("Enter")
    await page.wait_for_url(f"{base}/console/")


async def _sign_out(page: Page, base: str) -> None:
    await page.get_by_role("button", name="Sign out", exact=True).click()
    await page.wait_for_url(f"{base}/console/signin")


async def test_a_reseller_admin_reads_a_statement_and_downloads_its_csv(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page, stripe_client: Any
) -> None:
    reseller, founder, statement = await _closed_month_with_payable(client, factory, stripe_client, "acct_1Northwind")
    assert (await billing.send_payouts(app.state.payments)).paid == 1
    month = f"{datetime.now(UTC):%Y-%m}"

    async with serve_asgi(app, lifespan="off") as base:
        await _sign_in(page, base, founder)
        await _shown(page, "partner_home")
        await page.get_by_role("link", name="Northwind Resale").click()
        await page.wait_for_url(f"{base}/console/partners/{reseller}")
        assert await page.get_by_role("heading", name=f"Recurring revenue in {month}").is_visible()
        await _shown(page, "partner_overview")

        partner_nav = page.get_by_role("navigation", name="Partner")
        await partner_nav.get_by_role("link", name="Commissions").click()
        await page.wait_for_url(f"{base}/console/partners/{reseller}/commissions")
        chart = page.get_by_role("img", name="Commission by month in EUR, oldest first")
        assert await chart.is_visible()
        await _shown(page, "partner_commissions")

        await page.get_by_role("link", name=month, exact=True).click()
        await page.wait_for_url(f"{base}/console/partners/{reseller}/statements/{month}")
        assert await page.get_by_role("heading", name=f"Statement for {month}").is_visible()
        await _shown(page, "partner_statement")
        async with page.expect_download() as started:
            await page.get_by_role("link", name="Download the CSV").click()
        download = await started.value
        assert download.suggested_filename == f"statement-{month}.csv"
        saved = await download.path()
        assert saved is not None
        rows = saved.read_text().splitlines()
        assert rows[0].startswith("tenant_id,invoice_number,kind")
        assert f"payable_minor,,,,,{statement['payable_minor']},EUR" in rows

        await partner_nav.get_by_role("link", name="Revenue").click()
        await page.wait_for_url(f"{base}/console/partners/{reseller}/revenue")
        assert await page.get_by_role("img", name="MRR at each month's end, EUR").is_visible()
        await _shown(page, "partner_revenue")

        await partner_nav.get_by_role("link", name="Payouts").click()
        await page.wait_for_url(f"{base}/console/partners/{reseller}/payouts")
        assert await page.get_by_role("cell", name="paid", exact=True).is_visible()
        await _shown(page, "partner_payouts")
        await partner_nav.get_by_role("link", name="Qualification").click()
        await page.wait_for_url(f"{base}/console/partners/{reseller}/qualification")
        await _shown(page, "partner_qualification_done")


async def test_a_reseller_submits_a_checkpoint_and_staff_approve_it(
    app: Litestar, client: AsyncClient, factory: Factory, page: Page
) -> None:
    founder, other = await factory.user(), await factory.user()
    reseller = (await _sign_up(client, founder))["id"]
    other_id = (await _sign_up(client, other))["id"]
    await _step(client, other.headers, other_id, "profile_approved", "submit", evidence="a thin profile")
    staff = await factory.staff()

    async with serve_asgi(app, lifespan="off") as base:
        await _sign_in(page, base, founder)
        await page.goto(f"{base}/console/partners/{reseller}/qualification")
        await _shown(page, "partner_qualification")
        await page.get_by_label("Evidence for Company profile approved").fill("Northwind Resale Ltd, 1 Quay St")
        await page.get_by_label("Evidence for Company profile approved").press("Enter")
        await page.get_by_text("await_review_profile_approved").wait_for()
        await _sign_out(page, base)

        await _sign_in(page, base, staff)
        await page.get_by_role("link", name="Partner review queue").click()
        await page.wait_for_url(f"{base}/console/staff/partners/review")
        assert await page.get_by_role("cell", name="Northwind Resale Ltd, 1 Quay St").is_visible()
        await _shown(page, "partner_review_queue")

        # Both partners are named "Northwind Resale": each row's controls are told apart by their order.
        rows = page.get_by_role("row").filter(has_text="Northwind Resale Ltd, 1 Quay St")
        await rows.get_by_role("button", name="Approve Company profile approved of Northwind Resale").click()
        await page.get_by_role("status").filter(has_text="The checkpoint was approved.").wait_for()
        await _shown(page, "partner_review_approved")

        other_row = page.get_by_role("row").filter(has_text="a thin profile")
        await other_row.get_by_label("Reason to reject Company profile approved of Northwind Resale").fill(
            "no company address"
        )
        await other_row.get_by_role("button", name="Reject Company profile approved of Northwind Resale").click()
        await page.get_by_role("status").filter(has_text="rejected").wait_for()
        assert await page.get_by_text("Nothing is waiting for review").is_visible()
        await _shown(page, "partner_review_empty")

    standings = [
        (await client.get(f"/v1/partners/{pid}/qualification", headers=staff.headers)).json()
        for pid in (reseller, other_id)
    ]
    assert [standing["checkpoints"][0]["status"] for standing in standings] == ["approved", "rejected"]
    assert "no company address" in standings[1]["issues"][0]
