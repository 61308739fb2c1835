"""`GET /v1/analytics/plugins?month=YYYY-MM`: plugin adoption per month, from the install history, worked by hand.

The registry's clock is set to moments of September and October 2026 (`at`), so each step lands where the story
says; tenants are dated as created in August (before either month) unless a test says otherwise.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from httpx import AsyncClient

from plugins_registry import service
from plugins_registry.service import _installs
from tests.api._helpers import assert_problem
from tests.api.billing._support import plan, subscribe
from tests.api.plugins._support import install, plugin, publisher
from tests.conftest import connect_as_inspector
from tests.factories import Actor, Factory

AUGUST = datetime(2026, 8, 1, tzinfo=UTC)
OCTOBER_1 = datetime(2026, 10, 1, tzinfo=UTC)
URL = "/v1/analytics/plugins"


class _Clock:
    """The registry's `datetime`, whose `now` is whatever the test set last."""

    current = AUGUST

    @classmethod
    def now(cls, tz: Any = None) -> datetime:
        return cls.current


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Any:
    """`at(moment)`: installs and uninstalls from now on happen at `moment`."""
    clock = type("Clock", (_Clock,), {})
    monkeypatch.setattr(_installs, "datetime", clock)

    def set_time(moment: datetime) -> None:
        clock.current = moment

    return set_time


def day(month: int, number: int, hour: int = 12) -> datetime:
    return datetime(2026, month, number, hour, tzinfo=UTC)


async def _dated(stack_env: dict[str, str], tenant_id: str, created_at: datetime) -> None:
    """Test setup behind the API's back: the tenant was created at `created_at`."""
    inspector = await connect_as_inspector(stack_env)
    try:
        await inspector.execute("update tenants set created_at = $2 where id = $1", uuid.UUID(tenant_id), created_at)
    finally:
        await inspector.close()


async def _tenant(factory: Factory, stack_env: dict[str, str], staff: Actor, created_at: datetime = AUGUST) -> Any:
    tenant = await factory.tenant(staff)
    await _dated(stack_env, tenant["id"], created_at)
    return tenant["id"], await factory.member(tenant["id"])


async def _uninstall(client: AsyncClient, admin: Actor, tenant_id: str, slug: str) -> None:
    response = await client.delete(f"/v1/tenants/{tenant_id}/plugins/{slug}", headers=admin.headers)
    assert response.status_code == 204, response.text


async def _figures(client: AsyncClient, staff: Actor, month: str) -> dict[str, Any]:
    response = await client.get(URL, params={"month": month}, headers=staff.headers)
    assert response.status_code == 200, response.text
    return response.json()


def _by_slug(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["slug"]: row for row in body["plugins"]}


def _row(
    made: dict[str, Any], installed: int, installs: int, uninstalls: int, started: int = 0, converted: int = 0
) -> dict[str, Any]:
    return {
        "slug": made["slug"],
        "plugin_id": made["id"],
        "installed_tenants": installed,
        "installs": installs,
        "uninstalls": uninstalls,
        "trials_started": started,
        "trials_converted": converted,
    }


