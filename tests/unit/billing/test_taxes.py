"""Several tax rates: each rate on the subtotal, rounded once; a tenant's list of rates; credit notes split
per rate in the invoice's proportion. Worked examples by hand, then properties."""

from __future__ import annotations

import uuid
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.errors import (
    BillingInvalid,
    DuplicateTaxRate,
    InvalidTaxRate,
    TaxRateArchived,
    TaxRatesTooHigh,
    TooManyTaxRates,
    UnknownTaxRate,
)
from billing.invoices.totals import TaxAmount, TaxRate, single_rate, totals
from billing.ledger.rules import REVENUE, TAX_PAYABLE, credit_parts, invoice_reduced, receivable
from billing.limits import MAX_TAX_BPS
from billing.money import round_minor
from billing.taxes.rules import MAX_RATES_PER_TENANT, CatalogueRate, check_rate_bps, tenant_rates

PROPERTY = settings(max_examples=500, deadline=None)
TENANT = uuid.UUID(int=7)
STATE = TaxRate("state", "State tax", 825)
CITY = TaxRate("city", "City tax", 250)


def _amounts(figures: tuple[TaxAmount, ...]) -> list[int]:
    return [tax.amount_minor for tax in figures]


# -- two rates on one invoice, each rounded once (worked by hand) --------------------------------------


@pytest.mark.parametrize(
    ("currency", "subtotal", "state", "city"),
    [
        # USD $10.15: 1015 x 8.25 % = 83.7375 -> 84; 1015 x 2.5 % = 25.375 -> 25; tax 109, total 1124.
        ("USD", 1015, 84, 25),
        # USD $10.10: 83.325 -> 83; 25.25 -> 25; tax 108 (one rate of 10.75 % would give 108.575 -> 109).
        ("USD", 1010, 83, 25),
        # JPY 12 345 yen: 1018.4625 -> 1018; 308.625 -> 309; tax 1327, total 13 672.
        ("JPY", 12345, 1018, 309),
        # KWD 1.000: 82.5 fils -> 83 (half up); 25 fils exactly; tax 108, total 1108.
        ("KWD", 1000, 83, 25),
    ],
)
def test_two_rates_each_rounded_once_by_hand(currency: str, subtotal: int, state: int, city: int) -> None:
    figures = totals([subtotal], [STATE, CITY])
    assert figures.taxes == (
        TaxAmount("state", "State tax", 825, state),
        TaxAmount("city", "City tax", 250, city),
    )
    assert figures.tax_minor == state + city
    assert figures.total_minor == subtotal + state + city
    assert figures.tax_rate_bps == 1075


def test_per_rate_rounding_differs_from_one_combined_rate() -> None:
    # 1010 at 10.75 % is 108.575 -> 109, but 83 + 25 = 108: each rate is rounded on its own, as the invoice shows.
    assert totals([1010], [TaxRate("both", "Both", 1075)]).tax_minor == 109
    assert totals([1010], [STATE, CITY]).tax_minor == 108


def test_a_single_rate_of_old_is_a_list_of_one() -> None:
    assert single_rate(2000) == [TaxRate("tax", "Tax", 2000)]
    assert single_rate(0) == []
    assert totals([1000], single_rate(2000)).taxes == (TaxAmount("tax", "Tax", 2000, 200),)


# -- a credit note split across two rates (worked by hand) ----------------------------------------------


def test_two_successive_credit_notes_split_per_rate_in_usd() -> None:
    # Invoice: 1015 + 84 + 25 = 1124. First note 562 (half): revenue against all tax, 562 x [1015, 109] / 1124 =
    # [507.513, 54.487] -> [508, 54] (the unit left to the larger remainder); then the 54 of tax between the
    # rates, 54 x [84, 25] / 109 = [41.615, 12.385] -> [42, 12].
    assert credit_parts(562, 1015, [84, 25]) == (508, (42, 12))
    # Second note 562 (the rest): all of [1015, 84, 25] less what the first took -> [507, 42, 13].
    assert credit_parts(562, 1015, [84, 25], already_reduced=562) == (507, (42, 13))
    # Together exactly what the invoice booked per rate.
    assert (508 + 507, 42 + 42, 12 + 13) == (1015, 84, 25)


def test_credit_note_split_in_jpy() -> None:
    # Invoice: 12 345 + 1018 + 309 = 13 672. A note of 1000: 1000 x [12 345, 1327] / 13 672 = [902.940, 97.060]
    # -> [903, 97]; 97 x [1018, 309] / 1327 = [74.413, 22.587] -> [74, 23].
    assert credit_parts(1000, 12345, [1018, 309]) == (903, (74, 23))
    # The rest (12 672): [12 345 - 903, 1018 - 74, 309 - 23].
    assert credit_parts(12672, 12345, [1018, 309], already_reduced=1000) == (11442, (944, 286))


