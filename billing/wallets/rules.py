"""Prepaid credits: which lots pay an invoice, how much, and what a top-up may be. Pure.

A tenant's wallet in one currency is a set of lots, each `purchased` (funded by a paid `credit_purchase`
invoice) or `granted` (free credit from staff), with what remains of it and an optional expiry.

Applying credits to a finalized invoice (`credits_to_apply`):
- only lots not yet expired count; granted credit goes first (it costs the tenant nothing, so it is used
  before what the tenant paid for), then purchased; oldest first within each (created_at, then id);
- never more than the wallet's balance, never more than the invoice's amount due;
- the chargeable-remainder rule: what stays due must be an amount Stripe can charge in the currency
  (`billing.payments.stripe_amounts.chargeable_step`), so unless the credit pays the whole amount due, the
  credit is rounded *down* until the rest due is a multiple of the step. Credit is never rounded up: it
  would spend more of the wallet than the tenant holds;
- the minimum-charge rule: what stays due is never below Stripe's minimum charge
  (`billing.payments.stripe_amounts.minimum_charge`): 1 cent left on 34.10 EUR would be refused, and the
  tenant dunned into a suspension over it. Less credit is applied so the minimum stays due, or none.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from billing.errors import InvalidTopUp
from billing.limits import MAX_AMOUNT_MINOR

Source = Literal["purchased", "granted"]
# Granted credit first, then purchased.
SOURCE_ORDER: dict[str, int] = {"granted": 0, "purchased": 1}
# The longest a top-up may stay unexpired: ten years (what a date in the far future would mean anyway).
MAX_EXPIRY_DAYS = 3_660
# The soonest a top-up may expire: a lot that expires as it is written would be worth nothing.
MIN_VALIDITY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Lot:
    id: uuid.UUID
    source: Source
    remaining_minor: int
    created_at: datetime
    expires_at: datetime | None = None

    def usable(self, now: datetime) -> bool:
        return self.remaining_minor > 0 and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class Draw:
    """Credit taken from one lot for one invoice."""

    lot_id: uuid.UUID
    source: Source
    amount_minor: int


@dataclass(frozen=True, slots=True)
class Balance:
    purchased_minor: int
    granted_minor: int

    @property
    def balance_minor(self) -> int:
        return self.purchased_minor + self.granted_minor


def balance(lots: Iterable[Lot], now: datetime) -> Balance:
    """What the wallet holds now: the unexpired remaining of each source."""
    usable = [lot for lot in lots if lot.usable(now)]
    return Balance(
        purchased_minor=sum((lot.remaining_minor for lot in usable if lot.source == "purchased"), 0),
        granted_minor=sum((lot.remaining_minor for lot in usable if lot.source == "granted"), 0),
    )


def application_order(lots: Iterable[Lot], now: datetime) -> list[Lot]:
    """The usable lots in the order they pay: granted before purchased, oldest first within each."""
    return sorted(
        (lot for lot in lots if lot.usable(now)),
        key=lambda lot: (SOURCE_ORDER[lot.source], lot.created_at, lot.id),
    )


def creditable(due_minor: int, balance_minor: int, step: int, minimum_minor: int = 0) -> int:
    """How much credit an invoice with `due_minor` due takes from a wallet holding `balance_minor`: at most
    both, and (the chargeable-remainder rule) either all of the amount due or an amount that leaves a
    multiple of `step` due, and no less than `minimum_minor` (Stripe's minimum charge) due: credit that would
    leave less is lowered until the minimum (rounded up to the step) stays due, or none is applied when the
    amount due is itself below that. 0 when nothing is due or the wallet is empty."""
    if due_minor <= 0 or balance_minor <= 0:
        return 0
    if balance_minor >= due_minor:
        return due_minor
    applied = max(balance_minor - (balance_minor - due_minor) % step, 0)
    if 0 < due_minor - applied < minimum_minor:
        least_due = -(-minimum_minor // step) * step
        applied = max(due_minor - least_due, 0)
    return applied


def draw(lots: Sequence[Lot], amount_minor: int) -> list[Draw]:
    """`amount_minor` taken from `lots` in their order, each lot giving at most what remains of it."""
    draws = []
    left = amount_minor
    for lot in lots:
        if left <= 0:
            break
        take = min(lot.remaining_minor, left)
        if take > 0:
            draws.append(Draw(lot.id, lot.source, take))
            left -= take
    if left > 0:
        raise ValueError("the lots hold less than the amount drawn")
    return draws


def credits_to_apply(
    lots: Iterable[Lot], due_minor: int, step: int, now: datetime, minimum_minor: int = 0
) -> list[Draw]:
    """The draws that pay (part of) an invoice's amount due from the wallet (see the module's rules)."""
    ordered = application_order(lots, now)
    amount = creditable(due_minor, sum((lot.remaining_minor for lot in ordered), 0), step, minimum_minor)
    return draw(ordered, amount)


def refundable_credit(paid_left_minor: int, lot_remaining_minor: int) -> int:
    """What a refund of a credit purchase may give back: what is still unapplied of its lot, and never more
    than the payment still holds."""
    return max(min(paid_left_minor, lot_remaining_minor), 0)


def funded_expiry(created_at: datetime, expires_at: datetime, funded_at: datetime) -> datetime:
    """The expiry of a purchased lot funded at `funded_at`: the one asked for, unless it has passed by then (the
    payment's answer came late); then the validity asked for (`expires_at - created_at`) from the funding."""
    if expires_at > funded_at:
        return expires_at
    return funded_at + (expires_at - created_at)


def check_top_up(amount_minor: int, expires_at: datetime | None, now: datetime) -> None:
    """A top-up is a positive amount within billing's bounds, expiring (if at all) at least MIN_VALIDITY from
    now and within MAX_EXPIRY_DAYS."""
    if not 1 <= amount_minor <= MAX_AMOUNT_MINOR:
        raise InvalidTopUp(f"a top-up is 1 to {MAX_AMOUNT_MINOR} minor units")
    if expires_at is not None:
        if expires_at < now + MIN_VALIDITY:
            raise InvalidTopUp(f"expires_at must be at least {MIN_VALIDITY.seconds // 60} minute(s) from now")
        if (expires_at - now).days > MAX_EXPIRY_DAYS:
            raise InvalidTopUp(f"expires_at must be within {MAX_EXPIRY_DAYS} days")
