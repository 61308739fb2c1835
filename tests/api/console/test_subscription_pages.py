"""The subscription page over HTTP: what a tenant's people see, a change reviewed (its proration) and then
confirmed, cancelling, resuming and coupons; who may do what, and forms sent twice or filled in badly."""

from __future__ import annotations

import html
import re
import uuid
from decimal import Decimal
from typing import Any

from httpx import AsyncClient, Response

from billing.money import display
from tests.api.billing._support import invoices, plan, subscribe
from tests.api.console.test_console import browser, csrf_of, sign_in
from tests.factories import Actor, Factory

__all__ = ["browser"]  # the fixture, shared
_HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
_BILLED_NOW = re.compile(r'<strong id="billed-now">([^<]+)</strong>')


def _code(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def hidden_fields(page: Response) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in _HIDDEN.findall(page.text)}


async def _catalogue(client: AsyncClient, staff: Actor) -> dict[str, str]:
    codes = {name: _code(name) for name in ("small", "big", "dollars")}
    await plan(
        client,
        staff.headers,
        codes["small"],
        [{"type": "flat", "amount_minor": 1000}, {"type": "per_seat", "unit_amount_minor": 300}],
    )
    await plan(
        client,
        staff.headers,
        codes["big"],
        [{"type": "flat", "amount_minor": 4900}, {"type": "per_seat", "unit_amount_minor": 800}],
    )
    await plan(client, staff.headers, codes["dollars"], [{"type": "flat", "amount_minor": 100}], currency="USD")
    return codes


async def _subscribed(
    client: AsyncClient, factory: Factory, seats: int = 2, name: str = "Acme", **tenant_fields: Any
) -> tuple[Actor, dict[str, Any], dict[str, str], dict[str, Any]]:
    """Staff, a tenant on the small plan (EUR) with `seats`, the catalogue's codes and the subscription."""
    staff = await factory.staff()
    codes = await _catalogue(client, staff)
    tenant = await factory.tenant(staff, name=name, **tenant_fields)
    subscription = await subscribe(client, staff.headers, tenant["id"], codes["small"], seats=seats)
    return staff, tenant, codes, subscription


