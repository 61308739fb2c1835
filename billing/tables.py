"""Piccolo tables of the billing domain. The DDL (constraints, triggers, RLS) is in piccolo_migrations."""

from piccolo.columns import (
    JSONB,
    UUID,
    Array,
    BigInt,
    Boolean,
    Bytea,
    Date,
    Integer,
    Numeric,
    Text,
    Timestamptz,
    Varchar,
)
from piccolo.table import Table

from controlplane.core.db import ENGINE


class BillableMetric(Table, tablename="billable_metrics", db=ENGINE):
    id = UUID(primary_key=True)
    code = Text()
    name = Text()
    aggregation = Text()
    field = Text(null=True)
    created_at = Timestamptz()


class Plan(Table, tablename="plans", db=ENGINE):
    id = UUID(primary_key=True)
    code = Text()
    version = Integer()
    name = Text()
    currency = Varchar(length=3)
    interval = Text()
    trial_days = Integer()
    charges = JSONB()
    proration_upgrade = Text()
    proration_downgrade = Text()
    created_at = Timestamptz()
    rate_limit_percent = Integer(default=100)


class Subscription(Table, tablename="subscriptions", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    plan_id = UUID()
    seats = Integer()
    status = Text()
    billing_anchor = Text()
    anchor_date = Date()
    started_at = Timestamptz()
    trial_end = Timestamptz(null=True, default=None)
    current_period_start = Timestamptz()
    current_period_end = Timestamptz()
    usage_from = Timestamptz()
    cancel_at_period_end = Boolean(default=False)
    canceled_at = Timestamptz(null=True, default=None)
    pending_plan_id = UUID(null=True, default=None)
    pending_seats = Integer(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    billing_error = Text(null=True, default=None)
    billing_error_at = Timestamptz(null=True, default=None)
    billing_attempts = Integer(default=0)
    billing_retry_at = Timestamptz(null=True, default=None)


class SubscriptionAddon(Table, tablename="subscription_addons", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    subscription_id = UUID()
    source_id = UUID()
    name = Text()
    charge = JSONB()
    currency = Varchar(length=3)
    quantity = Integer(default=1)
    billable_from = Timestamptz()
    ended_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    period_end = Timestamptz(null=True, default=None)
    period_base_quantity = Integer(null=True, default=None)
    period_paid_quantity = Integer(null=True, default=None)


class UsageEvent(Table, tablename="usage_events", db=ENGINE):
    id = BigInt(primary_key=True)
    tenant_id = UUID()
    idempotency_key = Text()
    metric_code = Text()
    occurred_at = Timestamptz()
    value = Numeric(null=True, default=None)
    properties = JSONB(null=True)
    received_at = Timestamptz()


class UsageTotal(Table, tablename="usage_totals", db=ENGINE):
    # The primary key is (tenant_id, metric_code); Piccolo names one column.
    tenant_id = UUID(primary_key=True)
    metric_code = Text()
    window_start = Timestamptz()
    units = Numeric()
    events = BigInt()


class Invoice(Table, tablename="invoices", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    subscription_id = UUID(null=True)
    kind = Text()
    cycle_boundary = Timestamptz(null=True, default=None)
    number = Text(null=True)
    status = Text()
    currency = Varchar(length=3)
    period_start = Timestamptz()
    period_end = Timestamptz()
    subtotal_minor = BigInt()
    tax_rate_bps = Integer()
    tax_minor = BigInt()
    total_minor = BigInt()
    credited_minor = BigInt(default=0)
    amount_due_minor = BigInt()
    finalize_at = Timestamptz(null=True, default=None)
    issued_at = Timestamptz(null=True, default=None)
    voided_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    finalize_error = Text(null=True, default=None)
    finalize_attempts = Integer(default=0)
    collection_error = Text(null=True, default=None)
    collection_attempts = Integer(default=0)
    collection_retry_at = Timestamptz(null=True, default=None)
    discount_minor = BigInt(default=0)
    credits_applied_minor = BigInt(default=0)
    taxes = JSONB(default=[])


class InvoiceLine(Table, tablename="invoice_lines", db=ENGINE):
    id = BigInt(primary_key=True)
    tenant_id = UUID()
    invoice_id = UUID()
    position = Integer()
    description = Text()
    charge_kind = Text()
    charge_index = Integer(null=True)
    metric_code = Text(null=True)
    quantity = Numeric()
    unit_amount_minor = Numeric()
    precise_amount_minor = Numeric()
    amount_minor = BigInt()
    period_start = Timestamptz()
    period_end = Timestamptz()


class PendingInvoiceItem(Table, tablename="pending_invoice_items", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    subscription_id = UUID()
    description = Text()
    charge_kind = Text()
    metric_code = Text(null=True)
    quantity = Numeric()
    unit_amount_minor = Numeric()
    precise_amount_minor = Numeric()
    amount_minor = BigInt()
    period_start = Timestamptz()
    period_end = Timestamptz()
    created_at = Timestamptz()
    invoice_id = UUID(null=True, default=None)


class CreditNote(Table, tablename="credit_notes", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    invoice_id = UUID()
    amount_minor = BigInt()
    currency = Varchar(length=3)
    reason = Text()
    taxes = JSONB()
    number = Text()
    created_at = Timestamptz()


class TaxRate(Table, tablename="tax_rates", db=ENGINE):
    id = UUID(primary_key=True)
    code = Text()
    name = Text()
    rate_bps = Integer()
    jurisdiction = Text()
    archived_at = Timestamptz(null=True)
    created_at = Timestamptz()


class TenantTaxRate(Table, tablename="tenant_tax_rates", db=ENGINE):
    tenant_id = UUID(primary_key=True)
    position = Integer()
    tax_rate_code = Text()
    created_at = Timestamptz()


class Payment(Table, tablename="payments", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    invoice_id = UUID()
    attempt = Integer()
    idempotency_key = Text()
    status = Text()
    amount_minor = BigInt()
    currency = Varchar(length=3)
    stripe_customer_id = Text()
    stripe_payment_method_id = Text()
    stripe_payment_intent_id = Text(null=True)
    decline_code = Text(null=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    dunning_step = Integer(null=True)


class LedgerJournal(Table, tablename="ledger_journals", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    source_type = Text()
    source_id = UUID()
    description = Text()
    created_at = Timestamptz()


class LedgerPosting(Table, tablename="ledger_postings", db=ENGINE):
    id = BigInt(primary_key=True)
    tenant_id = UUID()
    journal_id = UUID()
    account = Text()
    amount_minor = BigInt()
    currency = Varchar(length=3)


class BillingCustomer(Table, tablename="billing_customers", db=ENGINE):
    tenant_id = UUID(primary_key=True)
    stripe_customer_id = Text()
    created_at = Timestamptz()


class PaymentMethod(Table, tablename="payment_methods", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    stripe_payment_method_id = Text()
    brand = Text()
    last4 = Text()
    exp_month = Integer()
    exp_year = Integer()
    is_default = Boolean(default=False)
    created_at = Timestamptz()
    detached_at = Timestamptz(null=True, default=None)


class StripeWebhookEvent(Table, tablename="stripe_webhook_events", db=ENGINE):
    id = Text(primary_key=True)
    type = Text()
    received_at = Timestamptz()


class StripeWebhookRejection(Table, tablename="stripe_webhook_rejections", db=ENGINE):
    id = UUID(primary_key=True)
    reason = Text()
    received_at = Timestamptz()


class Refund(Table, tablename="refunds", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    invoice_id = UUID()
    payment_id = UUID()
    amount_minor = BigInt()
    currency = Varchar(length=3)
    reason = Text()
    status = Text()
    stripe_refund_id = Text(null=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Escrow(Table, tablename="escrows", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    payee_type = Text()
    payee_id = UUID()
    currency = Varchar(length=3)
    amount_minor = BigInt()
    inspection_days = Integer()
    status = Text()
    funding_attempts = Integer(default=0)
    funding_key = Text(null=True)
    stripe_payment_intent_id = Text(null=True)
    funding_decline_code = Text(null=True)
    funded_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class EscrowMilestone(Table, tablename="escrow_milestones", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    escrow_id = UUID()
    position = Integer()
    title = Text()
    amount_minor = BigInt()
    due_at = Timestamptz(null=True, default=None)
    status = Text()
    released_minor = BigInt(default=0)
    refunded_minor = BigInt(default=0)
    reason = Text(null=True)
    submitted_at = Timestamptz(null=True, default=None)
    updated_at = Timestamptz()
    auto_accept_attempts = Integer(default=0)
    auto_accept_error = Text(null=True)
    auto_accept_failed_at = Timestamptz(null=True, default=None)


class ResellerAgreement(Table, tablename="reseller_agreements", db=ENGINE):
    reseller_id = UUID(primary_key=True)
    currency = Varchar(length=3)
    rate_bps = Integer()
    tiers = JSONB()
    duration_months = Integer(null=True)
    pending_days = Integer()
    minimum_payout_minor = BigInt()
    updated_at = Timestamptz()


class CommissionEvent(Table, tablename="commission_events", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    reseller_id = UUID()
    kind = Text()
    source_id = UUID()
    invoice_id = UUID()
    invoice_number = Text()
    currency = Varchar(length=3)
    net_minor = BigInt()
    owned_since = Timestamptz()
    occurred_at = Timestamptz()


class ResellerStatement(Table, tablename="reseller_statements", db=ENGINE):
    id = UUID(primary_key=True)
    reseller_id = UUID()
    month = Date()
    currency = Varchar(length=3)
    carried_in_minor = BigInt()
    total_minor = BigInt()
    payable_minor = BigInt()
    carried_out_minor = BigInt()
    closed_at = Timestamptz()


class CommissionLineRow(Table, tablename="commission_lines", db=ENGINE):
    id = UUID(primary_key=True)
    reseller_id = UUID()
    event_id = UUID()
    closed_in = UUID()
    statement_id = UUID(null=True)
    kind = Text()
    owned_tenant_id = UUID()
    invoice_id = UUID()
    invoice_number = Text()
    currency = Varchar(length=3)
    net_minor = BigInt()
    rate_bps = Integer()
    commission_minor = BigInt()
    accrued_at = Timestamptz()
    payable_at = Timestamptz()


class PartnerPayout(Table, tablename="partner_payouts", db=ENGINE):
    id = UUID(primary_key=True)
    partner_id = UUID()
    source = Text()
    statement_id = UUID(null=True)
    payable_account = Text()
    up_to_posting_id = BigInt(null=True)
    amount_minor = BigInt()
    currency = Varchar(length=3)
    destination = Text(null=True)
    status = Text()
    attempts = Integer()
    stripe_transfer_id = Text(null=True)
    last_error = Text(null=True)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Trial(Table, tablename="trials", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    kind = Text()
    subject = Text()
    granted_by = UUID(null=True, default=None)
    granted_at = Timestamptz(null=True, default=None)
    used_by = UUID(null=True, default=None)
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class CommissionCloseIssue(Table, tablename="commission_close_issues", db=ENGINE):
    id = UUID(primary_key=True)
    reseller_id = UUID()
    month = Date()
    kind = Text()
    event_id = UUID(null=True)
    invoice_id = UUID(null=True)
    invoice_number = Text(null=True)
    currency = Varchar(length=3, null=True)
    net_minor = BigInt(null=True)
    reason = Text()
    detail = Text()
    attempts = Integer()
    resolved_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    updated_at = Timestamptz()


class Coupon(Table, tablename="coupons", db=ENGINE):
    id = UUID(primary_key=True)
    code = Text()
    name = Text()
    percent_off_bps = Integer(null=True, default=None)
    amount_off_minor = BigInt(null=True, default=None)
    currency = Varchar(length=3, null=True, default=None)
    duration = Text()
    duration_periods = Integer(null=True, default=None)
    plan_codes = Array(Text(), null=True, default=None)
    max_redemptions = Integer(null=True, default=None)
    redeem_by = Timestamptz(null=True, default=None)
    times_redeemed = Integer(default=0)
    created_by = UUID(null=True, default=None)
    archived_at = Timestamptz(null=True, default=None)
    archived_by = UUID(null=True, default=None)
    created_at = Timestamptz()


class Discount(Table, tablename="discounts", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    subscription_id = UUID()
    coupon_id = UUID()
    position = Integer()
    coupon_code = Text()
    name = Text()
    percent_off_bps = Integer(null=True, default=None)
    amount_off_minor = BigInt(null=True, default=None)
    currency = Varchar(length=3, null=True, default=None)
    duration = Text()
    duration_periods = Integer(null=True, default=None)
    plan_codes = Array(Text(), null=True, default=None)
    periods_used = Integer(default=0)
    amount_remaining_minor = BigInt(null=True, default=None)
    status = Text(default="active")
    ended_reason = Text(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()


class DiscountApplication(Table, tablename="discount_applications", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    discount_id = UUID()
    invoice_id = UUID()
    amount_minor = BigInt()
    created_at = Timestamptz()


class CreditLot(Table, tablename="credit_lots", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    currency = Varchar(length=3)
    source = Text()
    amount_minor = BigInt()
    remaining_minor = BigInt()
    expires_at = Timestamptz(null=True, default=None)
    expired_at = Timestamptz(null=True, default=None)
    invoice_id = UUID(null=True)
    payment_id = UUID(null=True)
    created_at = Timestamptz()


class CreditTransaction(Table, tablename="credit_transactions", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    currency = Varchar(length=3)
    lot_id = UUID()
    kind = Text()
    amount_minor = BigInt()
    invoice_id = UUID(null=True)
    payment_id = UUID(null=True)
    refund_id = UUID(null=True)
    created_at = Timestamptz()
    dispute_id = UUID(null=True)


class Dispute(Table, tablename="disputes", db=ENGINE):
    id = UUID(primary_key=True)
    tenant_id = UUID()
    invoice_id = UUID()
    payment_id = UUID()
    stripe_dispute_id = Text(unique=True)
    charge_id = Text(null=True, default=None)
    amount_minor = BigInt()
    currency = Varchar(length=3)
    fee_minor = BigInt(default=0)
    fee_currency = Varchar(length=3)
    fee_returned_minor = BigInt(default=0)
    reason = Text()
    status = Text(default="open")
    opened_at = Timestamptz()
    closed_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz()
    funds_withdrawn = Boolean()
    credits_taken_minor = BigInt(default=0)
    rebill_invoice_id = UUID(null=True, default=None)


class BillingDocument(Table, tablename="billing_documents", db=ENGINE):
    """An invoice's or credit note's PDF, stored once (billing.documents); never updated."""

    id = UUID(primary_key=True)
    tenant_id = UUID()
    invoice_id = UUID(null=True)
    credit_note_id = UUID(null=True)
    sha256 = Text()
    content = Bytea()
    byte_size = Integer()
    created_at = Timestamptz()


class MrrChange(Table, tablename="mrr_changes", db=ENGINE):
    id = BigInt(primary_key=True)
    tenant_id = UUID()
    currency = Varchar(length=3)
    effective_at = Timestamptz()
    mrr_minor = BigInt()
    cause = Text()
    recorded_at = Timestamptz()
