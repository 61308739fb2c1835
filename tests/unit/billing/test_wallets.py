"""Prepaid credits: worked examples by hand (USD, JPY, KWD) and properties of the pure rules and journals."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import InvalidTopUp
from billing.ledger import rules as ledger
from billing.payments.stripe_amounts import chargeable_step
from billing.wallets.rules import (
    Lot,
    balance,
    check_top_up,
    creditable,
    credits_to_apply,
    draw,
    refundable_credit,
)
from tests.unit.billing.builders import utc

PROPERTY = settings(max_examples=200, deadline=None)
TENANT = uuid.UUID("00000000-0000-0000-0000-0000000000aa")
JAN = utc(2026, 1, 1)
FEB = utc(2026, 2, 1)
MAR = utc(2026, 3, 1)


def lot(source: str, remaining: int, created: datetime, expires: datetime | None = None) -> Lot:
    return Lot(uuid.uuid4(), source, remaining, created, expires)  # type: ignore[arg-type]


def taken(draws: list[Any]) -> list[tuple[str, int]]:
    return [(item.source, item.amount_minor) for item in draws]


def net(postings: list[ledger.Posting]) -> dict[str, int]:
    return {p.account: p.amount_minor for p in postings}


LIABILITY = ledger.credit_liability(TENANT)
RECEIVABLE = ledger.receivable(TENANT)


# -- worked examples --------------------------------------------------------------------------------------------


def test_usd_credit_applied_across_two_invoices() -> None:
    """$100.00 bought; the first invoice ($60.00 due) is paid by credit, the second ($75.00) takes the $40.00
    left and $35.00 stays due."""
    bought = lot("purchased", 100_00, JAN)
    first = credits_to_apply([bought], 60_00, 1, FEB)
    assert taken(first) == [("purchased", 60_00)]
    left = Lot(bought.id, "purchased", 100_00 - 60_00, JAN)
    second = credits_to_apply([left], 75_00, 1, FEB)
    assert taken(second) == [("purchased", 40_00)]
    assert 75_00 - 40_00 == 35_00
    assert net(ledger.credits_applied(TENANT, "USD", 40_00, 0)) == {LIABILITY: 40_00, RECEIVABLE: -40_00}


def test_jpy_granted_credit_goes_before_older_purchased_credit() -> None:
    """¥5,000 bought in January, ¥1,000 granted in February; a ¥3,000 invoice takes the ¥1,000 granted first,
    then ¥2,000 of the purchase: a promotion expense of ¥1,000, the liability down ¥2,000."""
    bought = lot("purchased", 5_000, JAN)
    granted = lot("granted", 1_000, FEB)
    draws = credits_to_apply([bought, granted], 3_000, chargeable_step("JPY", 0), MAR)
    assert taken(draws) == [("granted", 1_000), ("purchased", 2_000)]
    assert net(ledger.credits_applied(TENANT, "JPY", 2_000, 1_000)) == {
        LIABILITY: 2_000,
        ledger.PROMOTION_EXPENSE: 1_000,
        RECEIVABLE: -3_000,
    }


def test_jpy_credits_given_back_reverse_what_they_paid() -> None:
    """A cancellation gives ¥325 of the ¥1,000 granted and ¥2,000 purchased back (purchased, applied last,
    first): the liability is up ¥325 again and the receivable too (a credit note then takes it off)."""
    assert net(ledger.credits_restored(TENANT, "JPY", 325, 0)) == {LIABILITY: -325, RECEIVABLE: 325}
    assert net(ledger.credits_restored(TENANT, "JPY", 2_000, 500)) == {
        LIABILITY: -2_000,
        ledger.PROMOTION_EXPENSE: -500,
        RECEIVABLE: 2_500,
    }


@given(st.integers(0, 10**12), st.integers(0, 10**12))
def test_credits_given_back_and_applied_net_to_nothing(purchased: int, granted: int) -> None:
    both = ledger.credits_applied(TENANT, "EUR", purchased, granted) + ledger.credits_restored(
        TENANT, "EUR", purchased, granted
    )
    assert sum(p.amount_minor for p in ledger.credits_restored(TENANT, "EUR", purchased, granted)) == 0
    totals: dict[str, int] = defaultdict(int)
    for posting in both:
        totals[posting.account] += posting.amount_minor
    assert set(totals.values()) <= {0}


def test_kwd_credit_leaves_a_chargeable_amount_due() -> None:
    """KWD is charged in fils ending in 0 (step 10). 12.345 KWD of credit on 20.000 KWD due: 12.340 applies,
    7.660 stays due (12.345 would leave 7.655, which Stripe cannot charge); the 0.005 stays in the wallet."""
    step = chargeable_step("KWD", 3)
    assert step == 10
    draws = credits_to_apply([lot("purchased", 12_345, JAN)], 20_000, step, FEB)
    assert taken(draws) == [("purchased", 12_340)]
    assert (20_000 - 12_340) % step == 0
    # Credit covering the whole amount due pays it all, whatever the step.
    assert creditable(7_660, 12_345 - 12_340 + 10_000, step) == 7_660


def test_usd_expired_credit_applies_no_more_and_releases_the_liability() -> None:
    """$25.00 bought, expiring 1 March: on 2 March it pays nothing; its expiry moves the $25.00 from the
    liability to breakage revenue. Granted credit expiring books nothing (it was never booked)."""
    bought = lot("purchased", 25_00, JAN, MAR)
    assert credits_to_apply([bought], 10_00, 1, MAR + timedelta(days=1)) == []
    assert balance([bought], MAR + timedelta(days=1)).balance_minor == 0
    assert balance([bought], FEB).purchased_minor == 25_00
    assert net(ledger.credit_expired(TENANT, "USD", "purchased", 25_00)) == {
        LIABILITY: 25_00,
        ledger.CREDIT_BREAKAGE: -25_00,
    }
    assert ledger.credit_expired(TENANT, "USD", "granted", 25_00) == []


def test_refund_of_a_credit_purchase_is_limited_to_the_unapplied_part() -> None:
    """¥10,000 bought, ¥7,000 applied: ¥3,000 can go back. KWD: 5.000 bought, 4.990 applied: 0.010 back.
    The refund's journals take the amount off the liability and out of cash."""
    assert refundable_credit(10_000, 3_000) == 3_000
    assert refundable_credit(5_000, 10) == 10
    assert refundable_credit(2_000, 3_000) == 2_000  # never more than the payment still holds
    note = ledger.invoice_reduced(TENANT, "JPY", 3_000, 10_000, 0, revenue_account=LIABILITY)
    money_back = ledger.refund_paid(TENANT, "JPY", 3_000)
    totals: dict[str, int] = defaultdict(int)
    for posting in note + money_back:
        totals[posting.account] += posting.amount_minor
    assert dict(totals) == {RECEIVABLE: 0, LIABILITY: 3_000, ledger.CASH: -3_000}