def test_credit_note_split_in_kwd_ties_go_to_the_earlier_rate() -> None:
    # Invoice: 1000 + 83 + 25 = 1108 fils. Half (554): 554 x [1000, 108] / 1108 = [500, 54] exactly; 54 x [83, 25]
    # / 108 = [41.5, 12.5]: a tie, the earlier (state) takes the unit: [42, 12]. The second half: [500, (41, 13)].
    assert credit_parts(554, 1000, [83, 25]) == (500, (42, 12))
    assert credit_parts(554, 1000, [83, 25], already_reduced=554) == (500, (41, 13))


def test_the_ledger_takes_back_the_sum_of_the_notes_rates() -> None:
    postings = invoice_reduced(TENANT, "USD", 562, 1015, [84, 25])
    net = {posting.account: posting.amount_minor for posting in postings}
    assert net == {receivable(TENANT): -562, REVENUE: 508, TAX_PAYABLE: 42 + 12}
    # A single rate as an int, as before.
    assert invoice_reduced(TENANT, "USD", 562, 1015, 109) == invoice_reduced(TENANT, "USD", 562, 1015, [109])


def test_a_later_note_never_takes_back_a_negative_part() -> None:
    # One split by largest remainders over three parts or more is not monotone in the amount (the Alabama
    # paradox), so a later note could take back -1 of a rate; the chain of splits in two never does. Four notes
    # of 1 on a 4-unit invoice taxed at three rates: each takes back one unit of one part, each part once.
    parts = [credit_parts(1, 1, [1, 1, 1], already_reduced=done) for done in range(4)]
    assert all(revenue >= 0 and min(taxes) >= 0 for revenue, taxes in parts)
    assert [sum(column) for column in zip(*[(revenue, *taxes) for revenue, taxes in parts], strict=True)] == [1] * 4


def test_credit_parts_refuses_a_negative_rate_or_no_positive_total() -> None:
    with pytest.raises(BillingInvalid):
        credit_parts(1, 100, [10, -1])
    with pytest.raises(BillingInvalid):
        credit_parts(1, 0, [0, 0])


# -- a tenant's list ------------------------------------------------------------------------------------

CATALOGUE = {
    "state": CatalogueRate("state", "State tax", 825),
    "city": CatalogueRate("city", "City tax", 250),
    "old": CatalogueRate("old", "Old tax", 500, archived=True),
    "half": CatalogueRate("half", "Half", 5000),
    "most": CatalogueRate("most", "Most", 9800),
    **{f"r{i}": CatalogueRate(f"r{i}", f"Rate {i}", 10) for i in range(12)},
}


def test_a_list_keeps_its_order() -> None:
    rates = tenant_rates(["city", "state"], CATALOGUE)
    assert [rate.code for rate in rates] == ["city", "state"]
    assert rates[0] == TaxRate("city", "City tax", 250)
    assert tenant_rates([], CATALOGUE) == []


@pytest.mark.parametrize(
    ("codes", "error"),
    [
        ([f"r{i}" for i in range(MAX_RATES_PER_TENANT + 1)], TooManyTaxRates),
        (["state", "city", "state"], DuplicateTaxRate),
        (["state", "nowhere"], UnknownTaxRate),
        (["state", "old"], TaxRateArchived),
        (["half", "most"], TaxRatesTooHigh),  # 5000 + 9800 > 10 000
    ],
)
def test_a_list_is_refused_with_its_own_error(codes: list[str], error: type[Exception]) -> None:
    with pytest.raises(error):
        tenant_rates(codes, CATALOGUE)


def test_an_archived_rate_the_tenant_already_has_may_stay() -> None:
    assert [rate.code for rate in tenant_rates(["old", "city"], CATALOGUE, kept=["city", "old"])] == ["old", "city"]


def test_ten_rates_and_exactly_one_hundred_percent_are_allowed() -> None:
    assert len(tenant_rates([f"r{i}" for i in range(MAX_RATES_PER_TENANT)], CATALOGUE)) == MAX_RATES_PER_TENANT
    full = {"a": CatalogueRate("a", "A", 5000), "b": CatalogueRate("b", "B", 5000)}
    assert sum(rate.rate_bps for rate in tenant_rates(["a", "b"], full)) == MAX_TAX_BPS


@pytest.mark.parametrize("rate_bps", [-1, MAX_TAX_BPS + 1, True])
def test_a_rate_beyond_its_bounds_is_refused(rate_bps: int) -> None:
    with pytest.raises(InvalidTaxRate):
        check_rate_bps(rate_bps)


