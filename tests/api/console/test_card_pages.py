"""The card form over HTTP: the page makes a SetupIntent and lets Stripe.js in through its own policy; the form
is accepted only with a succeeded SetupIntent of the tenant's own customer, whatever id the browser sends."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient

from tests.api.billing.test_payments import GOOD_CARD, card, stripe_client
from tests.api.console.test_console import billed_tenant, browser, csrf_of, sign_in
from tests.factories import Factory

__all__ = ["browser", "stripe_client"]  # the fixtures, shared


def client_secret_of(text: str) -> str:
    found = re.search(r'data-client-secret="([^"]+)"', text)
    assert found, text[-1500:]
    return found.group(1)


async def test_the_card_form_accepts_only_the_tenants_own_succeeded_setup(
    browser: AsyncClient, client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    mine, _ = await billed_tenant(client, factory, name="Mine")
    theirs, _ = await billed_tenant(client, factory, name="Theirs")
    admin = await factory.member(mine["id"])
    their_admin = await factory.member(theirs["id"])
    await sign_in(browser, admin.email)
    cards = f"/console/tenants/{mine['id']}/payment-methods"
    shown = await browser.get(cards)
    assert shown.status_code == 200 and "Add a card" in shown.text
    policy = shown.headers["content-security-policy"]
    assert "script-src 'self' http://127.0.0.1:" in policy and "unsafe-inline" not in policy
    assert shown.headers.get_list("content-security-policy") == [policy]  # one policy: the page's own
    mine_setup = client_secret_of(shown.text).split("_secret_")[0]

    async with AsyncClient(transport=browser._transport, base_url="http://testserver") as other:
        await sign_in(other, their_admin.email)
        theirs_page = await other.get(f"/console/tenants/{theirs['id']}/payment-methods")
        their_setup = client_secret_of(theirs_page.text).split("_secret_")[0]
    stripe_client.v1.setup_intents.confirm(their_setup, params={"payment_method": card(stripe_client, GOOD_CARD)})

    for setup_id, status in ((their_setup, 422), (mine_setup, 422), ("seti_doesnotexist000", None), ("x'--", 400)):
        refused = await browser.post(cards, data={"csrf_token": csrf_of(shown), "setup_intent": setup_id})
        assert 400 <= refused.status_code < 500 and (status is None or refused.status_code == status), (
            setup_id,
            refused.status_code,
        )
    listed = await client.get(f"/v1/tenants/{mine['id']}/payment-methods", headers=admin.headers)
    assert listed.json()["items"] == []  # neither their card nor an unconfirmed setup became ours

    stripe_client.v1.setup_intents.confirm(mine_setup, params={"payment_method": card(stripe_client, GOOD_CARD)})
    for _ in range(2):  # a repeat saves the same card once
        saved = await browser.post(cards, data={"csrf_token": csrf_of(shown), "setup_intent": mine_setup})
        assert saved.status_code == 303
    listed = await client.get(f"/v1/tenants/{mine['id']}/payment-methods", headers=admin.headers)
    assert [(each["last4"], each["default"]) for each in listed.json()["items"]] == [("4242", True)]


async def test_a_member_sees_no_card_form_and_cannot_add_one(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    tenant, _ = await billed_tenant(client, factory)
    viewer = await factory.member(tenant["id"], "billing_viewer")
    await sign_in(browser, viewer.email)
    cards = f"/console/tenants/{tenant['id']}/payment-methods"
    shown = await browser.get(cards)
    assert shown.status_code == 200 and "Add a card" not in shown.text
    assert "http://127.0.0.1" not in shown.headers["content-security-policy"]  # no Stripe.js: the usual policy
    refused = await browser.post(cards, data={"csrf_token": csrf_of(shown), "setup_intent": "seti_abc"})
    assert refused.status_code == 403