async def test_installs_uninstalls_and_a_reinstall_across_two_months(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], at: Any
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    reports = await plugin(client, staff.headers, pub["id"], slug="reports")
    charts = await plugin(client, staff.headers, pub["id"], slug="charts")
    t1, admin1 = await _tenant(factory, stack_env, staff)
    t2, admin2 = await _tenant(factory, stack_env, staff)
    t3, admin3 = await _tenant(factory, stack_env, staff)
    # Active, no plugins, created during October: counted in October only.
    await _tenant(factory, stack_env, staff, created_at=day(10, 10))

    at(day(9, 5))
    await install(client, admin1.headers, t1, "reports")
    at(day(9, 10))
    await install(client, admin2.headers, t2, "reports")
    at(day(9, 12))
    await install(client, admin1.headers, t1, "charts")
    at(day(9, 20))
    await _uninstall(client, admin2, t2, "reports")
    at(day(9, 25))
    await install(client, admin2.headers, t2, "reports")  # the reinstall: an install of its own
    at(OCTOBER_1)  # 00:00 exactly belongs to October
    await _uninstall(client, admin1, t1, "charts")
    at(day(10, 15))
    await _uninstall(client, admin2, t2, "reports")
    at(day(10, 20))
    await install(client, admin3.headers, t3, "charts")

    september = await _figures(client, staff, "2026-09")
    # reports: t1 and t2 at the end; installs t1, t2, t2 again; t2's one uninstall. charts: t1 (its uninstall is
    # October's). Tenants with a plugin: t1, t2 of the 3 created before October: 2 / 3 = 0.66666… -> 0.6667.
    assert september == {
        "month": "2026-09",
        "adoption_rate": "0.6667",
        "tenants_with_plugins": 2,
        "active_tenants": 3,
        "plugins": [_row(charts, 1, 1, 0), _row(reports, 2, 3, 1)],
    }
    october = await _figures(client, staff, "2026-10")
    # reports: t1 left; t2 uninstalled. charts: t1 out at 00:00, t3 in. With a plugin: t1, t3 of 4: 0.5.
    assert october == {
        "month": "2026-10",
        "adoption_rate": "0.5000",
        "tenants_with_plugins": 2,
        "active_tenants": 4,
        "plugins": [_row(charts, 1, 1, 1), _row(reports, 1, 0, 1)],
    }
    # August: three tenants, no step yet; both plugins were published after it ends and had no history then.
    assert await _figures(client, staff, "2026-08") == {
        "month": "2026-08",
        "adoption_rate": "0.0000",
        "tenants_with_plugins": 0,
        "active_tenants": 3,
        "plugins": [],
    }
    # July: no tenant yet, so no rate.
    july = await _figures(client, staff, "2026-07")
    assert (july["adoption_rate"], july["active_tenants"]) == (None, 0)


async def test_a_closed_month_is_unchanged_by_later_installs_and_uninstalls(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], at: Any
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    reports = await plugin(client, staff.headers, pub["id"], slug="reports")
    t1, admin1 = await _tenant(factory, stack_env, staff)
    t2, admin2 = await _tenant(factory, stack_env, staff)
    at(day(9, 5))
    await install(client, admin1.headers, t1, "reports")
    before = await _figures(client, staff, "2026-09")
    assert before["plugins"] == [_row(reports, 1, 1, 0)]
    assert (before["tenants_with_plugins"], before["active_tenants"], before["adoption_rate"]) == (1, 2, "0.5000")

    at(day(10, 2))
    await install(client, admin2.headers, t2, "reports")
    await _uninstall(client, admin1, t1, "reports")
    at(day(10, 3))
    await install(client, admin1.headers, t1, "reports")
    await plugin(client, staff.headers, pub["id"], slug="published-later")
    assert await _figures(client, staff, "2026-09") == before
    october = await _figures(client, staff, "2026-10")
    assert _by_slug(october)["reports"] == _row(reports, 2, 2, 1)


