"""API shapes of the billing domain. Money is integer minor units; prices and quantities that may be
fractional are decimal strings. Input structs reject unknown fields."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from billing import limits
from billing.discounts import rules as discount_rules
from billing.invoices.service import InvoiceLineView, InvoiceView
from billing.usage.service import CurrentUsage
from controlplane.core.web import Currency, Input, Name, to_struct

Code = Annotated[str, Meta(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
FieldName = Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
Seats = Annotated[int, Meta(ge=1, le=limits.MAX_SEATS)]
# A one-off amount (credit note, refund, escrow); bounded so that no sum of them overflows (billing.limits).
AmountMinor = Annotated[int, Meta(ge=1, le=limits.MAX_AMOUNT_MINOR)]
RateLimitPercent = Annotated[
    int,
    Meta(
        ge=limits.MIN_RATE_LIMIT_PERCENT,
        le=limits.MAX_RATE_LIMIT_PERCENT,
        description="Scales the tenant's API rate limits: 100 = the defaults, 400 = four times, 50 = half",
    ),
]
DecimalText = Annotated[str, Meta(description='A decimal number as a string, e.g. "0.25"')]
Charges = Annotated[
    list[dict[str, Any]],
    Meta(
        max_length=50,
        description=(
            "Each charge has `type` flat | per_seat | metered. flat: `amount_minor`; per_seat: "
            "`unit_amount_minor`; metered: `metric_code`, `model` per_unit (`unit_amount_minor`) | graduated | "
            "volume (`tiers`: [{up_to, unit_amount_minor, flat_amount_minor}], last up_to null) | package "
            "(`package_size`, `amount_minor`, `free_units`). Optional `name`, `min_amount_minor`. "
            "Amounts are minor units as integers or decimal strings."
        ),
    ),
]


def check_moment(value: datetime | None, name: str) -> None:
    """A moment a client names (a start, a due date) lies within the years billing computes with; beyond them
    converting it to UTC or adding a period would overflow. Raised as a validation error by msgspec."""
    if value is None:
        return
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    if not limits.EARLIEST <= moment <= limits.LATEST:
        raise ValueError(f"{name} must be between {limits.EARLIEST.isoformat()} and {limits.LATEST.isoformat()}")


def check_instant(value: datetime | None, name: str) -> None:
    """`check_moment` for a moment that must name an instant: one without a UTC offset is refused (a 400
    `validation_error`) rather than read in some zone; it would compare unequal to what is stored (a
    retried request then conflicts with its own result) or fail comparing with an aware one."""
    if value is not None and value.tzinfo is None:
        raise ValueError(f"{name} must carry a UTC offset (RFC 3339, e.g. 2030-01-01T00:00:00Z)")
    check_moment(value, name)


class MetricCreate(Input):
    code: Code
    name: Name
    aggregation: Literal["count", "sum", "max", "unique_count", "latest"]
    field: FieldName | None = None


class MetricRead(Struct, kw_only=True):
    id: uuid.UUID
    code: str
    name: str
    aggregation: str
    field: str | None
    created_at: datetime


class MetricPage(Struct, kw_only=True):
    items: list[MetricRead]
    next_cursor: str | None


class Proration(Struct, kw_only=True, forbid_unknown_fields=True):
    upgrade: Literal["immediate", "next_period"] = "immediate"
    downgrade: Literal["immediate", "next_period"] = "next_period"


class PlanCreate(Input, kw_only=True):
    code: Code
    name: Name
    currency: Currency
    interval: Literal["month", "year"]
    trial_days: Annotated[int, Meta(ge=0, le=730)] = 0
    charges: Charges
    proration: Proration | None = None
    rate_limit_percent: RateLimitPercent = limits.DEFAULT_RATE_LIMIT_PERCENT


class PlanRead(Struct, kw_only=True):
    id: uuid.UUID
    code: str
    version: int
    name: str
    currency: str
    interval: str
    trial_days: int
    charges: list[dict[str, Any]]
    proration: Proration
    rate_limit_percent: int
    created_at: datetime


class PlanPage(Struct, kw_only=True):
    items: list[PlanRead]
    next_cursor: str | None


class SubscriptionCreate(Input):
    plan_code: Code
    seats: Seats = 1
    start_at: datetime | None = None
    billing_anchor: Literal["calendar", "anniversary"] = "calendar"

    def __post_init__(self) -> None:
        check_moment(self.start_at, "start_at")


class SubscriptionChange(Input):
    plan_code: Code | UnsetType = UNSET
    seats: Seats | UnsetType = UNSET


class SubscriptionCancel(Input):
    at_period_end: bool = True


class SubscriptionRead(Struct, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    plan_code: str
    plan_version: int
    seats: int
    status: Literal["trialing", "active", "past_due", "paused", "canceled"]
    billing_anchor: str
    current_period_start: datetime
    current_period_end: datetime
    trial_end: datetime | None
    cancel_at_period_end: bool
    canceled_at: datetime | None
    pending_plan_code: str | None
    pending_seats: int | None
    created_at: datetime
    # Set while the billing cycle cannot bill the subscription: why, since when, how often, and the next try.
    billing_error: str | None = None
    billing_error_at: datetime | None = None
    billing_attempts: int = 0
    billing_retry_at: datetime | None = None


class SubscriptionPage(Struct, kw_only=True):
    items: list[SubscriptionRead]
    next_cursor: str | None


class UsageRejection(Struct, kw_only=True):
    index: int
    code: str
    detail: str


class UsageReply(Struct, kw_only=True):
    accepted: int
    duplicates: int
    rejected: list[UsageRejection]


class MetricUsage(Struct, kw_only=True):
    metric_code: str
    aggregation: str
    value: DecimalText
    amount_minor: int | None


class UsageRead(Struct, kw_only=True):
    subscription_id: uuid.UUID
    currency: str
    period_start: datetime
    period_end: datetime
    metrics: list[MetricUsage]


class InvoiceLineRead(Struct, kw_only=True):
    description: str
    charge_kind: Literal["flat", "per_seat", "metered", "proration", "rounding", "discount", "one_off"]
    metric_code: str | None
    quantity: DecimalText
    unit_amount_minor: DecimalText
    amount_minor: int
    period_start: datetime
    period_end: datetime


class InvoiceTaxRead(Struct, kw_only=True):
    """One tax rate's amount on an invoice, rounded once."""

    code: str
    name: str
    rate_bps: int
    amount_minor: int