# -- properties -----------------------------------------------------------------------------------------

rate_lists = st.lists(st.integers(min_value=0, max_value=2000), min_size=0, max_size=MAX_RATES_PER_TENANT).filter(
    lambda bps: sum(bps) <= MAX_TAX_BPS
)


@PROPERTY
@given(st.integers(min_value=-(10**12), max_value=10**12), rate_lists)
def test_the_taxes_sum_to_the_tax_and_each_is_its_rate_rounded_once(subtotal: int, bps: list[int]) -> None:
    rates = [TaxRate(f"r{i}", f"Rate {i}", rate) for i, rate in enumerate(bps)]
    figures = totals([subtotal], rates)
    assert sum(_amounts(figures.taxes)) == figures.tax_minor
    assert figures.total_minor == subtotal + figures.tax_minor
    assert [tax.code for tax in figures.taxes] == [rate.code for rate in rates]
    for tax, rate in zip(figures.taxes, bps, strict=True):
        assert tax.amount_minor == round_minor(Decimal(subtotal) * rate / 10_000)
        assert abs(Fraction(tax.amount_minor) - Fraction(subtotal * rate, 10_000)) <= Fraction(1, 2)


@st.composite
def invoices_and_notes(draw: st.DrawFn) -> tuple[int, list[int], list[int]]:
    """An invoice with a positive total taxed at several rates, and credit notes summing to at most its total."""
    subtotal = draw(st.integers(min_value=1, max_value=10**12))
    bps = draw(rate_lists)
    taxes = _amounts(totals([subtotal], [TaxRate(f"r{i}", "R", rate) for i, rate in enumerate(bps)]).taxes)
    total = subtotal + sum(taxes)
    cuts = draw(st.lists(st.integers(min_value=0, max_value=1000), min_size=1, max_size=8))
    full = draw(st.booleans())
    target = total if full else draw(st.integers(min_value=0, max_value=total))
    points = sorted({target * cut // 1000 for cut in cuts} | {0, target})
    return subtotal, taxes, [high - low for low, high in pairwise(points)]


@PROPERTY
@given(invoices_and_notes())
def test_credit_notes_never_take_back_more_of_any_rate_than_the_invoice_booked(
    figures: tuple[int, list[int], list[int]],
) -> None:
    subtotal, taxes, notes = figures
    total = subtotal + sum(taxes)
    credited = 0
    revenue_so_far = 0
    per_rate_so_far = [0] * len(taxes)
    for note in notes:
        revenue_part, tax_parts = credit_parts(note, subtotal, taxes, credited)
        assert revenue_part + sum(tax_parts) == note
        assert revenue_part >= 0 and all(part >= 0 for part in tax_parts)
        # The ledger's tax payable is the sum of the note's rates.
        net = {p.account: p.amount_minor for p in invoice_reduced(TENANT, "EUR", note, subtotal, taxes, credited)}
        assert net.get(TAX_PAYABLE, 0) == sum(tax_parts)
        assert net.get(REVENUE, 0) == revenue_part
        credited += note
        revenue_so_far += revenue_part
        per_rate_so_far = [so_far + part for so_far, part in zip(per_rate_so_far, tax_parts, strict=True)]
        assert revenue_so_far <= subtotal
        assert all(so_far <= booked for so_far, booked in zip(per_rate_so_far, taxes, strict=True))
        # Everything credited so far is near its exact share: revenue within a unit, the i-th rate (each split
        # in two from what the rates before it left) within 1 + i/2 units.
        assert abs(revenue_so_far - Fraction(credited * subtotal, total)) < 1
        for i, (so_far, booked) in enumerate(zip(per_rate_so_far, taxes, strict=True)):
            assert abs(so_far - Fraction(credited * booked, total)) <= 1 + Fraction(i, 2)
    if credited == total:
        assert (revenue_so_far, per_rate_so_far) == (subtotal, taxes)


@PROPERTY
@given(st.lists(st.sampled_from(sorted(CATALOGUE)), max_size=12))
def test_any_list_accepted_is_within_the_bounds(codes: list[str]) -> None:
    try:
        rates = tenant_rates(codes, CATALOGUE)
    except (TooManyTaxRates, DuplicateTaxRate, UnknownTaxRate, TaxRateArchived, TaxRatesTooHigh):
        return
    assert len(rates) <= MAX_RATES_PER_TENANT
    assert len({rate.code for rate in rates}) == len(rates)
    assert sum(rate.rate_bps for rate in rates) <= MAX_TAX_BPS
    assert not any(CATALOGUE[rate.code].archived for rate in rates)
