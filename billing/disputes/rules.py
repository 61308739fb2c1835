"""Card disputes: what a Stripe dispute object says, read defensively, and how a dispute's status may move. Pure.

A dispute is `open` from the first event that tells of it (`charge.dispute.created`, or `funds_withdrawn`, or a
`closed` that arrives first) and moves once, forward, to `won` or `lost` (`charge.dispute.closed`). Stripe's
`warning_closed` (an inquiry closed with nothing withdrawn), `prevented` and `charge_refunded` (the charge was
refunded instead: the refund is its own event) close it like a win: nothing is lost to the dispute. An inquiry
(`warning_*`) withdraws nothing until Stripe says it does (`withdraws`).

Every field of the object is checked before anything is written: the signature proves Stripe sent it, but a
malformed or hostile object (a negative or huge amount, an unknown currency, an id that is not a string) is
refused here (`InvalidDisputeEvent`) and the event is recorded and ignored, never a 500 that Stripe would retry.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from billing.errors import InvalidDisputeEvent, UnknownCurrency
from billing.limits import MAX_AMOUNT_MINOR
from billing.money import exponent
from billing.payments.stripe_amounts import from_stripe

Status = Literal["open", "won", "lost"]
Outcome = Literal["won", "lost"]
STATUSES: tuple[Status, ...] = ("open", "won", "lost")

# Events that tell of a dispute (and open it when it is new), and the one that decides it.
OPENING_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.funds_withdrawn"})
CLOSING_EVENT = "charge.dispute.closed"
EVENTS = OPENING_EVENTS | {CLOSING_EVENT}

_OUTCOMES: dict[str, Outcome] = {
    "won": "won",
    "warning_closed": "won",
    "prevented": "won",
    "charge_refunded": "won",
    "lost": "lost",
}
# Stripe's inquiries: the card issuer asks before it disputes, and no money is withdrawn (`warning_closed`: it
# closed with nothing withdrawn). Any other status (or a `funds_withdrawn` event) tells of money taken.
INQUIRY_STATUSES = frozenset({"warning_needs_response", "warning_under_review", "warning_closed"})
FUNDS_WITHDRAWN_EVENT = "charge.dispute.funds_withdrawn"
_STRIPE_ID = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_REASON = re.compile(r"^[a-z_]{1,64}$")
# Stripe's `created` of a dispute is trusted only between these (seconds since the epoch: 2000 and 2100).
_EARLIEST, _LATEST = 946_684_800, 4_102_444_800


@dataclass(frozen=True, slots=True)
class DisputeFacts:
    """A Stripe dispute object, checked, in ISO minor units. `fee_minor` is what Stripe charged for it and
    `fee_returned_minor` what it gave back of that (both in `fee_currency`, 0 when the object lists no balance
    transactions); `opened_at` is Stripe's `created` (None when absent or absurd)."""

    stripe_id: str
    payment_intent_id: str
    charge_id: str | None
    amount_minor: int
    currency: str
    fee_minor: int
    fee_returned_minor: int
    fee_currency: str
    reason: str
    stripe_status: str
    opened_at: datetime | None
    notes: tuple[str, ...] = ()  # what was left out (an unreadable fee): logged, not fatal


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _stripe_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _STRIPE_ID.match(value):
        raise InvalidDisputeEvent(f"the dispute's {what} is not a Stripe id", reason=what)
    return value


def _currency(value: Any) -> tuple[str, int]:
    """An upper-case ISO code the platform knows and its exponent."""
    code = value.upper() if isinstance(value, str) and len(value) == 3 else ""
    try:
        return code, exponent(code)
    except UnknownCurrency:
        raise InvalidDisputeEvent(f"{value!r} is not a supported currency", reason="currency") from None