async def _subscription(client: AsyncClient, staff: Actor, subscription_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/subscriptions/{subscription_id}", headers=staff.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _review(browser: AsyncClient, base: str, plan_code: str, seats: Any) -> Response:
    form = await browser.get(base)
    return await browser.post(
        f"{base}/change", data={"csrf_token": csrf_of(form), "plan_code": plan_code, "seats": str(seats)}
    )


async def test_a_tenant_admin_sees_the_live_subscription_and_the_forms_to_manage_it(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    _, tenant, codes, subscription = await _subscribed(client, factory, seats=3)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    overview = await browser.get(f"/console/tenants/{tenant['id']}")
    assert f'href="{base}">Subscription</a>' in overview.text  # the tenant's nav links here

    shown = await browser.get(base)
    assert shown.status_code == 200, shown.text
    text = shown.text
    assert f"{codes['small'].title()} ({codes['small']}, version 1)" in text
    assert "10.00 EUR a month + 3.00 EUR a seat a month" in text
    assert "<dt>Seats</dt><dd>3</dd>" in text and "status-active" in text and "It renews" in text
    assert subscription["current_period_end"][:10] in text
    for form in ("/subscription/change", "/subscription/cancel", "/subscription/coupon"):
        assert f'action="{base.removesuffix("/subscription")}{form}"' in text, form
    # Plans in the tenant's currency only, the current one chosen.
    assert f'value="{codes["small"]}" selected' in text and f'value="{codes["big"]}"' in text
    assert codes["dollars"] not in text


async def test_an_upgrade_shows_the_proration_the_invoice_then_bills_and_a_second_confirm_changes_nothing(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, codes, subscription = await _subscribed(client, factory, tax_rate_bps=2000)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    before = await _subscription(client, staff, subscription["id"])

    review = await _review(browser, base, codes["big"], 3)
    assert review.status_code == 200, review.text
    assert "Confirm the change" in review.text and "It takes effect now" in review.text
    billed_now = _BILLED_NOW.search(review.text)
    assert billed_now is not None, review.text
    # Reviewing changed nothing.
    assert await _subscription(client, staff, subscription["id"]) == before
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1

    confirm = hidden_fields(review)
    assert confirm["subscription_id"] == subscription["id"] and confirm["plan_code"] == codes["big"]
    done = await browser.post(f"{base}/change/confirm", data=confirm)
    assert (done.status_code, done.headers["location"]) == (303, f"{base}?done=changed"), done.text
    changed = await _subscription(client, staff, subscription["id"])
    assert (changed["plan_code"], changed["seats"]) == (codes["big"], 3)
    [change] = [each for each in await invoices(client, staff.headers, tenant["id"]) if each["kind"] == "change"]
    assert html.unescape(billed_now.group(1)) == display(change["total_minor"], "EUR")
    assert change["total_minor"] > 0 and change["tax_minor"] > 0
    after = await browser.get(done.headers["location"])
    assert "Your subscription was changed." in after.text and f"({codes['big']}, version 1)" in after.text

    # The confirmation sent again (a double click, the back button): nothing more is changed or billed.
    again = await browser.post(f"{base}/change/confirm", data=confirm)
    assert (again.status_code, again.headers["location"]) == (303, f"{base}?done=stale")
    assert await _subscription(client, staff, subscription["id"]) == changed
    assert len(await invoices(client, staff.headers, tenant["id"])) == 2
    assert "nothing more was changed" in (await browser.get(again.headers["location"])).text


async def test_a_seat_change_keeps_the_subscriptions_own_plan_version(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, codes, subscription = await _subscribed(client, factory)
    # A dearer version of the plan since: the subscription keeps its own price when only seats change.
    await plan(
        client,
        staff.headers,
        codes["small"],
        [{"type": "flat", "amount_minor": 2000}, {"type": "per_seat", "unit_amount_minor": 600}],
    )
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    shown = await browser.get(base)
    assert "10.00 EUR a month + 3.00 EUR a seat a month (current)" in shown.text and "20.00 EUR" not in shown.text

    review = await _review(browser, base, codes["small"], 4)
    assert review.status_code == 200 and "billed-now" in review.text
    done = await browser.post(f"{base}/change/confirm", data=hidden_fields(review))
    assert done.headers["location"] == f"{base}?done=changed"
    changed = await _subscription(client, staff, subscription["id"])
    assert (changed["plan_version"], changed["seats"]) == (1, 4)
    [change] = [each for each in await invoices(client, staff.headers, tenant["id"]) if each["kind"] == "change"]
    prices = {Decimal(line["unit_amount_minor"]) for line in change["lines"] if line["charge_kind"] == "proration"}
    assert Decimal(300) in prices and prices <= {Decimal(300), Decimal(1000)}  # version 1's, not version 2's
    assert _BILLED_NOW.search(review.text).group(1) == display(change["total_minor"], "EUR")  # type: ignore[union-attr]


async def test_a_confirmation_whose_amount_no_longer_holds_is_shown_again_not_applied(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, codes, subscription = await _subscribed(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    confirm = hidden_fields(await _review(browser, base, codes["big"], 3))
    # As if the preview had said something else (the day turned meanwhile): shown again, with a 409.
    moved = await browser.post(f"{base}/change/confirm", data={**confirm, "preview": "0" * 32})
    assert moved.status_code == 409 and "has changed since you reviewed it" in moved.text
    assert (await _subscription(client, staff, subscription["id"]))["plan_code"] == codes["small"]
    # Its own new confirmation goes through.
    done = await browser.post(f"{base}/change/confirm", data=hidden_fields(moved))
    assert done.status_code == 303 and done.headers["location"].endswith("?done=changed")


async def test_a_downgrade_for_the_periods_end_says_so_and_is_scheduled(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, codes, subscription = await _subscribed(client, factory, seats=5)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    end = subscription["current_period_end"][:10]

    review = await _review(browser, base, codes["small"], 2)
    assert review.status_code == 200, review.text
    assert f"This downgrade is scheduled for the end of the current period, on {end}." in review.text
    assert "Nothing is billed or credited now" in review.text and "billed-now" not in review.text
    done = await browser.post(f"{base}/change/confirm", data=hidden_fields(review))
    assert done.headers["location"] == f"{base}?done=scheduled"
    scheduled = await _subscription(client, staff, subscription["id"])
    assert (scheduled["seats"], scheduled["pending_seats"]) == (5, 2)
    shown = await browser.get(done.headers["location"])
    assert "The change is scheduled" in shown.text and f"with 2 seats on {end}" in shown.text

    # Asking for what it has now drops the scheduled change, after a confirmation that says so.
    review = await _review(browser, base, codes["small"], 5)
    assert "This drops the change scheduled" in review.text
    done = await browser.post(f"{base}/change/confirm", data=hidden_fields(review))
    assert done.headers["location"] == f"{base}?done=unscheduled"
    assert (await _subscription(client, staff, subscription["id"]))["pending_seats"] is None
    # And asking again for exactly that is refused next to the form: there is nothing to change.
    same = await _review(browser, base, codes["small"], 5)
    assert same.status_code == 400 and "That is the plan and seat count you have" in same.text


async def test_a_member_or_a_billing_viewer_cannot_change_the_subscription(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, codes, subscription = await _subscribed(client, factory)
    before = await _subscription(client, staff, subscription["id"])
    base = f"/console/tenants/{tenant['id']}/subscription"

    viewer = await factory.member(tenant["id"], "billing_viewer")
    await sign_in(browser, viewer.email)
    shown = await browser.get(base)
    assert shown.status_code == 200 and "<dt>Seats</dt><dd>2</dd>" in shown.text
    assert "<form" in shown.text  # the sign-out form only
    for absent in ("/subscription/change", "/subscription/cancel", "/subscription/coupon", "Review the change"):
        assert absent not in shown.text, absent
    token = csrf_of(shown)
    posts: list[tuple[str, dict[str, str]]] = [
        ("/change", {"plan_code": codes["big"], "seats": "3"}),
        ("/change/confirm", {"plan_code": codes["big"], "seats": "3", "subscription_id": subscription["id"]}),
        ("/cancel", {"when": "now", "confirm": "yes"}),
        ("/resume", {}),
        ("/coupon", {"coupon_code": "anything"}),
    ]
    for path, data in posts:
        refused = await browser.post(base + path, data={"csrf_token": token, **data})
        assert refused.status_code == 403 and "forbidden_for_role" in refused.text, (path, refused.status_code)

    member = await factory.member(tenant["id"], "tenant_member")
    await browser.post("/console/signout", data={"csrf_token": token})
    await sign_in(browser, member.email)
    assert (await browser.get(base)).status_code == 403
    token = csrf_of(await browser.get(f"/console/tenants/{tenant['id']}/api-keys"))
    for path, data in posts:
        assert (await browser.post(base + path, data={"csrf_token": token, **data})).status_code == 403, path
    assert await _subscription(client, staff, subscription["id"]) == before


async def test_another_tenants_subscription_is_not_found(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, mine, codes, _ = await _subscribed(client, factory, name="Mine")
    theirs = await factory.tenant(staff, name="Theirs")
    their_subscription = await subscribe(client, staff.headers, theirs["id"], codes["small"])
    admin = await factory.member(mine["id"])
    await sign_in(browser, admin.email)
    token = csrf_of(await browser.get(f"/console/tenants/{mine['id']}/subscription"))
    theirs_base = f"/console/tenants/{theirs['id']}/subscription"
    page = await browser.get(theirs_base)
    assert page.status_code == 404 and "Theirs" not in page.text
    for path, data in (
        ("/change", {"plan_code": codes["big"], "seats": "3"}),
        ("/cancel", {"when": "now", "confirm": "yes"}),
        ("/coupon", {"coupon_code": "anything"}),
    ):
        refused = await browser.post(theirs_base + path, data={"csrf_token": token, **data})
        assert refused.status_code == 404, path
    # Their subscription's id in a confirmation under my tenant is no way to it either.
    mine_base = f"/console/tenants/{mine['id']}/subscription"
    confirm = hidden_fields(await _review(browser, mine_base, codes["big"], 3))
    stale = await browser.post(
        f"{mine_base}/change/confirm", data={**confirm, "subscription_id": their_subscription["id"]}
    )
    assert stale.headers["location"].endswith("?done=stale")
    assert (await _subscription(client, staff, their_subscription["id"]))["plan_code"] == codes["small"]


async def test_a_bad_seat_count_or_plan_re_renders_the_form_with_a_400(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, codes, subscription = await _subscribed(client, factory)
    before = await _subscription(client, staff, subscription["id"])
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    for seats in (0, -1, 10**12, "abc", "", "1.5", " ", "٣", "9" * 5000):
        page = await _review(browser, base, codes["big"], seats)
        assert page.status_code == 400, (seats, page.status_code)
        assert "Enter a number of seats from 1 to 1,000,000." in page.text, seats
        assert 'id="seats"' in page.text and 'aria-invalid="true"' in page.text  # the form, again
        assert "9" * 17 not in page.text  # what is echoed back is bounded
    for plan_code in (codes["dollars"], "nope", "x" * 5000, ""):
        page = await _review(browser, base, plan_code, 2)
        assert page.status_code == 400 and "Choose one of the plans offered." in page.text, plan_code
    assert await _subscription(client, staff, subscription["id"]) == before


async def test_coupons_redeem_once_and_an_invalid_code_shows_its_error(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, codes, subscription = await _subscribed(client, factory)
    launch, elsewhere = _code("launch"), _code("elsewhere")
    for code, extra in ((launch, {}), (elsewhere, {"plan_codes": [codes["big"]]})):
        body = {"code": code, "name": f"{code} offer", "duration": "forever", "percent_off_bps": 1500, **extra}
        assert (await client.post("/v1/coupons", json=body, headers=staff.headers)).status_code == 201
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    token = csrf_of(await browser.get(base))

    unknown = await browser.post(f"{base}/coupon", data={"csrf_token": token, "coupon_code": "no-such-code"})
    assert unknown.status_code == 404
    assert "No coupon has this code (coupon_not_found)." in unknown.text and 'value="no-such-code"' in unknown.text
    other_plan = await browser.post(f"{base}/coupon", data={"csrf_token": token, "coupon_code": elsewhere})
    assert other_plan.status_code == 409 and "(coupon_plan_mismatch)" in other_plan.text
    empty = await browser.post(f"{base}/coupon", data={"csrf_token": token, "coupon_code": "  "})
    assert empty.status_code == 400 and "Enter a coupon code" in empty.text

    # Typed in capitals: coupon codes are lowercase.
    redeemed = await browser.post(f"{base}/coupon", data={"csrf_token": token, "coupon_code": launch.upper()})
    assert (redeemed.status_code, redeemed.headers["location"]) == (303, f"{base}?done=redeemed")
    again = await browser.post(f"{base}/coupon", data={"csrf_token": token, "coupon_code": launch})
    assert again.headers["location"] == f"{base}?done=redeemed"  # a repeat: no error, nothing more
    listed = await client.get(f"/v1/subscriptions/{subscription['id']}/discounts", headers=staff.headers)
    assert [each["coupon_code"] for each in listed.json()["items"]] == [launch]
    shown = await browser.get(redeemed.headers["location"])
    assert "The coupon applies to your subscription." in shown.text and "15.00 % off" in shown.text


async def test_cancel_at_the_periods_end_resume_and_cancel_now_each_safe_to_repeat(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff, tenant, _, subscription = await _subscribed(client, factory)
    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    base = f"/console/tenants/{tenant['id']}/subscription"
    token = csrf_of(await browser.get(base))
    end = subscription["current_period_end"][:10]

    unconfirmed = await browser.post(f"{base}/cancel", data={"csrf_token": token, "when": "period_end"})
    assert unconfirmed.status_code == 400 and "Tick the box to confirm" in unconfirmed.text
    assert not (await _subscription(client, staff, subscription["id"]))["cancel_at_period_end"]
    nowhen = await browser.post(f"{base}/cancel", data={"csrf_token": token, "when": "tomorrow", "confirm": "yes"})
    assert nowhen.status_code == 400 and "Choose when the subscription ends." in nowhen.text

    at_end = {"csrf_token": token, "when": "period_end", "confirm": "yes"}
    for _ in range(2):
        done = await browser.post(f"{base}/cancel", data=at_end)
        assert done.headers["location"] == f"{base}?done=cancel_scheduled"
    assert (await _subscription(client, staff, subscription["id"]))["cancel_at_period_end"]
    shown = await browser.get(done.headers["location"])
    assert f"The subscription ends on {end}" in shown.text and "Resume the subscription" in shown.text
    assert 'value="period_end"' not in shown.text  # only "now" is left to choose

    resumed = await browser.post(f"{base}/resume", data={"csrf_token": token})
    assert resumed.headers["location"] == f"{base}?done=resumed"
    assert (await browser.post(f"{base}/resume", data={"csrf_token": token})).headers["location"] == base
    assert not (await _subscription(client, staff, subscription["id"]))["cancel_at_period_end"]

    now = {"csrf_token": token, "when": "now", "confirm": "yes"}
    canceled = await browser.post(f"{base}/cancel", data=now)
    assert canceled.headers["location"] == f"{base}?done=canceled"
    assert (await _subscription(client, staff, subscription["id"]))["status"] == "canceled"
    assert (await browser.post(f"{base}/cancel", data=now)).headers["location"] == base
    gone = await browser.get(canceled.headers["location"])
    assert "Your subscription was canceled." in gone.text and "has no live subscription" in gone.text
    assert len(await invoices(client, staff.headers, tenant["id"])) == 1  # credited, not billed again
