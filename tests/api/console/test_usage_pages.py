"""A tenant's usage in the console: the period's totals and a day-by-day chart, for those who read billing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from httpx import AsyncClient

from controlplane.console.usage_pages import _days
from tests.api._helpers import create_api_key
from tests.api.billing._support import event, metric, plan, post_usage, subscribe
from tests.api.console.test_console import browser, sign_in
from tests.factories import Factory

__all__ = ["browser"]  # the fixture, shared


async def test_the_usage_page_shows_the_totals_and_each_day(
    browser: AsyncClient, client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    code = f"calls_{uuid.uuid4().hex[:6]}"
    await metric(client, staff.headers, code)
    plan_code = f"metered-{uuid.uuid4().hex[:6]}"
    charges = [{"type": "metered", "metric_code": code, "model": "per_unit", "unit_amount_minor": "5"}]
    await plan(client, staff.headers, plan_code, charges)
    await subscribe(client, staff.headers, tenant["id"], plan_code)
    _, key = await create_api_key(client, staff.headers, tenant["id"], role="tenant_member")
    sent = await post_usage(client, {"Authorization": f"Bearer {key}"}, [event(f"e{n}", code) for n in range(3)])
    assert sent.status_code == 200, sent.text

    admin = await factory.member(tenant["id"])
    await sign_in(browser, admin.email)
    usage = await browser.get(f"/console/tenants/{tenant['id']}/usage")
    assert usage.status_code == 200
    assert f'<th scope="row">{code}</th><td>count</td><td class="num">3</td>' in usage.text
    assert "0.15 EUR" in usage.text  # 3 calls at 0.05
    assert f'aria-labelledby="usage-{code}-title"' in usage.text and "<title>" in usage.text
    today = datetime.now(UTC).strftime("%m-%d")
    assert f'<th scope="row">{today}</th><td class="num">3</td>' in usage.text

    member = await factory.member(tenant["id"], "tenant_member")
    async with AsyncClient(transport=browser._transport, base_url="http://testserver") as as_member:
        await sign_in(as_member, member.email)
        assert (await as_member.get(f"/console/tenants/{tenant['id']}/usage")).status_code == 403


def test_the_days_of_a_window_start_at_its_first_utc_midnight() -> None:
    days = _days(datetime(2026, 12, 3, 15, 0, tzinfo=UTC), datetime(2026, 12, 5, 0, 0, 1, tzinfo=UTC))
    assert [day.day for day in days] == [3, 4, 5]
    assert len(_days(datetime(2026, 12, 3, 15, tzinfo=UTC), datetime(2026, 12, 3, 16, tzinfo=UTC))) == 1
