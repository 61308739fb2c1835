"""A tenant's MRR at an instant, from its subscription, add-ons and discounts. Pure.

MRR is the advance-billed recurring charges (the plan's flat and per-seat charges for its seats, and the
flat and per-seat charges of the add-ons live at that instant for their quantity), normalised to a month (a
yearly price / 12), after the `forever` and `repeating` discounts then in force, before tax. A trialing, paused
or canceled subscription counts 0, its add-ons too; `past_due` counts. Metered charges and one-off invoices are
not MRR.

Discounts apply as on an invoice (billing.discounts.rules): in redemption order, each on what the earlier ones
left; a percentage takes its share, an amount (per billing period) takes its monthly part, never more than is
left. One whose coupon names other plans, or whose amount is in another currency, takes nothing. The sum is kept
as an exact `Fraction` and rounded once, half up, to a minor unit: a `Decimal` twelfth is rounded already, so a
yearly price whose discounted month is a tie (1,450.00 a year less 25 % is 9062.5 a month) would round down.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction

from billing.addons.rules import Addon
from billing.catalogue.rules import Plan
from billing.subscriptions.states import Status

MRR_STATUSES = frozenset({Status.ACTIVE, Status.PAST_DUE})
RECURRING_DURATIONS = frozenset({"forever", "repeating"})


@dataclass(frozen=True, slots=True)
class Discount:
    """A discount of the subscription, as MRR needs it."""

    position: int
    duration: str
    percent_off_bps: int | None
    amount_off_minor: int | None
    currency: str | None
    plan_codes: tuple[str, ...] | None
    created_at: datetime
    ended_at: datetime | None

    def in_force_at(self, at: datetime) -> bool:
        return (
            self.duration in RECURRING_DURATIONS
            and self.created_at <= at
            and (self.ended_at is None or self.ended_at > at)
        )


@dataclass(frozen=True, slots=True)
class Billed:
    """What a tenant's live subscription bills: its status, plan and seats."""

    status: Status
    plan: Plan
    seats: int


def monthly(amount: Fraction, plan: Plan) -> Fraction:
    return amount / 12 if plan.interval == "year" else amount


def tenant_mrr(billed: Billed | None, addons: Sequence[Addon], discounts: Sequence[Discount], at: datetime) -> int:
    """The tenant's MRR at `at`, in minor units of its plan's currency."""
    if billed is None or billed.status not in MRR_STATUSES:
        return 0
    plan = billed.plan
    per_period = plan.recurring_amount(billed.seats)
    for addon in addons:
        if addon.live_at(at):
            per_period += addon.plan(plan.currency, plan.interval).recurring_amount(addon.quantity)
    left = monthly(Fraction(per_period), plan)
    for discount in sorted(discounts, key=lambda d: d.position):
        if not discount.in_force_at(at) or (discount.plan_codes is not None and plan.code not in discount.plan_codes):
            continue
        if discount.percent_off_bps is not None:
            left -= left * Fraction(discount.percent_off_bps, 10_000)
        elif discount.amount_off_minor is not None and discount.currency == plan.currency:
            left -= min(left, monthly(Fraction(discount.amount_off_minor), plan))
    # Half up: never negative, so the floor of one half more.
    return math.floor(left + Fraction(1, 2))