def _fees(transactions: Any) -> tuple[int, int, str | None, tuple[str, ...]]:
    """(charged, returned, currency, notes) from the dispute's balance transactions: a withdrawal carries
    Stripe's fee (positive), a reinstatement may give it back (negative). Only transactions in the first one's
    currency count; anything unreadable leaves the fee out (noted), never the dispute."""
    if not isinstance(transactions, list):
        return 0, 0, None, ()
    charged = returned = 0
    currency: str | None = None
    places = 0
    notes: list[str] = []
    for item in transactions:
        if not isinstance(item, dict):
            continue  # an unexpanded id: nothing to read
        fee = _whole(item.get("fee"))
        if fee is None or fee == 0:
            continue
        try:
            code, item_places = _currency(item.get("currency"))
        except InvalidDisputeEvent:
            notes.append("fee_currency")
            continue
        if currency is None:
            currency, places = code, item_places
        elif code != currency:
            notes.append("fee_in_two_currencies")
            continue
        amount = from_stripe(abs(fee), code, places)
        if fee > 0:
            charged += amount
        else:
            returned += amount
    if charged > MAX_AMOUNT_MINOR:
        return 0, 0, None, (*notes, "fee_amount")
    return charged, min(returned, charged), currency, tuple(notes)


def dispute_facts(obj: Any) -> DisputeFacts:
    """The dispute object of a `charge.dispute.*` event, checked; `InvalidDisputeEvent` names what is wrong."""
    if not isinstance(obj, dict):
        raise InvalidDisputeEvent("the event carries no dispute object", reason="object")
    stripe_id = _stripe_id(obj.get("id"), "id")
    intent = _stripe_id(obj.get("payment_intent"), "payment_intent")
    charge = obj.get("charge")
    charge_id = _stripe_id(charge, "charge") if charge is not None else None
    currency, places = _currency(obj.get("currency"))
    amount = _whole(obj.get("amount"))
    minor = from_stripe(amount, currency, places) if amount is not None and amount > 0 else 0
    if not 0 < minor <= MAX_AMOUNT_MINOR:
        raise InvalidDisputeEvent(
            f"the dispute's amount {obj.get('amount')!r} is not a positive amount", reason="amount"
        )
    fee, fee_returned, fee_currency, notes = _fees(obj.get("balance_transactions"))
    reason = obj.get("reason")
    created = _whole(obj.get("created"))
    status = obj.get("status")
    return DisputeFacts(
        stripe_id=stripe_id,
        payment_intent_id=intent,
        charge_id=charge_id,
        amount_minor=minor,
        currency=currency,
        fee_minor=fee,
        fee_returned_minor=fee_returned,
        fee_currency=fee_currency or currency,
        reason=reason if isinstance(reason, str) and _REASON.match(reason) else "unrecognized",
        stripe_status=status if isinstance(status, str) and _REASON.match(status) else "unrecognized",
        opened_at=datetime.fromtimestamp(created, UTC)
        if created is not None and _EARLIEST <= created <= _LATEST
        else None,
        notes=notes,
    )


def check_payment(facts: DisputeFacts, payment_currency: str, payment_minor: int) -> None:
    """A dispute is of the payment's charge: in its currency and never for more than was charged."""
    if facts.currency != payment_currency:
        raise InvalidDisputeEvent(
            f"the dispute is in {facts.currency}, the payment in {payment_currency}", reason="currency"
        )
    if facts.amount_minor > payment_minor:
        raise InvalidDisputeEvent(
            f"the dispute's {facts.amount_minor} is more than the {payment_minor} charged", reason="amount"
        )


def outcome_of(stripe_status: str) -> Outcome | None:
    """What a closed dispute's Stripe status means here; None for a status that decides nothing."""
    return _OUTCOMES.get(stripe_status)


def withdraws(event_type: str, stripe_status: str) -> bool:
    """Whether the event tells that Stripe took the disputed amount from the platform's balance: an inquiry
    (a `warning_*` status) took nothing, unless the event is `funds_withdrawn` itself."""
    return event_type == FUNDS_WITHDRAWN_EVENT or stripe_status not in INQUIRY_STATUSES


def next_status(current: Status, outcome: Outcome) -> Status | None:
    """Only forward: an open dispute closes once; a closed one keeps its first decision (None: no move)."""
    return outcome if current == "open" else None


def opened_at(facts: DisputeFacts, now: datetime) -> datetime:
    """When the dispute opened: Stripe's time, never after now (the row's close must not precede it)."""
    return min(facts.opened_at, now) if facts.opened_at is not None else now