class InvoiceDisputeRead(Struct, kw_only=True):
    """A card dispute of the invoice's payment: `open` until Stripe decides it (`won`: the money came back;
    `lost`: it went to the cardholder)."""

    id: uuid.UUID
    status: Literal["open", "won", "lost"]
    amount_minor: int
    currency: str
    reason: str
    opened_at: datetime
    closed_at: datetime | None


class InvoiceRead(Struct, kw_only=True):
    """`amount_due_minor = total_minor - credited_minor - credits_applied_minor` (never below 0);
    `discount_minor` is the sum of the discount lines (≤ 0); `tax_minor` the sum of `taxes`."""

    id: uuid.UUID | None
    number: str | None
    tenant_id: uuid.UUID
    subscription_id: uuid.UUID | None
    kind: Literal["cycle", "change", "final", "one_off", "credit_purchase"]
    status: Literal["draft", "finalized", "paid", "void", "uncollectible", "upcoming"]
    currency: str
    period_start: datetime
    period_end: datetime
    subtotal_minor: int
    discount_minor: int
    tax_minor: int
    taxes: list[InvoiceTaxRead]
    total_minor: int
    credited_minor: int
    credits_applied_minor: int
    amount_due_minor: int
    issued_at: datetime | None
    lines: list[InvoiceLineRead]
    disputes: list[InvoiceDisputeRead] = []


class InvoicePage(Struct, kw_only=True):
    items: list[InvoiceRead]
    next_cursor: str | None


class OneOffLineCreate(Input):
    """`quantity` > 0 (a decimal string or a whole number, at most 10^9, 12 decimal places); `unit_amount_minor`
    whole minor units, never negative (what is owed back is a credit note)."""

    description: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
    quantity: Annotated[int, Meta(ge=1, le=10**9)] | Annotated[str, Meta(min_length=1, max_length=40)]
    unit_amount_minor: Annotated[int, Meta(ge=0, le=limits.MAX_AMOUNT_MINOR)]


