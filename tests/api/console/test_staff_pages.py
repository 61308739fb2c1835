"""The back office over HTTP: only staff enter; tenants are searched (their own `%` and `_` taken literally),
suspended and reactivated; the revenue dashboard draws its months as SVG beside a table of the same numbers."""

from __future__ import annotations

import uuid

from httpx import AsyncClient

from tests.api.billing._support import plan
from tests.api.console.test_console import billed_tenant, browser, csrf_of, sign_in
from tests.api.console.test_partner_pages import INLINE_SCRIPT
from tests.factories import Factory

__all__ = ["browser"]  # the fixture, shared


async def test_only_staff_enter_the_back_office(browser: AsyncClient, client: AsyncClient, factory: Factory) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    home = await browser.get("/console/")
    assert "Back office" not in home.text
    for path in (
        "/console/staff/tenants",
        "/console/staff/revenue",
        "/console/staff/catalogue",
        "/console/staff/disputes",
    ):
        assert (await browser.get(path)).status_code == 403, path
    refused = await browser.post(f"/console/staff/tenants/{tenant['id']}/suspend", data={"csrf_token": csrf_of(home)})
    assert refused.status_code == 403
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=admin.headers)).json()["status"] == "active"


async def test_staff_search_suspend_and_reactivate_a_tenant(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    marker = uuid.uuid4().hex[:6]
    widgets = await factory.tenant(staff, name=f"Widgets {marker}")
    await factory.tenant(staff, name=f"Gadgets {marker}")
    await factory.tenant(staff, name=f"100% {marker}_x")
    await sign_in(browser, staff.email)
    found = await browser.get("/console/staff/tenants", params={"q": f"widgets {marker}"})
    assert found.status_code == 200 and f"Widgets {marker}" in found.text and "Gadgets" not in found.text
    literal = await browser.get("/console/staff/tenants", params={"q": f"% {marker}_"})
    assert f"100% {marker}_x" in literal.text and "Widgets" not in literal.text
    assert "No tenant matches" in (await browser.get("/console/staff/tenants", params={"q": f"{marker}%_%"})).text

    url = f"/console/staff/tenants/{widgets['id']}"
    for _ in range(2):  # a repeat answers with the same state
        suspended = await browser.post(f"{url}/suspend", data={"csrf_token": csrf_of(found)})
        assert suspended.status_code == 303
    shown = await browser.get("/console/staff/tenants", params={"q": f"widgets {marker}"})
    assert "suspended" in shown.text and f"Reactivate Widgets {marker}" in shown.text
    assert (await client.get(f"/v1/tenants/{widgets['id']}", headers=staff.headers)).json()["status"] == "suspended"
    reactivated = await browser.post(f"{url}/reactivate", data={"csrf_token": csrf_of(shown)})
    assert reactivated.status_code == 303
    assert (await client.get(f"/v1/tenants/{widgets['id']}", headers=staff.headers)).json()["status"] == "active"
    assert (await browser.get("/console/staff/tenants", params={"q": "nul\x00"})).status_code == 422
    unknown = await browser.post(f"{url}/erase", data={"csrf_token": csrf_of(shown)})
    assert unknown.status_code in (404, 405)


async def test_the_revenue_dashboard_draws_the_months_and_refuses_a_bad_range(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    await billed_tenant(client, factory)  # one tenant's MRR in EUR
    staff = await factory.staff()
    await sign_in(browser, staff.email)
    dashboard = await browser.get("/console/staff/revenue", params={"currency": "EUR"})
    assert dashboard.status_code == 200
    assert dashboard.text.count('<svg class="chart" role="img"') == 2 and not INLINE_SCRIPT.search(dashboard.text)
    assert "Month by month, EUR" in dashboard.text and dashboard.text.count("Plugin adoption in") == 1
    assert "<title>Revenue · Back office · Control plane</title>" in dashboard.text
    for params in ({"from": "2026-13"}, {"from": "2030-01", "to": "2030-02"}, {"from": "1999-01", "to": "2026-01"}):
        bad = await browser.get("/console/staff/revenue", params=params)
        assert 400 <= bad.status_code < 500 and bad.headers["content-type"].startswith("text/html"), params


async def test_staff_read_the_catalogue_and_the_disputes(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    await billed_tenant(client, factory)  # a plan
    staff = await factory.staff()
    fraction = f"fraction-{uuid.uuid4().hex[:6]}"
    await plan(client, staff.headers, fraction, [{"type": "flat", "amount_minor": "999.5"}])
    code = f"welcome{uuid.uuid4().hex[:6]}"
    coupon = {"code": code, "name": "Welcome <10%>", "percent_off_bps": 1000, "duration": "forever"}
    assert (await client.post("/v1/coupons", json=coupon, headers=staff.headers)).status_code == 201
    await sign_in(browser, staff.email)
    catalogue = await browser.get("/console/staff/catalogue")
    assert catalogue.status_code == 200
    assert code in catalogue.text and "Welcome &lt;10%&gt;" in catalogue.text and "10.00 %" in catalogue.text
    assert "12.34 EUR" in catalogue.text  # the plan's flat price
    assert "10.00 EUR" in catalogue.text  # 999.5 minor units, rounded half up once
    for status in ("", "open", "won", "nonsense'><script>"):
        disputes = await browser.get("/console/staff/disputes", params={"status": status})
        assert disputes.status_code == 200 and "No disputes." in disputes.text and "<script>" not in disputes.text
