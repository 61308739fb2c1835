"""The Credits page over HTTP: a tenant's wallet (balance and movements) for those who may read billing, and
buying credit by card for those who may manage it, once per form however often it is sent; hostile amounts,
other roles and other tenants refused with an error page, nothing written."""

from __future__ import annotations

import re
from typing import Any

from httpx import AsyncClient, Response

from controlplane.console.credit_pages import parse_amount
from controlplane.console.params import PAGE_SIZE
from tests.api.billing.test_wallets import GOOD_CARD, add_card, card, stripe_client
from tests.api.console.test_console import browser, csrf_of, sign_in
from tests.factories import Actor, Factory

__all__ = ["browser", "stripe_client"]  # the fixtures, shared

_KEY = re.compile(r'name="top_up_key" value="([0-9a-f]{32})"')


def key_of(shown: Response) -> str:
    found = _KEY.search(shown.text)
    assert found, shown.text[-2000:]
    return found.group(1)


async def admin_tenant(factory: Factory) -> tuple[Actor, dict[str, Any], Actor]:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)  # EUR
    admin = await factory.member(tenant["id"])
    return staff, tenant, admin


async def grant(client: AsyncClient, staff: Actor, tenant_id: str, amount_minor: int) -> None:
    response = await client.post(
        f"/v1/tenants/{tenant_id}/wallet/top-ups",
        json={"amount_minor": amount_minor, "paid": False},
        headers=staff.headers,
    )
    assert response.status_code == 201, response.text


async def wallet(client: AsyncClient, actor: Actor, tenant_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/tenants/{tenant_id}/wallet", headers=actor.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def credit_purchases(client: AsyncClient, actor: Actor, tenant_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/tenants/{tenant_id}/invoices", headers=actor.headers)
    assert response.status_code == 200, response.text
    return [each for each in response.json()["items"] if each["kind"] == "credit_purchase"]


def test_an_amount_is_read_exactly_in_the_currencys_major_units() -> None:
    assert parse_amount("25.00", "EUR") == 2500
    assert parse_amount(" 25.5 ", "EUR") == 2550
    assert parse_amount("0.01", "EUR") == 1
    assert parse_amount("1000", "JPY") == 1000
    assert parse_amount("1.234", "KWD") == 1234
    assert parse_amount("10000000000000.00", "EUR") == 10**15
    for hostile in (
        "",
        "-1",
        "1e9",
        "0.001",
        "abc",
        "0",
        "0.00",
        "1.",
        ".5",
        "1,000",
        "١٢",
        "NaN",
        "Infinity",
        "9" * 30,
    ):
        assert parse_amount(hostile, "EUR") is None, hostile
    assert parse_amount("10000000000000.01", "EUR") is None  # above MAX_AMOUNT_MINOR
    assert parse_amount("1.5", "JPY") is None


