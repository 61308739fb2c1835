"""What an invoice or credit-note document says, and how its figures are written. Pure.

The service gathers the facts (`InvoiceFacts`, `CreditNoteFacts`, the two parties); these functions turn them
into a `Document` (texts only, no geometry), which the renderer draws. Every amount is written by
`billing.money.display`, in the currency's own precision (billing.money's exponents: `1,235 JPY`, `1,234.57 USD`,
`1,234.567 KWD`), so a figure reads the same in every place and can be found again by text extraction.

A finalized invoice's document shows the invoice as issued: its lines and totals never change, the credits its
wallet paid at finalization, and what was due then. Payments and credit notes after that are documents of their
own, so the stored PDF never needs to change. Dates are UTC calendar dates (ISO 8601); a period ending at
midnight shows its last day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing.money import display, exponent

KIND_NAMES = {
    "cycle": "Subscription period",
    "change": "Plan change",
    "final": "Final (cancellation)",
    "one_off": "One-off",
    "credit_purchase": "Prepaid credit purchase",
}
CHARGE_NAMES = {
    "flat": "Flat fee",
    "per_seat": "Per seat",
    "metered": "Usage",
    "proration": "Proration",
    "rounding": "Rounding",
    "discount": "Discount",
    "one_off": "One-off",
}
DRAFT_MARK = "DRAFT"
# An invoice that no longer asks for payment: its document as issued, marked (and a note says why).
MARKS = {"void": "VOID", "uncollectible": "UNCOLLECTIBLE"}
MARK_NOTES = {
    "void": "VOID: this invoice was voided after its issue; nothing is due on it.",
    "uncollectible": "UNCOLLECTIBLE: this invoice was written off after its issue; its collection has stopped.",
}


# -- facts (what the service reads) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    """Who issues or receives the document: a name and the lines under it (address, tax id)."""

    name: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TaxFigure:
    code: str
    name: str
    rate_bps: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class LineFacts:
    description: str
    charge_kind: str
    quantity: Decimal
    unit_amount_minor: Decimal
    amount_minor: int
    period_start: datetime
    period_end: datetime


@dataclass(frozen=True, slots=True)
class InvoiceFacts:
    """An invoice as issued (a draft: as it stands). `credits_applied_minor` and `amount_due_minor` are those of
    its finalization."""

    id: str
    number: str | None
    kind: str
    currency: str
    period_start: datetime
    period_end: datetime
    issued_at: datetime | None
    subtotal_minor: int
    discount_minor: int
    taxes: tuple[TaxFigure, ...]
    total_minor: int
    credits_applied_minor: int
    amount_due_minor: int
    lines: tuple[LineFacts, ...]
    status: str = "finalized"  # as it stands now: a void or uncollectible invoice is marked

    @property
    def draft(self) -> bool:
        return self.number is None


@dataclass(frozen=True, slots=True)
class CreditNoteFacts:
    id: str
    number: str
    invoice_number: str
    invoice_issued_at: datetime | None
    currency: str
    amount_minor: int
    reason: str
    taxes: tuple[TaxFigure, ...]
    created_at: datetime


# -- the document (what the renderer draws) -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the table: `detail` is the small print under the description (its period, its kind)."""

    description: str
    detail: str
    quantity: str
    unit_price: str
    amount: str


@dataclass(frozen=True, slots=True)
class Total:
    label: str
    value: str
    strong: bool = False


@dataclass(frozen=True, slots=True)
class Document:
    title: str
    number: str
    filename: str
    issuer: Party
    recipient: Party
    facts: tuple[tuple[str, str], ...]  # label, value: beside the recipient
    rows: tuple[Row, ...]
    totals: tuple[Total, ...]
    notes: tuple[str, ...]
    created_at: datetime  # the PDF's creation date: fixed by the document, never the clock
    mark: str | None = None  # a large watermark ("DRAFT", "VOID", "UNCOLLECTIBLE")

    def texts(self) -> list[str]:
        """Every text drawn (to know which fonts the document needs)."""
        parts = [self.title, self.number, self.issuer.name, self.recipient.name, *self.issuer.lines]
        parts += [*self.recipient.lines, *(text for pair in self.facts for text in pair), *self.notes]
        for row in self.rows:
            parts += [row.description, row.detail, row.quantity, row.unit_price, row.amount]
        parts += [text for total in self.totals for text in (total.label, total.value)]
        return [*parts, self.footer, *([self.mark] if self.mark else [])]

    @property
    def footer(self) -> str:
        """The line at the foot of every page (beside the page number)."""
        return f"{self.issuer.name} · {self.title} {self.number}"


# -- formatting -----------------------------------------------------------------------------------------------


def _grouped(value: Decimal, places: int) -> str:
    return f"{value:,.{places}f}"


def format_unit_amount(minor: Decimal, currency: str) -> str:
    """A unit price, which may be a fraction of a minor unit: the currency's places, more only when needed."""
    places = exponent(currency)
    major = Decimal(minor).scaleb(-places)
    needed = -major.normalize().as_tuple().exponent  # type: ignore[operator]
    return f"{_grouped(major, max(places, int(needed)))} {currency}"


def format_quantity(quantity: Decimal) -> str:
    """`1,000`, `2.5`: no trailing zeros, no exponent."""
    normal = Decimal(quantity).normalize()
    places = max(0, -int(normal.as_tuple().exponent))
    return _grouped(normal, places)


def format_rate(rate_bps: int) -> str:
    """`20%`, `7.5%`, `0.01%` from basis points."""
    return f"{format_quantity(Decimal(rate_bps) / 100)}%"