def test_a_credit_purchase_books_a_liability_not_revenue() -> None:
    assert net(ledger.credit_purchase_issued(TENANT, "USD", 50_00)) == {RECEIVABLE: 50_00, LIABILITY: -50_00}


def test_top_up_bounds() -> None:
    check_top_up(1, None, JAN)
    check_top_up(10**15, JAN + timedelta(days=1), JAN)
    for amount, expires in [(0, None), (10**15 + 1, None), (1, JAN), (1, JAN - timedelta(days=1))]:
        with pytest.raises(InvalidTopUp):
            check_top_up(amount, expires, JAN)
    with pytest.raises(InvalidTopUp):
        check_top_up(1, JAN + timedelta(days=4_000), JAN)


def test_oldest_first_within_a_source() -> None:
    older = lot("purchased", 300, JAN)
    newer = lot("purchased", 300, FEB)
    assert [d.lot_id for d in credits_to_apply([newer, older], 400, 1, MAR)] == [older.id, newer.id]


# -- properties -------------------------------------------------------------------------------------------------

sources = st.sampled_from(["purchased", "granted"])
lots_strategy = st.lists(
    st.builds(
        lambda source, remaining, day, expires: lot(
            source, remaining, JAN + timedelta(days=day), None if expires is None else JAN + timedelta(days=expires)
        ),
        sources,
        st.integers(0, 10**12),
        st.integers(0, 60),
        st.none() | st.integers(1, 90),
    ),
    max_size=8,
)
steps = st.sampled_from([1, 10, 100])