class OneOffInvoiceCreate(Input):
    """A one-off invoice in the tenant's billing currency; `finalize: false` keeps a draft until
    `POST /v1/invoices/{id}/finalize`."""

    currency: Annotated[str, Meta(pattern=r"^[A-Z]{3}$")]
    lines: Annotated[list[OneOffLineCreate], Meta(min_length=1, max_length=100)]
    finalize: bool = True


class CreditNoteCreate(Input):
    amount_minor: AmountMinor
    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")]


class CreditNoteRead(Struct, kw_only=True):
    """`taxes`: the tax this note takes back, per rate of the invoice (in the invoice's proportion)."""

    id: uuid.UUID
    invoice_id: uuid.UUID
    number: Annotated[str, Meta(description="`<invoice number>-CN<n>`: given when the note is made, never changed")]
    amount_minor: int
    currency: str
    reason: str
    taxes: list[InvoiceTaxRead]
    created_at: datetime


class PaymentMethodCreate(Input):
    stripe_payment_method_id: Annotated[str, Meta(min_length=4, max_length=255, pattern=r"^pm_[A-Za-z0-9_]+$")]
    default: bool = False


class PaymentMethodRead(Struct, kw_only=True):
    id: uuid.UUID
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    default: bool
    created_at: datetime


class PaymentMethodPage(Struct, kw_only=True):
    items: list[PaymentMethodRead]
    next_cursor: str | None


class PaymentRead(Struct, kw_only=True):
    id: uuid.UUID
    invoice_id: uuid.UUID
    attempt: int
    status: Literal["pending", "succeeded", "failed"]
    amount_minor: int
    currency: str
    decline_code: str | None
    created_at: datetime


class RefundCreate(Input):
    amount_minor: AmountMinor
    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")]


class RefundRead(Struct, kw_only=True):
    id: uuid.UUID
    invoice_id: uuid.UUID
    amount_minor: int
    currency: str
    reason: str
    status: Literal["pending", "succeeded", "failed"]
    created_at: datetime


class Payee(Struct, kw_only=True, forbid_unknown_fields=True):
    type: Literal["publisher", "reseller", "vendor"]
    id: uuid.UUID


class MilestoneCreate(Input, kw_only=True):
    title: Name
    amount_minor: AmountMinor
    due_at: datetime | None = None

    def __post_init__(self) -> None:
        check_instant(self.due_at, "due_at")


class EscrowCreate(Input, kw_only=True):
    tenant_id: uuid.UUID
    payee: Payee
    currency: Currency
    amount_minor: AmountMinor
    milestones: Annotated[list[MilestoneCreate], Meta(min_length=1, max_length=50)]
    inspection_days: Annotated[int, Meta(ge=1, le=90)] = 7


