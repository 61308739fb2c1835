"""Plugin adoption for staff: a month's figures from the history of installs and trials, across tenants."""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx
from controlplane.core.errors import StaffOnly
from plugins_registry import adoption, repository
from plugins_registry.adoption import Adoption
from tenants import service as tenants


async def plugin_adoption(actor: Principal, month: str | None = None) -> Adoption:
    """The month's plugin figures (`plugins_registry.adoption`); `month` is `YYYY-MM`, the current month by
    default (ending now). Platform staff only, for now.

    Everything per plugin is read from the append-only history (`plugin_install_events`), so a month's figures
    are recomputed the same at any later time (a step recorded late is still placed at the time it took
    effect: a trial's end the expiry job records some minutes after it). The exception is the active tenants,
    the adoption rate's denominator (and the tenants counted above it): tenants keep only their current status,
    so these are the tenants active now that were created before the month's end. For a past month this leaves
    out a tenant suspended or erased since, and counts one suspended then but active again now."""
    if not actor.is_staff:
        raise StaffOnly()
    now = datetime.now(UTC)
    first = adoption.parse_month(month) if month is not None else now.date().replace(day=1)
    span = adoption.window(first, now)
    async with system_tx(SystemReason.ANALYTICS):
        plugins = await repository.plugins_known_before(span.end)
        installed = await repository.installed_before(span.end)
        steps = await repository.steps_between(span.start, span.end)
        active = await tenants.active_tenants_created_before(span.end)
    return adoption.adoption(
        span,
        plugins=[(row["id"], row["slug"]) for row in plugins],
        installed=[(row["tenant_id"], row["plugin_id"]) for row in installed],
        steps={(row["plugin_id"], row["kind"]): int(row["n"]) for row in steps},
        active_tenants=active,
    )