async def test_a_reinstall_that_read_its_clock_before_the_uninstall_it_waited_on_is_still_installed(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], at: Any
) -> None:
    """Each request reads its time before it takes the install's locks: a reinstall that waited for an
    uninstall may carry the earlier time. The order the steps were written in decides what is installed."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    reports = await plugin(client, staff.headers, pub["id"], slug="reports")
    tenant_id, admin = await _tenant(factory, stack_env, staff)
    at(day(9, 5))
    await install(client, admin.headers, tenant_id, "reports")
    at(day(9, 20, hour=13))
    await _uninstall(client, admin, tenant_id, "reports")
    at(day(9, 20, hour=11))
    await install(client, admin.headers, tenant_id, "reports")

    assert _by_slug(await _figures(client, staff, "2026-09"))["reports"] == _row(reports, 1, 2, 1)


async def test_trials_started_in_a_month_and_converted_at_their_end(
    client: AsyncClient, factory: Factory, stack_env: dict[str, str], at: Any
) -> None:
    """A trial converts (or ends) when it ends, which is when it counts, whenever the expiry job gets to it."""
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    await plan(client, staff.headers, "pro", [{"type": "flat", "amount_minor": 3100}])
    pricing = {"model": "flat", "amount_minor": 900, "currency": "EUR", "trial_days": 1}
    paid = await plugin(client, staff.headers, pub["id"], slug="paid-reports", pricing=pricing)
    tenants = []
    for _ in range(3):
        tenant_id, admin = await _tenant(factory, stack_env, staff)
        # Subscribed now: its period runs past every moment below, so a trial that ends converts.
        await subscribe(client, staff.headers, tenant_id, "pro")
        tenants.append((tenant_id, admin))
    (t1, admin1), (t2, admin2), (t3, admin3) = tenants

    at(day(9, 10))
    assert (await install(client, admin1.headers, t1, "paid-reports"))["license"]["trial"] is True
    await install(client, admin2.headers, t2, "paid-reports")
    at(day(9, 11, hour=0))
    await _uninstall(client, admin2, t2, "paid-reports")  # its trial ends unconverted
    at(day(9, 30))
    await install(client, admin3.headers, t3, "paid-reports")  # its trial ends on 1 October, 12:00

    report = await service.expire_due(day(9, 12))
    assert (report.converted, report.expired) == (1, 0)  # t1's, at its end: 11 September, 12:00
    report = await service.expire_due(day(10, 2))
    assert (report.converted, report.expired) == (1, 0)  # t3's, at 1 October, 12:00

    september = _by_slug(await _figures(client, staff, "2026-09"))["paid-reports"]
    assert september == _row(paid, installed=2, installs=3, uninstalls=1, started=3, converted=1)
    october = _by_slug(await _figures(client, staff, "2026-10"))["paid-reports"]
    assert october == _row(paid, installed=2, installs=0, uninstalls=0, started=0, converted=1)


async def test_the_current_month_ends_now_and_counts_what_happened_so_far(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    reports = await plugin(client, staff.headers, pub["id"])
    tenants = [await factory.tenant(staff) for _ in range(3)]
    for tenant in tenants[:2]:
        admin = await factory.member(tenant["id"])
        await install(client, admin.headers, tenant["id"], reports["slug"])

    body = await _figures(client, staff, f"{datetime.now(UTC):%Y-%m}")
    # Two of three tenants: 0.66666… rounds half up to 0.6667.
    assert (body["tenants_with_plugins"], body["active_tenants"], body["adoption_rate"]) == (2, 3, "0.6667")
    assert body["plugins"] == [_row(reports, 2, 2, 0)]
    # Without a month: the current one.
    default = await client.get(URL, headers=staff.headers)
    assert default.status_code == 200, default.text
    assert default.json() == body


async def test_a_suspended_tenant_is_not_among_the_active_ones(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    pub = await publisher(client, staff.headers)
    reports = await plugin(client, staff.headers, pub["id"])
    tenant = await factory.tenant(staff)
    admin = await factory.member(tenant["id"])
    await install(client, admin.headers, tenant["id"], reports["slug"])
    await factory.tenant(staff)
    suspended = await client.post(f"/v1/tenants/{tenant['id']}/suspend", headers=staff.headers)
    assert suspended.status_code == 200, suspended.text

    body = await _figures(client, staff, f"{datetime.now(UTC):%Y-%m}")
    # Its plugin is still installed (the history says so), but it is not an active tenant: 0 of 1.
    assert (body["tenants_with_plugins"], body["active_tenants"], body["adoption_rate"]) == (0, 1, "0.0000")
    assert body["plugins"] == [_row(reports, 1, 1, 0)]


async def test_only_staff_read_the_analytics(client: AsyncClient, factory: Factory) -> None:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    for role in ("tenant_admin", "tenant_member"):
        member = await factory.member(tenant["id"], role)
        assert_problem(await client.get(URL, params={"month": "2026-09"}, headers=member.headers), 403, "staff_only")
    assert_problem(await client.get(URL, params={"month": "2026-09"}), 401)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-09", "2026-9", "2026-09-01", "September", ""])
async def test_a_malformed_month_is_a_validation_problem(client: AsyncClient, factory: Factory, month: str) -> None:
    staff = await factory.staff()
    assert_problem(await client.get(URL, params={"month": month}, headers=staff.headers), 400, "validation_error")


async def test_a_month_that_is_not_in_the_calendar_or_has_not_begun_is_refused(
    client: AsyncClient, factory: Factory
) -> None:
    staff = await factory.staff()
    assert_problem(await client.get(URL, params={"month": "0000-01"}, headers=staff.headers), 422, "invalid_month")
    following = (datetime.now(UTC).replace(day=1) + timedelta(days=32)).strftime("%Y-%m")
    for month in (following, "9999-12"):
        response = await client.get(URL, params={"month": month}, headers=staff.headers)
        assert_problem(response, 422, "month_in_future")
    # The first month of all is a month like any other: nothing in it.
    assert (await _figures(client, staff, "0001-01"))["plugins"] == []
