"""A tenant's plugin pages over HTTP: the catalogue, installing, a trial started once, uninstalling; who may do
what, another tenant's pages, and hostile form values.

What a page did is checked through the API too (installs, licenses), so a page that only says so fails.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from httpx import AsyncClient, Response

from controlplane.console import plugin_pages
from tests.api.billing._support import plan, subscribe
from tests.api.console.test_console import browser, csrf_of, sign_in
from tests.api.plugins._support import Headers, machine_key, publish, publisher
from tests.factories import Actor, Factory

__all__ = ["browser"]  # the fixture, shared


async def listed_plugin(
    client: AsyncClient,
    staff: Headers,
    name: str,
    pricing: dict[str, Any],
    *,
    seats: int = 2,
    versions: tuple[str, ...] = ("1.0.0", "1.1.0"),
) -> dict[str, Any]:
    """A plugin in the catalogue: its publisher, its definition, and its versions published."""
    pub = await publisher(client, staff)
    body = {
        "slug": f"{name.lower().split()[0]}-{uuid.uuid4().hex[:8]}",
        "name": name,
        "publisher_id": pub["id"],
        "description": f"{name} for your team",
        "pricing": pricing,
        "entitlements": {"features": ["export"], "limits": {"reports": 100}, "seats": seats},
    }
    made = await client.post("/v1/plugins", json=body, headers=staff)
    assert made.status_code == 201, made.text
    for version in versions:
        await publish(client, staff, body["slug"], version)
    plugin: dict[str, Any] = made.json()
    return plugin


async def subscribed_tenant(
    client: AsyncClient, factory: Factory, name: str = "Acme Analytics"
) -> tuple[dict[str, Any], Actor, Actor]:
    """A tenant with a live subscription (a paid plugin bills through it), its admin, and a staff user."""
    staff = await factory.staff()
    tenant = await factory.tenant(staff, name=name)
    code = f"plan-{uuid.uuid4().hex[:8]}"
    await plan(client, staff.headers, code, [{"type": "flat", "amount_minor": 2900}])
    await subscribe(client, staff.headers, tenant["id"], code)
    return tenant, await factory.member(tenant["id"]), staff


TRIAL_PRICING = {"model": "flat", "amount_minor": 900, "currency": "EUR", "trial_days": 14}


async def installs_of(client: AsyncClient, admin: Actor, tenant_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/tenants/{tenant_id}/plugins", headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def licenses_of(client: AsyncClient, admin: Actor, tenant_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/tenants/{tenant_id}/licenses", params={"limit": 100}, headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def post_form(browser: AsyncClient, page_path: str, action: str, **fields: str) -> Response:
    """Send a form of the page at `page_path` with that page's CSRF token, as the browser would."""
    shown = await browser.get(page_path)
    return await browser.post(action, data={"csrf_token": csrf_of(shown), **fields})


def cells(page: Response) -> list[str]:
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", page.text, re.S)]