def format_date(moment: datetime) -> str:
    return moment.astimezone(UTC).date().isoformat()


def format_period(start: datetime, end: datetime) -> str:
    """`2026-02-01 to 2026-02-28` for [1 Feb, 1 Mar): a period ending at midnight shows its last day; a period of
    one day or less shows that day."""
    first = start.astimezone(UTC)
    last = end.astimezone(UTC)
    if last > first and last.time() == datetime.min.time():
        last = last - timedelta(days=1)
    if last.date() <= first.date():
        return format_date(first)
    return f"{format_date(first)} to {format_date(last)}"


def tax_label(tax: TaxFigure) -> str:
    return f"{tax.name} ({tax.code}, {format_rate(tax.rate_bps)})"


def safe_filename(number: str) -> str:
    """`<number>.pdf` with anything but letters, digits, `-`, `_` and `.` replaced (a header value)."""
    cleaned = "".join(char if char.isascii() and (char.isalnum() or char in "-_.") else "_" for char in number)
    return f"{cleaned.strip('.') or 'document'}.pdf"


# -- the two documents ----------------------------------------------------------------------------------------


def invoice_document(invoice: InvoiceFacts, issuer: Party, recipient: Party) -> Document:
    currency = invoice.currency
    number = invoice.number or "Draft"
    period = format_period(invoice.period_start, invoice.period_end)
    facts = [
        ("Invoice number", number),
        ("Issued", format_date(invoice.issued_at) if invoice.issued_at else "Not issued (draft)"),
        ("Period", period),
        ("Kind", KIND_NAMES.get(invoice.kind, invoice.kind)),
        ("Currency", currency),
    ]
    rows = tuple(_line_row(line, currency, period) for line in invoice.lines)
    totals = [Total("Subtotal", display(invoice.subtotal_minor, currency))]
    if invoice.discount_minor:
        totals.append(Total("Discounts (in the subtotal)", display(invoice.discount_minor, currency)))
    totals += [Total(tax_label(tax), display(tax.amount_minor, currency)) for tax in invoice.taxes]
    totals += [
        Total("Total", display(invoice.total_minor, currency), strong=True),
        Total("Credits applied", display(-invoice.credits_applied_minor, currency)),
        Total("Amount due", display(invoice.amount_due_minor, currency), strong=True),
    ]
    notes = [
        "This invoice is shown as issued: payments and credit notes after its issue date have their own documents.",
        "Amounts in " + currency + "; dates are UTC.",
    ]
    if invoice.draft:
        notes[0] = "A draft: not yet issued, its figures may still change, and it is not a demand for payment."
    elif invoice.status in MARK_NOTES:
        notes.insert(0, MARK_NOTES[invoice.status])
    return Document(
        title="Invoice",
        number=number,
        filename=safe_filename(invoice.number or f"draft-{invoice.id}"),
        issuer=issuer,
        recipient=recipient,
        facts=tuple(facts),
        rows=rows,
        totals=tuple(totals),
        notes=tuple(notes),
        created_at=invoice.issued_at or invoice.period_start,
        mark=DRAFT_MARK if invoice.draft else MARKS.get(invoice.status),
    )


def _line_row(line: LineFacts, currency: str, invoice_period: str) -> Row:
    period = format_period(line.period_start, line.period_end)
    detail = CHARGE_NAMES.get(line.charge_kind, line.charge_kind)
    if period != invoice_period:
        detail = f"{detail} · {period}"
    return Row(
        description=line.description,
        detail=detail,
        quantity=format_quantity(line.quantity),
        unit_price=format_unit_amount(line.unit_amount_minor, currency),
        amount=display(line.amount_minor, currency),
    )


def credit_note_document(note: CreditNoteFacts, issuer: Party, recipient: Party) -> Document:
    currency = note.currency
    tax_total = sum((tax.amount_minor for tax in note.taxes), 0)
    net = note.amount_minor - tax_total
    credited = note.invoice_number
    if note.invoice_issued_at is not None:
        credited = f"{note.invoice_number} of {format_date(note.invoice_issued_at)}"
    facts = (
        ("Credit note number", note.number),
        ("Date", format_date(note.created_at)),
        ("Credits invoice", credited),
        ("Currency", currency),
    )
    row = Row(
        description=f"Credit on invoice {note.invoice_number}: {note.reason}",
        detail="Net of tax",
        quantity="1",
        unit_price=display(net, currency),
        amount=display(net, currency),
    )
    totals = [Total("Credit before tax", display(net, currency))]
    totals += [Total(tax_label(tax), display(tax.amount_minor, currency)) for tax in note.taxes]
    totals.append(Total("Total credited", display(note.amount_minor, currency), strong=True))
    return Document(
        title="Credit note",
        number=note.number,
        filename=safe_filename(note.number),
        issuer=issuer,
        recipient=recipient,
        facts=facts,
        rows=(row,),
        totals=tuple(totals),
        notes=(f"Reason: {note.reason}", "Amounts in " + currency + "; dates are UTC."),
        created_at=note.created_at,
    )


def address_lines(
    *,
    contact_name: str | None,
    line1: str | None,
    line2: str | None,
    postal_code: str | None,
    city: str | None,
    region: str | None,
    country: str | None,
    tax_id: str | None,
) -> tuple[str, ...]:
    """The recipient's lines under its name, from its billing profile (absent parts left out)."""
    lines = [
        f"Attn: {contact_name}" if contact_name else None,
        line1,
        line2,
        " ".join(part for part in (postal_code, city) if part) or None,
        region,
        country,
        f"Tax ID: {tax_id}" if tax_id else None,
    ]
    return tuple(line for line in lines if line)
