"""A tenant's webhooks and notifications in the console: the endpoint set and removed, the signing secret
rotated and shown once, deliveries and emails listed; only tenant admins."""

from __future__ import annotations

import re

from httpx import AsyncClient

from tests.api.console.test_console import billed_tenant, browser, csrf_of, sign_in
from tests.factories import Factory

__all__ = ["browser"]  # the fixture, shared
RECEIVER = "http://127.0.0.1:9/hooks/controlplane"


async def test_an_admin_sets_the_endpoint_rotates_the_secret_and_removes_the_endpoint(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    webhooks = f"/console/tenants/{tenant['id']}/webhooks"
    shown = await browser.get(webhooks)
    assert shown.status_code == 200 and "No endpoint" in shown.text
    for _ in range(2):  # a repeat changes nothing more
        saved = await browser.post(f"{webhooks}/endpoint", data={"csrf_token": csrf_of(shown), "url": RECEIVER})
        assert saved.status_code == 303
    api = await client.get(f"/v1/tenants/{tenant['id']}/webhook-endpoint", headers=admin.headers)
    assert api.json()["url"] == RECEIVER
    assert RECEIVER in (await browser.get(webhooks)).text

    rotated = await browser.post(f"{webhooks}/secret/rotate", data={"csrf_token": csrf_of(shown)})
    assert rotated.status_code == 201 and "New signing secret" in rotated.text
    secret = re.search(r'id="new-secret" type="text" readonly value="([^"]+)"', rotated.text)
    assert secret and len(secret.group(1)) >= 32
    assert secret.group(1) not in (await browser.get(webhooks)).text  # shown once

    bad = await browser.post(f"{webhooks}/endpoint", data={"csrf_token": csrf_of(shown), "url": "javascript:alert(1)"})
    assert 400 <= bad.status_code < 500 and bad.headers["content-type"].startswith("text/html")
    removed = await browser.post(f"{webhooks}/endpoint/remove", data={"csrf_token": csrf_of(shown)})
    assert removed.status_code == 303 and "No endpoint" in (await browser.get(webhooks)).text

    notifications = await browser.get(f"/console/tenants/{tenant['id']}/notifications")
    assert notifications.status_code == 200 and "Notifications" in notifications.text


async def test_a_member_is_refused_the_webhook_and_notification_pages(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    member = await factory.member(tenant["id"], "tenant_member")
    await sign_in(browser, member.email)
    base = f"/console/tenants/{tenant['id']}"
    for path in ("/webhooks", "/notifications"):
        assert (await browser.get(base + path)).status_code == 403, path
    home = await browser.get("/console/")
    for path, data in (("/webhooks/endpoint", {"url": RECEIVER}), ("/webhooks/secret/rotate", {})):
        refused = await browser.post(base + path, data={"csrf_token": csrf_of(home), **data})
        assert refused.status_code == 403, path