@PROPERTY
@given(lots_strategy, st.integers(-(10**6), 10**13), steps, st.integers(0, 120))
def test_credits_applied_never_exceed_the_balance_or_the_invoice(
    lots: list[Lot], due: int, step: int, day: int
) -> None:
    now = JAN + timedelta(days=day)
    draws = credits_to_apply(lots, due, step, now)
    applied = sum(item.amount_minor for item in draws)
    held = balance(lots, now).balance_minor
    assert 0 <= applied <= max(due, 0)
    assert applied <= held
    by_lot = {item.id: item for item in lots}
    for item in draws:
        assert 0 < item.amount_minor <= by_lot[item.lot_id].remaining_minor
        assert by_lot[item.lot_id].usable(now)
    if applied and applied < due:
        assert (due - applied) % step == 0  # what stays due is chargeable
    # Granted credit is used up before any purchased credit is touched.
    granted_left = sum(x.remaining_minor for x in lots if x.source == "granted" and x.usable(now)) - sum(
        d.amount_minor for d in draws if d.source == "granted"
    )
    if any(d.source == "purchased" for d in draws):
        assert granted_left == 0


@PROPERTY
@given(st.lists(st.integers(0, 10**9), max_size=6), st.integers(0, 10**10))
def test_draw_takes_exactly_the_amount_when_the_lots_hold_it(remainings: list[int], wanted: int) -> None:
    lots = [lot("granted", r, JAN + timedelta(days=i)) for i, r in enumerate(remainings)]
    if wanted > sum(remainings):
        with pytest.raises(ValueError):
            draw(lots, wanted)
        return
    assert sum(item.amount_minor for item in draw(lots, wanted)) == wanted


