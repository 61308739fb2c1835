"""The pure side of invoice documents: how figures are written, what a document says, which font a text needs."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.documents import layout
from billing.documents.scripts import Run, Script, drawable_runs, right_to_left, runs, visual_runs
from billing.money import CURRENCY_EXPONENTS, display

FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("minor", "currency", "written"),
    [
        (1234567, "JPY", "1,234,567 JPY"),
        (123456789, "USD", "1,234,567.89 USD"),
        (1234567, "KWD", "1,234.567 KWD"),
        (5, "USD", "0.05 USD"),
        (5, "KWD", "0.005 KWD"),
        (0, "EUR", "0.00 EUR"),
        (-250, "EUR", "-2.50 EUR"),
        (-1000, "JPY", "-1,000 JPY"),
        (10**15, "USD", "10,000,000,000,000.00 USD"),
    ],
)
def test_amounts_are_written_in_the_currencys_precision(minor: int, currency: str, written: str) -> None:
    assert display(minor, currency) == written


@given(st.integers(min_value=-(10**15), max_value=10**15), st.sampled_from(sorted(CURRENCY_EXPONENTS)))
def test_a_written_amount_reads_back_as_the_same_minor_units(minor: int, currency: str) -> None:
    number, code = display(minor, currency).split(" ")
    assert code == currency
    places = CURRENCY_EXPONENTS[currency]
    assert len(number.rpartition(".")[2]) == places if places else "." not in number
    assert Decimal(number.replace(",", "")).scaleb(places) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "written"),
    [
        (Decimal("12.5"), "EUR", "0.125 EUR"),  # half a cent a call: more places than the currency's, as needed
        (Decimal("1234"), "EUR", "12.34 EUR"),
        (Decimal("1234.000"), "EUR", "12.34 EUR"),
        (Decimal("0.5"), "JPY", "0.5 JPY"),
        (Decimal("1000"), "JPY", "1,000 JPY"),
    ],
)
def test_a_unit_price_keeps_its_fraction_of_a_minor_unit(minor: Decimal, currency: str, written: str) -> None:
    assert layout.format_unit_amount(minor, currency) == written


def test_quantities_rates_and_filenames() -> None:
    assert layout.format_quantity(Decimal("2.500000000000")) == "2.5"
    assert layout.format_quantity(Decimal("1E+3")) == "1,000"
    assert layout.format_quantity(Decimal("0.000001")) == "0.000001"
    assert [layout.format_rate(bps) for bps in (2000, 750, 1, 0)] == ["20%", "7.5%", "0.01%", "0%"]
    assert layout.safe_filename("ACME-000012") == "ACME-000012.pdf"
    assert layout.safe_filename('a"b/../c\r\n') == "a_b_.._c__.pdf"


def test_a_period_ending_at_midnight_shows_its_last_day() -> None:
    assert layout.format_period(FEB, MAR) == "2026-02-01 to 2026-02-28"
    assert layout.format_period(FEB, datetime(2026, 2, 15, 12, tzinfo=UTC)) == "2026-02-01 to 2026-02-15"
    one_off = datetime(2026, 2, 3, 10, 30, tzinfo=UTC)
    assert layout.format_period(one_off, one_off) == "2026-02-03"
    assert layout.format_period(FEB, datetime(2026, 2, 2, tzinfo=UTC)) == "2026-02-01"


def _invoice(number: str | None = "ACME-000012", discount: int = 0) -> layout.InvoiceFacts:
    line = layout.LineFacts("Pro", "flat", Decimal(1), Decimal(10000), 10000, FEB, MAR)
    carried = layout.LineFacts("Credit carried", "proration", Decimal(1), Decimal(-500), -500, FEB, FEB)
    taxes = (layout.TaxFigure("vat", "VAT", 2000, 1900),)
    return layout.InvoiceFacts(
        id="00000000-0000-4000-8000-000000000001",
        number=number,
        kind="cycle",
        currency="EUR",
        period_start=FEB,
        period_end=MAR,
        issued_at=MAR if number else None,
        subtotal_minor=9500,
        discount_minor=discount,
        taxes=taxes,
        total_minor=11400,
        credits_applied_minor=400,
        amount_due_minor=11000,
        lines=(line, carried),
    )


PLATFORM = layout.Party("Platform Ltd", ("1 Road",))
TENANT = layout.Party("Acme", ("Main St 1",))


def test_an_invoice_document_lists_lines_taxes_and_totals_in_order() -> None:
    document = layout.invoice_document(_invoice(discount=-100), PLATFORM, TENANT)
    assert (document.title, document.number, document.filename, document.mark) == (
        "Invoice",
        "ACME-000012",
        "ACME-000012.pdf",
        None,
    )
    assert document.created_at == MAR  # its issue, never the clock
    assert [(row.description, row.detail, row.amount) for row in document.rows] == [
        ("Pro", "Flat fee", "100.00 EUR"),
        ("Credit carried", "Proration · 2026-02-01", "-5.00 EUR"),  # its own period differs from the invoice's
    ]
    assert [(total.label, total.value) for total in document.totals] == [
        ("Subtotal", "95.00 EUR"),
        ("Discounts (in the subtotal)", "-1.00 EUR"),
        ("VAT (vat, 20%)", "19.00 EUR"),
        ("Total", "114.00 EUR"),
        ("Credits applied", "-4.00 EUR"),
        ("Amount due", "110.00 EUR"),
    ]
    assert ("Period", "2026-02-01 to 2026-02-28") in document.facts


def test_no_discount_row_without_a_discount_and_a_draft_is_marked() -> None:
    assert "Discounts (in the subtotal)" not in [
        t.label for t in layout.invoice_document(_invoice(), PLATFORM, TENANT).totals
    ]
    draft = layout.invoice_document(_invoice(number=None), PLATFORM, TENANT)
    assert (draft.mark, draft.number) == ("DRAFT", "Draft")
    assert draft.filename == "draft-00000000-0000-4000-8000-000000000001.pdf"
    assert ("Issued", "Not issued (draft)") in draft.facts


def test_a_credit_note_document_splits_its_amount_into_net_and_taxes() -> None:
    note = layout.CreditNoteFacts(
        id="n",
        number="ACME-000012-CN1",
        invoice_number="ACME-000012",
        invoice_issued_at=MAR,
        currency="KWD",
        amount_minor=1200,
        reason="Goodwill",
        taxes=(layout.TaxFigure("vat", "VAT", 2000, 200),),
        created_at=datetime(2026, 3, 5, tzinfo=UTC),
    )
    document = layout.credit_note_document(note, PLATFORM, TENANT)
    assert [(t.label, t.value) for t in document.totals] == [
        ("Credit before tax", "1.000 KWD"),
        ("VAT (vat, 20%)", "0.200 KWD"),
        ("Total credited", "1.200 KWD"),
    ]
    assert ("Credits invoice", "ACME-000012 of 2026-03-01") in document.facts
    assert ("Date", "2026-03-05") in document.facts
    assert document.filename == "ACME-000012-CN1.pdf"


def test_address_lines_leave_out_what_the_profile_lacks() -> None:
    lines = layout.address_lines(
        contact_name=None, line1="Main St 1", line2=None, postal_code="10117", city="Berlin", region=None,
        country="DE", tax_id="DE1",
    )  # fmt: skip
    assert lines == ("Main St 1", "10117 Berlin", "DE", "Tax ID: DE1")


def test_text_is_cut_into_runs_of_one_script() -> None:
    assert runs("Acme GmbH") == [Run("latin", "Acme GmbH")]
    assert runs("示例 有限公司 Ltd") == [Run("cjk", "示例 有限公司"), Run("latin", " Ltd")]
    assert runs("شركة المثال (KSA)") == [Run("arabic", "شركة المثال"), Run("latin", " (KSA)")]
    assert runs("חברה 12 בע״מ") == [Run("hebrew", "חברה"), Run("latin", " 12 "), Run("hebrew", "בע״מ")]
    assert runs("บริษัท จำกัด") == [Run("thai", "บริษัท จำกัด")]


def test_a_line_that_begins_in_arabic_or_hebrew_is_laid_out_right_to_left() -> None:
    assert right_to_left("شارع الملك فهد 12") and not right_to_left("12 Main St شارع")
    assert right_to_left("12 רחוב הרצל") and visual_runs("רחוב 5") == [Run("latin", "5 "), Run("hebrew", "רחוב")]
    assert visual_runs("شارع 12") == [Run("latin", "12 "), Run("arabic", "شارع")]
    assert visual_runs("Acme شركة") == [Run("latin", "Acme "), Run("arabic", "شركة")]


@given(st.text(alphabet="ab 示例,.شركة-()", max_size=40))
def test_runs_keep_every_character_in_order_and_alternate_scripts(text: str) -> None:
    found = runs(text)
    assert "".join(run.text for run in found) == text
    assert all(first.script != second.script for first, second in itertools.pairwise(found))
    assert all(run.text for run in found)


def _covers(script: Script, char: str) -> bool:
    """Fonts as a test sees them: the Latin one has ASCII and U+2028; Arabic has Arabic and the space."""
    if script == "latin":
        return char.isascii() or char == "\u2028"
    return script == "arabic" and ("\u0600" <= char <= "\u06ff" or char == " ")


def test_what_no_font_draws_is_written_as_its_code_point() -> None:
    assert drawable_runs("Acme \U0001f600 Ltd", _covers) == [Run("latin", "Acme [U+1F600] Ltd")]
    # A separator or a control character never draws nothing, even where a font has a glyph for it.
    assert drawable_runs("A\u2028B\x85C", _covers) == [Run("latin", "A[U+2028]B[U+0085]C")]
    assert drawable_runs("a\tb", _covers) == [Run("latin", "a b")]
    # Invisible format characters that no font has are left out: a variation selector, a joiner.
    assert drawable_runs("ok\ufe0f\u200d!", _covers) == [Run("latin", "ok!")]


def test_a_character_its_scripts_font_lacks_goes_to_the_latin_font_in_visual_order() -> None:
    """In a right-to-left run cut by a character drawn in another font, the pieces are drawn right to left."""
    assert drawable_runs("شركة\u2028ب", _covers) == [
        Run("arabic", "ب"), Run("latin", "[U+2028]"), Run("arabic", "شركة"),
    ]  # fmt: skip
    assert drawable_runs("示例", _covers) == [Run("latin", "[U+793A][U+4F8B]")]


def test_a_void_or_uncollectible_invoice_is_marked_and_says_why() -> None:
    for status, mark, why in (("void", "VOID", "nothing is due"), ("uncollectible", "UNCOLLECTIBLE", "written off")):
        document = layout.invoice_document(
            dataclasses.replace(_invoice(), status=status), layout.Party("P"), layout.Party("T")
        )
        assert document.mark == mark
        assert why in document.notes[0]
    assert layout.invoice_document(_invoice(), layout.Party("P"), layout.Party("T")).mark is None