async def test_an_admin_sees_the_balance_and_the_transactions_after_a_staff_grant(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, admin = await admin_tenant(factory)
    await grant(client, staff, tenant["id"], 1500)
    await sign_in(browser, admin.email)
    shown = await browser.get(f"/console/tenants/{tenant['id']}/credits")
    assert shown.status_code == 200, shown.text
    assert "<h1>Credits</h1>" in shown.text
    assert f'href="/console/tenants/{tenant["id"]}/credits">Credits</a>' in shown.text  # the tab
    assert shown.text.count("15.00 EUR") == 3  # the balance, what was granted, and the grant's line
    assert "<td>Granted</td>" in shown.text and "Buy credit" in shown.text
    assert "<script>" not in shown.text and "style=" not in shown.text

    for _ in range(PAGE_SIZE):  # a page and one more: the page after holds the last
        await grant(client, staff, tenant["id"], 1)
    first = await browser.get(f"/console/tenants/{tenant['id']}/credits")
    assert first.text.count("<td>Granted</td>") == PAGE_SIZE and "Later transactions" in first.text
    cursor = re.search(r'href="\?cursor=([^"]+)"', first.text)
    assert cursor
    later = await browser.get(f"/console/tenants/{tenant['id']}/credits?cursor={cursor.group(1)}")
    assert later.status_code == 200 and later.text.count("<td>Granted</td>") == 1
    assert "15.50 EUR" in later.text  # the balance, on every page
    bad_cursor = await browser.get(f"/console/tenants/{tenant['id']}/credits?cursor=nonsense")
    assert 400 <= bad_cursor.status_code < 500


async def test_a_paid_top_up_adds_credit_once_however_often_its_form_is_sent(
    browser: AsyncClient, client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    _staff, tenant, admin = await admin_tenant(factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    await sign_in(browser, admin.email)
    path = f"/console/tenants/{tenant['id']}/credits"
    shown = await browser.get(path)
    form = {"csrf_token": csrf_of(shown), "top_up_key": key_of(shown), "amount": "25.00"}
    for _ in range(2):
        bought = await browser.post(f"{path}/top-up", data=form)
        assert bought.status_code == 303 and bought.headers["location"] == f"{path}?done=topped_up", bought.text
    body = await wallet(client, admin, tenant["id"])
    assert (body["balance_minor"], body["purchased_minor"]) == (2500, 2500)
    assert [(each["kind"], each["amount_minor"]) for each in body["transactions"]] == [("top_up", 2500)]
    assert [each["status"] for each in await credit_purchases(client, admin, tenant["id"])] == ["paid"]

    # The same form with another amount buys nothing; a fresh form buys again.
    changed = await browser.post(f"{path}/top-up", data=form | {"amount": "30.00"})
    assert changed.status_code == 422 and "another amount" in changed.text
    after = await browser.get(f"{path}?done=topped_up")
    assert "The card was charged and the credit added." in after.text and "25.00 EUR" in after.text
    again = await browser.post(f"{path}/top-up", data=form | {"top_up_key": key_of(after), "amount": "5"})
    assert again.status_code == 303
    assert (await wallet(client, admin, tenant["id"]))["balance_minor"] == 3000


async def test_a_tenant_without_a_card_is_pointed_at_payment_methods(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    _staff, tenant, admin = await admin_tenant(factory)
    await sign_in(browser, admin.email)
    path = f"/console/tenants/{tenant['id']}/credits"
    shown = await browser.get(path)
    form = {"csrf_token": csrf_of(shown), "top_up_key": key_of(shown), "amount": "25.00"}
    refused = await browser.post(f"{path}/top-up", data=form)
    assert refused.status_code == 409, refused.text
    assert "no default card" in refused.text
    assert f'href="/console/tenants/{tenant["id"]}/payment-methods">Payment methods</a>' in refused.text
    assert 'value="25.00"' in refused.text  # what was typed, kept
    assert (await wallet(client, admin, tenant["id"]))["transactions"] == []
    assert await credit_purchases(client, admin, tenant["id"]) == []
    # The refusal released the form's key: sent again (still no card), it is refused the same way, not replayed.
    assert (await browser.post(f"{path}/top-up", data=form)).status_code == 409


async def test_hostile_amounts_and_keys_are_refused_with_the_form_and_nothing_written(
    browser: AsyncClient, client: AsyncClient, factory: Factory, stripe_client: Any
) -> None:
    _staff, tenant, admin = await admin_tenant(factory)
    await add_card(client, admin.headers, tenant["id"], card(stripe_client, GOOD_CARD))
    await sign_in(browser, admin.email)
    path = f"/console/tenants/{tenant['id']}/credits"
    shown = await browser.get(path)
    form = {"csrf_token": csrf_of(shown), "top_up_key": key_of(shown)}
    for amount in ("", "-1", "1e9", "0.001", "abc", "0", "9" * 40, "99999999999999999.99", "<b>1</b>", "1\x00"):
        refused = await browser.post(f"{path}/top-up", data=form | {"amount": amount})
        assert refused.status_code == 400, (amount, refused.status_code)
        assert "Enter an amount of EUR with at most 2 decimals" in refused.text, amount
        assert refused.headers["content-type"].startswith("text/html") and "<b>1</b>" not in refused.text
    for key in ("", "x" * 32, "../" * 11, "A" * 32):
        refused = await browser.post(f"{path}/top-up", data=form | {"top_up_key": key, "amount": "5"})
        assert refused.status_code == 400 and "out of date" in refused.text, key
    assert (await wallet(client, admin, tenant["id"]))["transactions"] == []
    assert await credit_purchases(client, admin, tenant["id"]) == []


async def test_a_member_is_refused_the_page_and_the_top_up(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    _staff, tenant, _admin = await admin_tenant(factory)
    member = await factory.member(tenant["id"], "tenant_member")
    await sign_in(browser, member.email)
    path = f"/console/tenants/{tenant['id']}/credits"
    refused = await browser.get(path)
    assert refused.status_code == 403 and "forbidden_for_role" in refused.text
    overview = await browser.get(f"/console/tenants/{tenant['id']}")
    form = {"csrf_token": csrf_of(overview), "top_up_key": "a" * 32, "amount": "25.00"}
    posted = await browser.post(f"{path}/top-up", data=form)
    assert posted.status_code == 403, posted.text


async def test_a_billing_viewer_reads_the_wallet_without_the_form_and_cannot_buy(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    _staff, tenant, _admin = await admin_tenant(factory)
    viewer = await factory.member(tenant["id"], "billing_viewer")
    await sign_in(browser, viewer.email)
    path = f"/console/tenants/{tenant['id']}/credits"
    shown = await browser.get(path)
    assert shown.status_code == 200 and "0.00 EUR" in shown.text and "Buy credit" not in shown.text
    posted = await browser.post(
        f"{path}/top-up", data={"csrf_token": csrf_of(shown), "top_up_key": "a" * 32, "amount": "25.00"}
    )
    assert posted.status_code == 403


async def test_another_tenants_credits_are_not_found_and_a_form_without_csrf_is_refused(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, mine, admin = await admin_tenant(factory)
    theirs = await factory.tenant(staff, name="Theirs")
    await grant(client, staff, theirs["id"], 777)
    await sign_in(browser, admin.email)
    shown = await browser.get(f"/console/tenants/{mine['id']}/credits")
    page = await browser.get(f"/console/tenants/{theirs['id']}/credits")
    assert page.status_code == 404 and "Theirs" not in page.text and "7.77" not in page.text
    form = {"csrf_token": csrf_of(shown), "top_up_key": key_of(shown), "amount": "25.00"}
    posted = await browser.post(f"/console/tenants/{theirs['id']}/credits/top-up", data=form)
    assert posted.status_code == 404
    without = await browser.post(
        f"/console/tenants/{mine['id']}/credits/top-up", data={k: v for k, v in form.items() if k != "csrf_token"}
    )
    assert without.status_code == 403 and "csrf_refused" in without.text
    assert (await wallet(client, staff, mine["id"]))["transactions"] == []
