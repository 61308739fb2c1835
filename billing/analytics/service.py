"""The revenue report over HTTP's inputs: who may read which tenants' figures, and the history they come from.

Platform staff read every tenant's figures, or one reseller's; a reseller's members read the figures of the
tenants their reseller owns (today's ownership), nobody else's; everyone else is refused.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from billing.analytics.report import Change, Month, MonthFigures, revenue_report
from billing.errors import InvalidMonth, InvalidReportRange
from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, fetch, partner_tx, system_tx
from controlplane.core.errors import StaffOnly
from tenants.errors import ForbiddenForRole
from tenants.service import ensure_partner_access, ensure_partner_kind

MAX_MONTHS = 36


def month_of(text: str, name: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError:
        raise InvalidMonth(f"{name}: {text!r} is not a month (YYYY-MM)") from None


async def revenue(
    actor: Principal, first: Month, last: Month, currency: str, reseller_id: uuid.UUID | None
) -> list[MonthFigures]:
    now = datetime.now(UTC)
    if last < first:
        raise InvalidReportRange("`to` is before `from`")
    if last > Month.of(now):
        raise InvalidReportRange("`to` is after the current month")
    if (last.year - first.year) * 12 + last.month - first.month >= MAX_MONTHS:
        raise InvalidReportRange(f"at most {MAX_MONTHS} months per request")
    if reseller_id is not None:
        await ensure_partner_kind(reseller_id, "reseller")
        async with partner_tx(reseller_id):
            if await ensure_partner_access(actor, reseller_id) not in ("staff", "reseller_admin"):
                raise ForbiddenForRole("the reseller's admins read its tenants' figures")
    elif not actor.is_staff:
        raise StaffOnly("only platform staff read every tenant's figures; a reseller's members pass `reseller_id`")
    # Every tenant's history in the currency: a cross-tenant read of amounts and causes, nothing personal.
    async with system_tx(SystemReason.ANALYTICS):
        rows = await fetch(
            "select tenant_id, effective_at, mrr_minor, cause from mrr_changes where currency = {} "
            "and effective_at <= {} "
            "and ({}::uuid is null or tenant_id in (select id from tenants where reseller_id = {})) "
            "order by effective_at, id",
            currency,
            now,
            reseller_id,
            reseller_id,
        )
    changes = (Change(row["tenant_id"], row["effective_at"], row["mrr_minor"], row["cause"]) for row in rows)
    return revenue_report(changes, first, last, now)
