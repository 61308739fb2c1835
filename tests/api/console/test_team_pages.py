"""A tenant's people and keys in the console: members invited, re-roled and removed; API keys created (the secret
shown once) and revoked; the audit trail of it all; and who may do which."""

from __future__ import annotations

import re
import uuid

from httpx import AsyncClient

from tests.api.console.test_console import billed_tenant, browser, csrf_of, sign_in
from tests.factories import Factory

__all__ = ["browser"]  # the fixture, shared


async def test_an_admin_invites_re_roles_and_removes_a_member_and_the_audit_trail_says_so(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    members = f"/console/tenants/{tenant['id']}/members"
    form = await browser.get(members)
    assert form.status_code == 200 and admin.email in form.text and "Add a member" in form.text
    invited = f"invited-{uuid.uuid4().hex[:6]}@example.com"
    added = await browser.post(members, data={"csrf_token": csrf_of(form), "email": invited, "role": "tenant_member"})
    assert added.status_code == 303
    listed = await browser.get(members)
    assert invited in listed.text
    found = await client.get(f"/v1/tenants/{tenant['id']}/members", headers=admin.headers)
    [user_id] = [each["user_id"] for each in found.json()["items"] if each["email"] == invited]
    changed = await browser.post(
        f"{members}/{user_id}/role", data={"csrf_token": csrf_of(listed), "role": "billing_viewer"}
    )
    assert changed.status_code == 303
    assert "billing_viewer" in (await browser.get(members)).text
    removed = await browser.post(f"{members}/{user_id}/remove", data={"csrf_token": csrf_of(listed)})
    assert removed.status_code == 303 and invited not in (await browser.get(members)).text
    again = await browser.post(f"{members}/{user_id}/remove", data={"csrf_token": csrf_of(listed)})
    assert again.status_code == 303  # removing a former member changes nothing

    audit = await browser.get(f"/console/tenants/{tenant['id']}/audit")
    assert audit.status_code == 200
    assert "member.added" in audit.text and "member.role_changed" in audit.text and "member.removed" in audit.text


async def test_an_api_key_is_shown_once_and_a_revoked_key_stops_working(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    keys = f"/console/tenants/{tenant['id']}/api-keys"
    form = await browser.get(keys)
    created = await browser.post(
        keys, data={"csrf_token": csrf_of(form), "name": "Deploy <b>bot</b>", "role": "tenant_member"}
    )
    assert created.status_code == 201 and "Deploy &lt;b&gt;bot&lt;/b&gt;" in created.text
    secret = re.search(r'value="(cpk_[^"]+)"', created.text)
    assert secret
    bearer = {"Authorization": f"Bearer {secret.group(1)}"}
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=bearer)).status_code == 200
    listed = await browser.get(keys)
    assert "cpk_" not in listed.text and "Deploy &lt;b&gt;bot&lt;/b&gt;" in listed.text
    key_id = re.search(r"/api-keys/([0-9a-f-]{36})/revoke", listed.text)
    assert key_id
    revoked = await browser.post(f"{keys}/{key_id.group(1)}/revoke", data={"csrf_token": csrf_of(listed)})
    assert revoked.status_code == 303
    assert (await client.get(f"/v1/tenants/{tenant['id']}", headers=bearer)).status_code == 401


async def test_a_member_reads_the_members_but_changes_nothing_and_hostile_forms_are_4xx(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    member = await factory.member(tenant["id"], "tenant_member")
    await sign_in(browser, member.email)
    members = f"/console/tenants/{tenant['id']}/members"
    shown = await browser.get(members)
    assert shown.status_code == 200 and "Add a member" not in shown.text and admin.email in shown.text
    refused = await browser.post(
        members, data={"csrf_token": csrf_of(shown), "email": "x@example.com", "role": "tenant_admin"}
    )
    assert refused.status_code == 403
    assert (await browser.get(f"/console/tenants/{tenant['id']}/audit")).status_code == 403

    async with AsyncClient(transport=browser._transport, base_url="http://testserver") as as_admin:
        await sign_in(as_admin, admin.email)
        form = await as_admin.get(members)
        hostile = (
            ("not an email", "tenant_member"),
            ("ok@example.com", "platform_staff"),
            ("é" * 400, "x" * 5000),
            ("nul\x00@example.com", "tenant_member"),
            ("x@y.example,evil@z.example", "tenant_member"),
            ('"Boss" <boss@z.example>', "tenant_member"),
        )
        for email, role in hostile:
            answer = await as_admin.post(members, data={"csrf_token": csrf_of(form), "email": email, "role": role})
            assert 400 <= answer.status_code < 500, (email[:20], role[:20], answer.status_code)
        keys = f"/console/tenants/{tenant['id']}/api-keys"
        for name in ("two\nlines", "nul\x00", "x" * 201):
            body = {"csrf_token": csrf_of(form), "name": name, "role": "tenant_member"}
            refused_key = await as_admin.post(keys, data=body)
            assert refused_key.status_code == 400, name[:10]
        other, _ = await billed_tenant(client, factory, name="Other")
        assert (await as_admin.get(f"/console/tenants/{other['id']}/members")).status_code == 404


async def test_a_console_form_is_never_replayed_from_the_idempotency_store(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    """The API's idempotency keys are the API's: a console answer may hold a secret shown once."""
    tenant, _ = await billed_tenant(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    keys = f"/console/tenants/{tenant['id']}/api-keys"
    form = await browser.get(keys)
    body = {"csrf_token": csrf_of(form), "name": "Replayed?", "role": "tenant_member"}
    first = await browser.post(keys, data=body, headers={"Idempotency-Key": "console-replay"})
    second = await browser.post(keys, data=body, headers={"Idempotency-Key": "console-replay"})
    secrets = [re.search(r'value="(cpk_[^"]+)"', answer.text) for answer in (first, second)]
    assert secrets[0] and secrets[1] and secrets[0].group(1) != secrets[1].group(1)
