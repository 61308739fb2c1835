"""A tenant's MRR (billing.analytics.mrr): a yearly price's twelfth is exact, so a tie rounds up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing.analytics.mrr import Billed, Discount, tenant_mrr
from billing.subscriptions.states import Status
from tests.unit.billing.builders import flat, make_plan, per_seat

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def forever(position: int, *, percent_off_bps: int | None = None, amount_off_minor: int | None = None) -> Discount:
    return Discount(
        position=position,
        duration="forever",
        percent_off_bps=percent_off_bps,
        amount_off_minor=amount_off_minor,
        currency="EUR" if amount_off_minor is not None else None,
        plan_codes=None,
        created_at=NOW,
        ended_at=None,
    )


@pytest.mark.parametrize(
    ("yearly_minor", "discounts", "expected"),
    [
        # 1,240.24 a year is 10335.333… a month; less 25 %, 7751.5 exactly: half up, 7752.
        (124024, [forever(1, percent_off_bps=2500)], 7752),
        # 1.24 a year less 0.22 a year is 1.02 a year: 8.5 a month, 9.
        (124, [forever(1, amount_off_minor=22)], 9),
        # 1,450.00 a year less 25 % is 1,087.50 a year: 9062.5 a month, 9063.
        (145000, [forever(1, percent_off_bps=2500)], 9063),
        # Not a tie: 1,000.00 a year less 25 % is 6250 a month; 1,000.00 a year alone 8333.333…, 8333.
        (100000, [forever(1, percent_off_bps=2500)], 6250),
        (100000, [], 8333),
    ],
)
def test_a_yearly_price_after_its_discounts_rounds_once_exactly(
    yearly_minor: int, discounts: list[Discount], expected: int
) -> None:
    plan = make_plan("yearly", [flat(yearly_minor)], currency="EUR", interval="year")
    assert tenant_mrr(Billed(Status.ACTIVE, plan, 1), [], discounts, NOW) == expected


def test_fractions_of_a_minor_unit_are_summed_before_the_one_rounding() -> None:
    # 1.5 flat + 0.5 a seat: one seat is 2.0 a month (each rounded alone, 2 + 1 would make 3); a trial counts 0.
    plan = make_plan("seats", [flat("1.5"), per_seat("0.5")], currency="EUR")
    assert tenant_mrr(Billed(Status.ACTIVE, plan, 1), [], [], NOW) == 2
    assert tenant_mrr(Billed(Status.TRIALING, plan, 1), [], [], NOW) == 0