class WalletModel:
    """A tenant's wallet and its journals, moved only by the pure rules."""

    def __init__(self, currency: str, step: int) -> None:
        self.currency = currency
        self.step = step
        self.lots: dict[uuid.UUID, Lot] = {}
        self.purchase_paid: dict[uuid.UUID, int] = {}  # lot -> what its payment still holds
        self.purchase_amount: dict[uuid.UUID, int] = {}
        self.accounts: dict[str, int] = defaultdict(int)
        self.owed = 0  # what the tenant's invoices still say it owes
        self.day = 0

    @property
    def now(self) -> datetime:
        return JAN + timedelta(days=self.day)

    def post(self, postings: list[ledger.Posting]) -> None:
        assert sum(p.amount_minor for p in ledger.balanced(postings)) == 0
        for posting in postings:
            self.accounts[posting.account] += posting.amount_minor

    def top_up(self, amount: int, expires_in: int | None) -> None:
        expires = None if expires_in is None else self.now + timedelta(days=expires_in)
        new = Lot(uuid.uuid4(), "purchased", amount, self.now, expires)
        self.post(ledger.credit_purchase_issued(TENANT, self.currency, amount))
        self.post(ledger.payment_received(TENANT, self.currency, amount))
        self.lots[new.id] = new
        self.purchase_paid[new.id] = amount
        self.purchase_amount[new.id] = amount

    def grant(self, amount: int, expires_in: int | None) -> None:
        expires = None if expires_in is None else self.now + timedelta(days=expires_in)
        new = Lot(uuid.uuid4(), "granted", amount, self.now, expires)
        self.lots[new.id] = new

    def invoice(self, due: int) -> None:
        self.post(ledger.invoice_issued(TENANT, self.currency, due, 0))
        self.owed += due
        held = balance(self.lots.values(), self.now).balance_minor
        draws = credits_to_apply(list(self.lots.values()), due, self.step, self.now)
        applied = sum(item.amount_minor for item in draws)
        assert applied <= min(due, held)
        for item in draws:
            old = self.lots[item.lot_id]
            self.lots[item.lot_id] = Lot(
                old.id, old.source, old.remaining_minor - item.amount_minor, old.created_at, old.expires_at
            )
        purchased = sum(d.amount_minor for d in draws if d.source == "purchased")
        self.post(ledger.credits_applied(TENANT, self.currency, purchased, applied - purchased))
        self.owed -= applied

    def expire(self, days: int) -> None:
        self.day += days
        for old in list(self.lots.values()):
            if old.expires_at is not None and old.expires_at <= self.now and old.remaining_minor:
                self.post(ledger.credit_expired(TENANT, self.currency, old.source, old.remaining_minor))
                self.lots[old.id] = Lot(old.id, old.source, 0, old.created_at, old.expires_at)

    def refund(self, pick: int, amount: int) -> None:
        purchases = sorted(self.purchase_paid)
        if not purchases:
            return
        lot_id = purchases[pick % len(purchases)]
        old = self.lots[lot_id]
        wanted = min(amount, refundable_credit(self.purchase_paid[lot_id], old.remaining_minor))
        if wanted <= 0:
            return
        bought = self.purchase_amount[lot_id]
        # The refund's credit note takes it off the purchase (and the liability); the money leaves cash.
        already = bought - self.purchase_paid[lot_id]
        self.post(ledger.invoice_reduced(TENANT, self.currency, wanted, bought, 0, already, revenue_account=LIABILITY))
        self.post(ledger.refund_paid(TENANT, self.currency, wanted))
        self.purchase_paid[lot_id] -= wanted
        self.lots[lot_id] = Lot(old.id, old.source, old.remaining_minor - wanted, old.created_at, old.expires_at)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("top_up"), st.integers(1, 10**9), st.none() | st.integers(1, 60)),
        st.tuples(st.just("grant"), st.integers(1, 10**9), st.none() | st.integers(1, 60)),
        st.tuples(st.just("invoice"), st.integers(1, 2 * 10**9), st.none()),
        st.tuples(st.just("expire"), st.integers(0, 40), st.none()),
        st.tuples(st.just("refund"), st.integers(0, 10), st.integers(1, 10**9)),
    ),
    max_size=25,
)


@PROPERTY
@given(operations, st.sampled_from([("USD", 1), ("JPY", 1), ("KWD", 10)]))
def test_the_ledger_balances_after_any_sequence_of_wallet_movements(
    steps_taken: list[tuple[str, int, int | None]], currency_step: tuple[str, int]
) -> None:
    currency, step = currency_step
    model = WalletModel(currency, step)
    for name, first, second in steps_taken:
        if name == "top_up":
            model.top_up(first, second)
        elif name == "grant":
            model.grant(first, second)
        elif name == "invoice":
            model.invoice(first)
        elif name == "expire":
            model.expire(first)
        else:
            assert second is not None
            model.refund(first, second)
    # Every journal balanced, so the whole ledger does; and it agrees with the wallet and the invoices.
    assert sum(model.accounts.values()) == 0
    purchased_left = sum(x.remaining_minor for x in model.lots.values() if x.source == "purchased")
    assert -model.accounts[LIABILITY] == purchased_left
    assert model.accounts[RECEIVABLE] == model.owed
    assert all(x.remaining_minor >= 0 for x in model.lots.values())