async def test_the_catalogue_shows_published_plugins_with_their_terms_and_what_is_installed(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, admin, staff = await subscribed_tenant(client, factory)
    free = await listed_plugin(client, staff.headers, "Exporter", {"model": "free"})
    trial = await listed_plugin(client, staff.headers, "Insights", TRIAL_PRICING)
    per_seat = await listed_plugin(
        client, staff.headers, "Mailer", {"model": "per_seat", "amount_minor": 250, "currency": "EUR"}
    )
    unpublished = await listed_plugin(client, staff.headers, "Draft", {"model": "free"}, versions=())
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/plugins"

    overview = await browser.get(f"/console/tenants/{tenant['id']}")
    assert f'href="{base}">Plugins</a>' in overview.text  # in the tenant's navigation

    index = await browser.get(base)
    assert index.status_code == 200, index.text
    shown = cells(index)
    assert "No plugin is installed." in shown
    assert f"{base}/{free['slug']}" in index.text and f"{base}/{trial['slug']}" in index.text
    assert "9.00 EUR per billing period" in shown and "14-day free trial" in shown
    assert "2.50 EUR per seat and billing period" in shown and "Free" in shown
    assert per_seat["slug"] in index.text and unpublished["slug"] not in index.text  # no version: not listed

    page = await browser.get(f"{base}/{trial['slug']}")
    assert page.status_code == 200, page.text
    assert "Start the 14-day trial" in page.text and "Install Insights" in page.text
    assert '<option value="1.1.0"' in page.text and '<option value="1.0.0"' in page.text

    installed = await post_form(browser, f"{base}/{free['slug']}", f"{base}/{free['slug']}/install", version="1.0.0")
    assert installed.status_code == 303 and installed.headers["location"] == f"{base}/{free['slug']}"
    [install] = await installs_of(client, admin, tenant["id"])
    assert (install["plugin"], install["version"], install["seats"]) == (free["slug"], "1.0.0", 2)

    index = await browser.get(base)
    assert "No plugin is installed." not in index.text
    row = cells(index)
    assert free["slug"] in row and "active" in row and "0 of 2" in row and "Installed (1.0.0)" in row


async def test_install_shows_the_license_seats_and_activations_and_repeats_and_uninstalls_harmlessly(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, admin, staff = await subscribed_tenant(client, factory)
    made = await listed_plugin(client, staff.headers, "Exporter", {"model": "free"}, seats=3)
    await sign_in(browser, admin.email)
    path = f"/console/tenants/{tenant['id']}/plugins/{made['slug']}"

    first = await post_form(browser, path, f"{path}/install", version="", seats="2")
    assert first.status_code == 303 and first.headers["location"] == path
    again = await post_form(browser, path, f"{path}/install", version="1.0.0", seats="3")
    assert again.status_code == 303 and again.headers["location"] == path  # installed already: left as it is
    [install] = await installs_of(client, admin, tenant["id"])
    assert (install["version"], install["seats"]) == ("1.1.0", 2)
    assert len(await licenses_of(client, admin, tenant["id"])) == 1

    key = await machine_key(client, admin.headers, tenant["id"])
    held = await client.post(
        f"/v1/licenses/{install['license']['id']}/activations",
        json={"fingerprint": "host-7f3a", "label": "build box"},
        headers=key,
    )
    assert held.status_code == 201, held.text
    page = await browser.get(path)
    assert page.status_code == 200
    assert "1 in use of 2" in page.text and "host-7f3a" in page.text and "build box" in page.text
    assert "Uninstall Exporter" in page.text and "Install Exporter" not in page.text

    removed = await post_form(browser, path, f"{path}/uninstall")
    assert removed.status_code == 303 and removed.headers["location"] == path
    assert await installs_of(client, admin, tenant["id"]) == []
    [license_] = await licenses_of(client, admin, tenant["id"])
    assert license_["status"] == "revoked" and license_["revoke_reason"] == "uninstalled"
    page = await browser.get(path)
    assert "Install Exporter" in page.text and "revoked" in page.text and "uninstalled" in page.text
    repeated = await post_form(browser, path, f"{path}/uninstall")
    assert repeated.status_code == 303
    assert len(await licenses_of(client, admin, tenant["id"])) == 1


def licenses_section(page: Response) -> str:
    return page.text.split('id="licenses-heading"', 1)[1].split("</section>", 1)[0]


async def test_the_plugin_page_lists_its_own_licenses_newest_first_and_says_when_older_ones_are_left_out(
    browser: AsyncClient, client: AsyncClient, factory: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant, admin, staff = await subscribed_tenant(client, factory)
    made = await listed_plugin(client, staff.headers, "Exporter", {"model": "free"})
    other = await listed_plugin(client, staff.headers, "Mailer", {"model": "free"})
    await sign_in(browser, admin.email)
    path = f"/console/tenants/{tenant['id']}/plugins/{made['slug']}"
    other_path = f"/console/tenants/{tenant['id']}/plugins/{other['slug']}"
    for action in ("install", "uninstall", "install"):
        assert (await post_form(browser, path, f"{path}/{action}")).status_code == 303
    assert (await post_form(browser, other_path, f"{other_path}/install")).status_code == 303
    assert len(await licenses_of(client, admin, tenant["id"])) == 3

    section = licenses_section(await browser.get(path))
    rows = re.findall(r"<tbody>(.*?)</tbody>", section, re.S)[0].count("<tr>")
    assert rows == 2  # this plugin's two licenses, not the other plugin's
    assert section.index("status-active") < section.index("status-revoked")  # newest first
    assert "older licenses are not" not in section

    monkeypatch.setattr(plugin_pages, "_LICENSES_SHOWN", 1)
    section = licenses_section(await browser.get(path))
    assert re.findall(r"<tbody>(.*?)</tbody>", section, re.S)[0].count("<tr>") == 1
    assert "status-active" in section and "status-revoked" not in section
    assert "Only the newest 1 are shown; older licenses are not." in section


async def test_a_trial_starts_once_and_its_license_shows(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, admin, staff = await subscribed_tenant(client, factory)
    made = await listed_plugin(client, staff.headers, "Insights", TRIAL_PRICING)
    await sign_in(browser, admin.email)
    path = f"/console/tenants/{tenant['id']}/plugins/{made['slug']}"

    started = await post_form(browser, path, f"{path}/trial")
    assert started.status_code == 303 and started.headers["location"] == path
    [license_] = await licenses_of(client, admin, tenant["id"])
    assert license_["trial"] is True and license_["status"] == "active" and license_["trial_ends_at"]
    page = await browser.get(path)
    assert page.status_code == 200
    assert f"trial until {license_['trial_ends_at'][:10]}" in page.text and "active (trial)" in page.text
    assert "Start the 14-day trial" not in page.text

    # The same POST again (a double click, a reload): no second trial, no second license.
    again = await browser.post(f"{path}/trial", data={"csrf_token": csrf_of(page)})
    assert again.status_code == 303 and again.headers["location"] == path
    assert [each["id"] for each in await licenses_of(client, admin, tenant["id"])] == [license_["id"]]
    assert len(await installs_of(client, admin, tenant["id"])) == 1

    # Uninstalled, the trial is used: asking for it again is refused, nothing is installed (or billed).
    await post_form(browser, path, f"{path}/uninstall")
    page = await browser.get(path)
    assert "Start the 14-day trial" not in page.text and "Install Insights" in page.text
    refused = await browser.post(f"{path}/trial", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 409 and "used the plugin&#39;s trial already" in refused.text
    assert await installs_of(client, admin, tenant["id"]) == []


async def test_a_paid_plugins_trial_needs_a_subscription_and_a_free_plugin_has_none(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)  # no subscription
    admin = await factory.member(tenant["id"])
    paid = await listed_plugin(client, staff.headers, "Insights", TRIAL_PRICING)
    free = await listed_plugin(client, staff.headers, "Exporter", {"model": "free"})
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/plugins"

    refused = await post_form(browser, f"{base}/{paid['slug']}", f"{base}/{paid['slug']}/trial")
    assert refused.status_code == 409 and "live subscription" in refused.text and 'role="alert"' in refused.text
    no_trial = await post_form(browser, f"{base}/{free['slug']}", f"{base}/{free['slug']}/trial")
    assert no_trial.status_code == 409 and "has no trial" in no_trial.text
    assert await installs_of(client, admin, tenant["id"]) == []


async def test_a_tenant_member_sees_the_plugins_but_cannot_install_start_a_trial_or_uninstall(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, admin, staff = await subscribed_tenant(client, factory)
    made = await listed_plugin(client, staff.headers, "Insights", TRIAL_PRICING)
    other = await listed_plugin(client, staff.headers, "Exporter", {"model": "free"})
    member = await factory.member(tenant["id"], "tenant_member")
    installed = await client.post(
        f"/v1/tenants/{tenant['id']}/plugins", json={"slug": other["slug"]}, headers=admin.headers
    )
    assert installed.status_code == 201, installed.text
    await sign_in(browser, member.email)
    base = f"/console/tenants/{tenant['id']}/plugins"

    index = await browser.get(base)
    assert index.status_code == 200 and other["slug"] in index.text
    page = await browser.get(f"{base}/{made['slug']}")
    assert page.status_code == 200 and "Insights" in page.text
    assert "/install" not in page.text and "/trial" not in page.text and "A tenant admin may install it" in page.text
    shown = await browser.get(f"{base}/{other['slug']}")
    assert "/uninstall" not in shown.text and "active" in shown.text

    token = csrf_of(page)
    for action, slug in (("install", made["slug"]), ("trial", made["slug"]), ("uninstall", other["slug"])):
        refused = await browser.post(f"{base}/{slug}/{action}", data={"csrf_token": token})
        assert refused.status_code == 403 and "forbidden_for_role" in refused.text, action
    assert [each["plugin"] for each in await installs_of(client, admin, tenant["id"])] == [other["slug"]]
    assert len(await licenses_of(client, admin, tenant["id"])) == 1


async def test_another_tenants_plugin_pages_are_not_found(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    mine, admin, staff = await subscribed_tenant(client, factory)
    theirs, their_admin, _ = await subscribed_tenant(client, factory, name="Theirs Limited")
    made = await listed_plugin(client, staff.headers, "Insights", TRIAL_PRICING)
    installed = await client.post(
        f"/v1/tenants/{theirs['id']}/plugins", json={"slug": made["slug"]}, headers=their_admin.headers
    )
    assert installed.status_code == 201, installed.text
    await sign_in(browser, admin.email)
    token = csrf_of(await browser.get(f"/console/tenants/{mine['id']}/plugins"))

    for path in (f"/console/tenants/{theirs['id']}/plugins", f"/console/tenants/{theirs['id']}/plugins/{made['slug']}"):
        page = await browser.get(path)
        assert page.status_code == 404, (path, page.status_code)
        assert "Theirs Limited" not in page.text and page.headers["content-type"].startswith("text/html")
    for action in ("install", "trial", "uninstall"):
        refused = await browser.post(
            f"/console/tenants/{theirs['id']}/plugins/{made['slug']}/{action}", data={"csrf_token": token}
        )
        assert refused.status_code == 404, (action, refused.status_code)
    [their_install] = await installs_of(client, their_admin, theirs["id"])
    assert their_install["license"]["status"] == "active"
    assert await installs_of(client, admin, mine["id"]) == []
    missing = await browser.get(f"/console/tenants/{mine['id']}/plugins/no-such-plugin")
    assert missing.status_code == 404 and "plugin_not_found" in missing.text


async def test_hostile_form_values_re_render_the_page_with_a_4xx_and_install_nothing(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, admin, staff = await subscribed_tenant(client, factory)
    made = await listed_plugin(client, staff.headers, "Exporter", {"model": "free"}, seats=2)
    await client.post(
        f"/v1/plugins/{made['slug']}/versions/1.0.0/yank", json={"reason": "broken"}, headers=staff.headers
    )
    await sign_in(browser, admin.email)
    path = f"/console/tenants/{tenant['id']}/plugins/{made['slug']}"
    token = csrf_of(await browser.get(path))

    for fields, message in (
        ({"version": "x" * 5000}, "Choose one of the versions offered."),
        ({"version": "<script>alert(1)</script>"}, "Choose one of the versions offered."),
        ({"version": "1.0.0"}, "Choose one of the versions offered."),  # yanked
        ({"version": "9.9.9"}, "Choose one of the versions offered."),
        ({"seats": "-1"}, "Seats must be a whole number from 1 to 2."),
        ({"seats": "0"}, "Seats must be a whole number from 1 to 2."),
        ({"seats": "3"}, "Seats must be a whole number from 1 to 2."),  # above the plugin's seat limit
        ({"seats": "1e3"}, "Seats must be a whole number from 1 to 2."),
        ({"seats": "٣"}, "Seats must be a whole number from 1 to 2."),  # a digit, not an ASCII one
        ({"seats": "9" * 4000}, "Seats must be a whole number from 1 to 2."),
        ({"seats": "<b>2</b>"}, "Seats must be a whole number from 1 to 2."),
    ):
        page = await browser.post(f"{path}/install", data={"csrf_token": token, **fields})
        assert page.status_code == 400, (fields, page.status_code)
        assert message in page.text and 'role="alert"' in page.text and "Install Exporter" in page.text
        assert "<script>alert" not in page.text and "<b>2</b>" not in page.text and "x" * 300 not in page.text
    repeated = await browser.post(f"{path}/install", data={"csrf_token": token, "version": ["1.1.0", "2.0.0"]})
    assert 400 <= repeated.status_code < 500
    no_token = await browser.post(f"{path}/install", data={"version": "1.1.0"})
    assert no_token.status_code == 403 and "csrf_refused" in no_token.text
    long_slug = await browser.post(
        f"/console/tenants/{tenant['id']}/plugins/{'a' * 200}/install", data={"csrf_token": token}
    )
    assert long_slug.status_code == 400
    odd_slug = await browser.get(f"/console/tenants/{tenant['id']}/plugins/%3Cscript%3E")
    assert odd_slug.status_code == 404 and "<script>" not in odd_slug.text
    assert await installs_of(client, admin, tenant["id"]) == []

    fine = await browser.post(f"{path}/install", data={"csrf_token": token, "version": " 1.1.0 ", "seats": "1"})
    assert fine.status_code == 303
    [install] = await installs_of(client, admin, tenant["id"])
    assert (install["version"], install["seats"]) == ("1.1.0", 1)
