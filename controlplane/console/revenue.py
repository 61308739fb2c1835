"""Revenue month by month as the console shows it, to staff (every tenant) and to a reseller's admins (the
reseller's tenants): the range and currency asked for, the months from `billing.analytics`, which decides who
may read what, and their charts. `templates/_revenue_months.html` draws the form, the charts and the table."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from billing.analytics import service as analytics
from billing.analytics.report import MonthFigures
from billing.money import display
from controlplane.console.charts import BarChart, bar_chart
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import InvalidInput

MONTHS_SHOWN = 12  # when no range is asked for: the last twelve months, this one included


@dataclass(frozen=True, slots=True)
class RevenueMonths:
    first: str  # YYYY-MM, as the form shows them
    last: str
    currency: str
    currencies: tuple[str, ...]  # those the form offers
    months: list[MonthFigures]
    charts: list[BarChart]


def _months_back(count: int, now: datetime) -> tuple[str, str]:
    index = now.year * 12 + now.month - 1 - (count - 1)
    return f"{index // 12:04d}-{index % 12 + 1:02d}", f"{now.year:04d}-{now.month:02d}"


def _amount(minor: int | Decimal, *, currency: str) -> str:
    return display(int(minor), currency)


def _charts(months: list[MonthFigures], currency: str) -> list[BarChart]:
    labels = [month.month for month in months]
    amount = functools.partial(_amount, currency=currency)
    return [
        bar_chart("mrr", f"MRR at each month's end, {currency}", labels, [m.mrr_end_minor for m in months], amount),
        bar_chart(
            "net-new",
            f"Net new MRR each month (new, expansion and reactivation less contraction and churn), {currency}",
            labels,
            [
                m.new_minor + m.expansion_minor + m.reactivation_minor - m.contraction_minor - m.churned_minor
                for m in months
            ],
            amount,
        ),
    ]


async def revenue_months(
    principal: Principal,
    first: str | None,
    last: str | None,
    currency: str | None,
    currencies: set[str],
    reseller_id: uuid.UUID | None = None,
) -> RevenueMonths:
    """The months from `first` to `last` (the last twelve when not given) in `currency` (one of `currencies`,
    the first when not given); `reseller_id`: only that reseller's tenants. Bad months, a range too long or in
    the future, and a reader who may not see these figures are the analytics' domain errors."""
    default_first, default_last = _months_back(MONTHS_SHOWN, datetime.now(UTC))
    first, last = first or default_first, last or default_last
    offered = tuple(sorted(currencies)) or ("EUR",)
    currency = currency or offered[0]
    if currency not in offered:
        raise InvalidInput(f"currency: choose one of {', '.join(offered)}")
    months = await analytics.revenue(
        principal, analytics.month_of(first, "from"), analytics.month_of(last, "to"), currency, reseller_id
    )
    return RevenueMonths(first, last, currency, offered, months, _charts(months, currency))