class MilestoneReject(Input):
    reason: Annotated[str, Meta(min_length=1, max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$")]


class MilestoneResolve(Input):
    outcome: Literal["release", "refund", "split"]
    release_minor: AmountMinor | None = None


class MilestoneRead(Struct, kw_only=True):
    id: uuid.UUID
    title: str
    amount_minor: int
    due_at: datetime | None
    status: Literal["pending", "submitted", "disputed", "released", "refunded", "split"]
    released_minor: int
    refunded_minor: int
    reason: str | None
    submitted_at: datetime | None
    # Failed attempts of the hourly auto-accept past the inspection window, and the last one's error.
    auto_accept_attempts: int = 0
    auto_accept_error: str | None = None


class EscrowRead(Struct, kw_only=True):
    id: uuid.UUID
    tenant_id: uuid.UUID
    payee: Payee
    currency: str
    amount_minor: int
    inspection_days: int
    status: Literal["draft", "funding", "funded", "closed", "canceled"]
    funded_minor: int
    released_minor: int
    refunded_minor: int
    held_minor: int
    milestones: list[MilestoneRead]
    created_at: datetime


def decimal_text(value: Decimal | int) -> str:
    """Plain decimal notation without an exponent or trailing zeros: "0.25", "100"."""
    text = format(Decimal(value).normalize(), "f")
    return text if text != "-0" else "0"


def _fields(value: Any) -> dict[str, Any]:
    """A flat dataclass's fields, shallow: `dataclasses.asdict` deep-copies every Decimal and datetime, which
    cost more than the rest of an invoice list's serialisation."""
    return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}


def invoice_line_read(line: InvoiceLineView) -> InvoiceLineRead:
    figures = {"quantity": decimal_text(line.quantity), "unit_amount_minor": decimal_text(line.unit_amount_minor)}
    return to_struct(InvoiceLineRead, _fields(line) | figures)


def invoice_read(invoice: InvoiceView) -> InvoiceRead:
    """The invoice's lines carry their fractional figures as decimal text."""
    read = to_struct(InvoiceRead, dataclasses.replace(invoice, lines=()))
    read.lines = [invoice_line_read(line) for line in invoice.lines]
    return read


def usage_read(usage: CurrentUsage) -> UsageRead:
    """Each metric's aggregate as decimal text."""
    read = to_struct(UsageRead, dataclasses.replace(usage, metrics=()))
    read.metrics = [
        to_struct(MetricUsage, _fields(item) | {"value": decimal_text(item.value)}) for item in usage.metrics
    ]
    return read


class TrialGrantCreate(Input):
    """Exactly one of the two."""

    plan_code: Code | UnsetType = UNSET
    plugin_id: uuid.UUID | UnsetType = UNSET


class TrialGrantRead(Struct):
    id: uuid.UUID
    tenant_id: uuid.UUID
    plan_code: str | None
    plugin_id: uuid.UUID | None
    granted_by: uuid.UUID
    granted_at: datetime
    used_at: datetime | None


# -- coupons and discounts ------------------------------------------------------------------------------------

PercentOffBps = Annotated[int, Meta(ge=1, le=discount_rules.MAX_PERCENT_BPS, description="Basis points: 2500 = 25 %")]
DurationPeriods = Annotated[int, Meta(ge=1, le=discount_rules.MAX_DURATION_PERIODS)]
MaxRedemptions = Annotated[int, Meta(ge=1, le=discount_rules.MAX_REDEMPTIONS)]


class CouponCreate(Input, kw_only=True):
    """Exactly one of `percent_off_bps` and `amount_off_minor`; `currency` with an amount and only then;
    `duration_periods` with a `repeating` duration and only then."""

    code: Code
    name: Name
    percent_off_bps: PercentOffBps | None = None
    amount_off_minor: AmountMinor | None = None
    currency: Currency | None = None
    duration: Literal["once", "repeating", "forever"]
    duration_periods: DurationPeriods | None = None
    plan_codes: Annotated[list[Code], Meta(min_length=1, max_length=discount_rules.MAX_PLAN_CODES)] | None = None
    max_redemptions: MaxRedemptions | None = None
    redeem_by: datetime | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_instant(self.redeem_by, "redeem_by")


class CouponRead(Struct, kw_only=True):
    id: uuid.UUID
    code: str
    name: str
    percent_off_bps: int | None
    amount_off_minor: int | None
    currency: str | None
    duration: Literal["once", "repeating", "forever"]
    duration_periods: int | None
    plan_codes: list[str] | None
    max_redemptions: int | None
    redeem_by: datetime | None
    times_redeemed: int
    archived: bool
    archived_at: datetime | None
    created_at: datetime


class CouponPage(Struct, kw_only=True):
    items: list[CouponRead]
    next_cursor: str | None


class DiscountCreate(Input):
    coupon_code: Code


class DiscountRead(Struct, kw_only=True):
    """A redeemed coupon with its terms as redeemed; `position` is its redemption order (discounts apply in
    it). `amount_remaining_minor`: what a `once` amount coupon has still to give."""

    id: uuid.UUID
    subscription_id: uuid.UUID
    coupon_code: str
    name: str
    position: int
    percent_off_bps: int | None
    amount_off_minor: int | None
    currency: str | None
    duration: Literal["once", "repeating", "forever"]
    duration_periods: int | None
    plan_codes: list[str] | None
    periods_used: int
    amount_remaining_minor: int | None
    status: Literal["active", "ended", "removed"]
    ended_reason: Literal["used", "periods_over", "plan_mismatch", "currency_mismatch", "removed"] | None
    ended_at: datetime | None
    created_at: datetime


class DiscountList(Struct, kw_only=True):
    items: list[DiscountRead]


# Tax rates: text a client names, bounded, without control characters (C0, DEL or C1).
TaxText = Annotated[str, Meta(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]


class TaxRateCreate(Input):
    code: Code
    name: TaxText
    rate_bps: Annotated[int, Meta(ge=0, le=limits.MAX_TAX_BPS, description="Basis points: 825 is 8.25 %")]
    jurisdiction: TaxText


class TaxRateRead(Struct, kw_only=True):
    """A rate of the catalogue; never changed once created. `archived_at`: no tenant may be given it since
    (tenants that had it keep it)."""

    id: uuid.UUID
    code: str
    name: str
    rate_bps: int
    jurisdiction: str
    archived_at: datetime | None
    created_at: datetime


class TaxRatePage(Struct, kw_only=True):
    items: list[TaxRateRead]
    next_cursor: str | None


class TenantTaxRatesPut(Input):
    """The tenant's whole list, in the order invoices show it (at most 10, no code twice); [] returns the
    tenant to its single `tax_rate_bps`."""

    codes: Annotated[list[Code], Meta(max_length=100)]


class TenantTaxRate(Struct, kw_only=True):
    code: str
    name: str
    rate_bps: int


class TenantTaxRatesRead(Struct, kw_only=True):
    """`codes`: the tenant's list (empty when it has none); `rates`: what its invoices are taxed at now."""

    tenant_id: uuid.UUID
    codes: list[str]
    rates: list[TenantTaxRate]


class WalletTopUpCreate(Input):
    """`paid: true` (tenant admin or staff) buys credit by card: a `credit_purchase` invoice collected at once;
    `paid: false` (staff only) grants free credit. Optional `expires_at` (in the future): unused credit
    expires then."""

    amount_minor: AmountMinor
    paid: bool
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        check_instant(self.expires_at, "expires_at")
        super().__post_init__()


class WalletTopUpRead(Struct, kw_only=True):
    """The top-up's credit lot (`id`); `invoice_id` is the paid credit purchase (None for a grant)."""

    id: uuid.UUID
    source: Literal["purchased", "granted"]
    amount_minor: int
    currency: str
    expires_at: datetime | None
    invoice_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    created_at: datetime


class CreditTransactionRead(Struct, kw_only=True):
    """A movement of the wallet: into a lot (`top_up`, `grant`, `restored` when an invoice paid with credit is
    voided) positive; out of it (`applied`, `expired`, `refunded`, `disputed`: a card dispute of the purchase
    was lost, so its credit went back with the money) negative."""

    id: uuid.UUID
    lot_id: uuid.UUID
    kind: Literal["top_up", "grant", "applied", "restored", "expired", "refunded", "disputed"]
    amount_minor: int
    currency: str
    invoice_id: uuid.UUID | None
    payment_id: uuid.UUID | None
    refund_id: uuid.UUID | None
    created_at: datetime


class WalletRead(Struct, kw_only=True):
    """The unexpired credit in one currency (`balance_minor = purchased_minor + granted_minor`) and a page of
    its transactions, oldest first."""

    currency: str
    balance_minor: int
    purchased_minor: int
    granted_minor: int
    transactions: list[CreditTransactionRead]
    next_cursor: str | None


class DisputeRead(Struct, kw_only=True):
    """A card dispute of one payment of an invoice. `fee_minor` is Stripe's dispute fee in `fee_currency` (its
    settlement currency; 0 when Stripe did not say), `fee_returned_minor` what Stripe gave back of it on a win."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    invoice_id: uuid.UUID
    payment_id: uuid.UUID
    stripe_dispute_id: str
    charge_id: str | None
    amount_minor: int
    currency: str
    fee_minor: int
    fee_currency: str
    fee_returned_minor: int
    reason: str
    status: Literal["open", "won", "lost"]
    opened_at: datetime
    closed_at: datetime | None
    created_at: datetime


class DisputePage(Struct, kw_only=True):
    items: list[DisputeRead]
    next_cursor: str | None


class TenantDisputeRead(Struct, kw_only=True):
    """A card dispute of one of the tenant's payments, as the tenant reads it: what was disputed and how it
    stands (`open` until the card network decides; `won`: the money came back; `lost`: it went to the
    cardholder). Stripe's fee and ids are the platform's (staff read them at `GET /v1/disputes`)."""

    id: uuid.UUID
    invoice_id: uuid.UUID
    amount_minor: int
    currency: str
    reason: str
    status: Literal["open", "won", "lost"]
    opened_at: datetime
    closed_at: datetime | None


class TenantDisputePage(Struct, kw_only=True):
    items: list[TenantDisputeRead]
    next_cursor: str | None
