"""Errors of the billing domain, the whole tree. `controlplane.core.problems` maps each base class to its HTTP
status. This module imports nothing but `controlplane.core.errors` and the standard library, so the domain's pure
modules (`billing.escrow.rules`, `billing.commissions.rules`, `billing.ledger.rules`, ...) raise from here too."""

from controlplane.core.errors import (
    BadRequest,
    Conflict,
    InvalidInput,
    NotFound,
    PaymentRequired,
    PermissionDenied,
    ServiceUnavailable,
)


class BillingInvalid(InvalidInput):
    code = "invalid_billing_input"
    title = "The billing input is not valid"


class UnknownCurrency(BillingInvalid):
    code = "unknown_currency"
    title = "The currency is not supported"


class CurrencyMismatch(BillingInvalid):
    code = "currency_mismatch"
    title = "Amounts in different currencies cannot be combined"


class InvalidAmount(BillingInvalid):
    code = "invalid_amount"
    title = "The amount is not valid"


class InvalidCharge(BillingInvalid):
    code = "invalid_charge"
    title = "A charge of the plan is not valid"


class PercentageNeedsSum(BillingInvalid):
    code = "percentage_needs_sum_metric"
    title = "A percentage charge rates a metric that sums its events' values"


class InvalidOneOffInvoice(BillingInvalid):
    code = "invalid_one_off_invoice"
    title = "The one-off invoice is not valid"


class InvalidStart(BillingInvalid):
    code = "invalid_start"
    title = "The subscription's start is not allowed"


class MetricNotFound(NotFound):
    code = "metric_not_found"
    title = "No billable metric has this code"


class PlanNotFound(NotFound):
    code = "plan_not_found"
    title = "No plan has this code"


class SubscriptionNotFound(NotFound):
    code = "subscription_not_found"
    title = "Subscription not found"


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"
    title = "Invoice not found"


class EscrowNotFound(NotFound):
    code = "escrow_not_found"
    title = "Escrow agreement not found"


class MetricExists(Conflict):
    code = "metric_exists"
    title = "A billable metric with this code exists"


class SubscriptionExists(Conflict):
    code = "subscription_exists"
    title = "The tenant already has a live subscription"


class InvalidSubscriptionTransition(Conflict):
    code = "invalid_subscription_transition"
    title = "The subscription cannot do this in its current state"


class RenewalNotBilled(Conflict):
    """A change is previewed on a subscription whose period has ended before the billing cycle billed its renewal:
    the change would bill the renewal first, and what it bills then depends on that invoice."""

    code = "renewal_not_billed"
    title = "The subscription's period has ended and its renewal is not billed yet"


class InvalidInvoiceTransition(Conflict):
    code = "invalid_invoice_transition"
    title = "The invoice cannot do this in its current state"


class CreditExceedsRemainder(Conflict):
    code = "credit_exceeds_remainder"
    title = "The credit is more than the invoice's creditable remainder"


class PastStartForbidden(PermissionDenied):
    code = "past_start_forbidden"
    title = "Only platform staff may start a subscription in the past"


class InvalidTrialGrant(BillingInvalid):
    code = "invalid_trial_grant"
    title = "A trial grant names exactly one plan_code or plugin_id"


class AmountOutOfRange(Conflict):
    """A line or an invoice beyond the bounds of `billing.limits` (e.g. usage accumulated past what any invoice
    may bill). The billing cycle records it on the subscription; a cancel or change that would bill it is
    refused with this code."""

    code = "amount_out_of_range"
    title = "The amount is beyond what an invoice may bill"


class PaymentInFlight(Conflict):
    code = "payment_in_flight"
    title = "A payment of this invoice is waiting for Stripe's answer; retry once it has settled"


class RefundInFlight(Conflict):
    code = "refund_in_flight"
    title = "Another refund of this invoice is waiting for Stripe's answer; send that one again or wait"


class AmountNotChargeable(BillingInvalid):
    code = "amount_not_chargeable"
    title = "Stripe cannot charge this amount in this currency"


# -- usage batches --------------------------------------------------------------------------------------------


class InvalidBatch(ValueError):
    """The body is not `{"events": [...], "tenant_id"?}` at all."""


class BatchTooLarge(BillingInvalid):
    code = "batch_too_large"
    # The number is `billing.usage.MAX_BATCH`, written out because this module imports nothing else of billing
    # (tests/unit/billing/test_errors.py keeps the two the same).
    title = "A usage batch holds at most 1000 events"


class InvalidUsageBatch(BillingInvalid):
    code = "invalid_usage_batch"
    title = 'The body must be {"events": [...]} with an optional tenant_id'


# -- add-ons --------------------------------------------------------------------------------------------------


class InvalidAddon(BillingInvalid):
    code = "invalid_addon"
    title = "The subscription add-on is not valid"


class AddonNotFound(NotFound):
    code = "addon_not_found"
    title = "No subscription add-on has this source id"


class AddonSourceTaken(Conflict):
    code = "addon_source_taken"
    title = "This source id already names another tenant's add-on"


# -- ledger ---------------------------------------------------------------------------------------------------


class UnbalancedJournal(BillingInvalid):
    code = "unbalanced_journal"
    title = "A journal's postings do not sum to zero"


# -- Stripe ---------------------------------------------------------------------------------------------------


class InvalidPaymentMethod(InvalidInput):
    code = "invalid_payment_method"
    title = "Stripe does not accept this payment method"
    stripe_code = "invalid_request"  # Stripe's error code: recorded, not shown
    payment_intent_id: str | None = None


class PaymentProviderUnavailable(ServiceUnavailable):
    code = "payment_provider_unavailable"
    title = "Stripe could not be reached; nothing was charged twice, retry later"
    dependency = "stripe"


class WebhookRejected(BadRequest):
    code = "webhook_rejected"
    title = "The webhook is unsigned, forged or stale"

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason  # recorded, not shown


# -- payments and refunds -------------------------------------------------------------------------------------


class NoPaymentMethod(Conflict):
    code = "no_payment_method"
    title = "The tenant has no default payment method"


class RefundExceedsPaid(Conflict):
    code = "refund_exceeds_paid"
    title = "The refund is more than what was paid and not yet refunded"


# -- escrow ---------------------------------------------------------------------------------------------------


class EscrowError(BillingInvalid):
    code = "invalid_escrow"
    title = "The escrow agreement is not valid"


class EscrowPayeeNotFound(EscrowError):
    code = "escrow_payee_not_found"
    title = "No partner of the payee's type has this id"


class EscrowPayeeNotQualified(EscrowError):
    code = "escrow_payee_not_qualified"
    title = "The payee has not completed its partner qualification"


class InvalidMilestoneTransition(Conflict):
    code = "invalid_milestone_transition"
    title = "The milestone cannot do this in its current state"


class EscrowUnderReview(Conflict):
    code = "escrow_milestone_under_review"
    title = "A milestone is under review; acceptance, its inspection window or staff decide its money"


class EscrowNotFunded(Conflict):
    code = "escrow_not_funded"
    title = "The escrow agreement is not funded"


class FundingDeclined(PaymentRequired):
    code = "funding_declined"
    title = "The payer's card was declined; the agreement is not funded"


# -- reseller commissions -------------------------------------------------------------------------------------


class InvalidAgreement(BillingInvalid):
    code = "invalid_commission_agreement"
    title = "The commission agreement is not valid"


class InvalidCommissionEvent(BillingInvalid):
    code = "invalid_commission_event"
    title = "The paid invoice or refund cannot be commissioned"


class MonthNotOver(BillingInvalid):
    code = "month_not_over"
    title = "Only a month that has ended can be closed"


class AgreementNotFound(NotFound):
    code = "agreement_not_found"
    title = "This reseller has no commission agreement yet"


class InvalidMonth(BillingInvalid):
    code = "invalid_month"
    title = "The month is not YYYY-MM"


class InvalidReportRange(BillingInvalid):
    code = "invalid_report_range"
    title = "The months asked for cannot be reported"


class EarlierMonthNotClosed(Conflict):
    code = "earlier_month_not_closed"
    title = "An earlier month of this reseller is not closed yet; it closes first"


class LaterMonthClosed(Conflict):
    code = "later_month_closed"
    title = "A later month of this reseller is closed already; closing this one would carry its balance twice"


class StatementNotFound(NotFound):
    code = "statement_not_found"
    title = "No statement for this month"


class PayoutPayeeUnknown(Conflict):
    code = "payout_payee_unknown"
    title = "A payee balance names no partner of its type; staff must settle it"


# -- coupons and discounts ------------------------------------------------------------------------------------


class InvalidCoupon(BillingInvalid):
    code = "invalid_coupon"
    title = "The coupon's terms are not valid"


class CouponNotFound(NotFound):
    code = "coupon_not_found"
    title = "No coupon has this code"


class CouponExists(Conflict):
    code = "coupon_exists"
    title = "A coupon with this code exists with other terms; coupons never change"


class DiscountNotFound(NotFound):
    code = "discount_not_found"
    title = "The subscription has no discount with this id"


class CouponNotRedeemable(Conflict):
    """Base of the refusals of a redemption; each has its own code."""

    code = "coupon_not_redeemable"
    title = "The coupon cannot be redeemed"


class CouponArchived(CouponNotRedeemable):
    code = "coupon_archived"
    title = "The coupon is archived"


class CouponExpired(CouponNotRedeemable):
    code = "coupon_expired"
    title = "The coupon's redeem_by has passed"


class CouponExhausted(CouponNotRedeemable):
    code = "coupon_exhausted"
    title = "The coupon has been redeemed its max_redemptions times"


class CouponCurrencyMismatch(CouponNotRedeemable):
    code = "coupon_currency_mismatch"
    title = "The coupon's amount is in another currency than the subscription's plan"


class CouponPlanMismatch(CouponNotRedeemable):
    code = "coupon_plan_mismatch"
    title = "The coupon is restricted to other plans than the subscription's"


class CouponAlreadyRedeemed(CouponNotRedeemable):
    code = "coupon_already_redeemed"
    title = "The tenant has redeemed this coupon already; a coupon is redeemed once per tenant"


class TaxRateNotFound(NotFound):
    code = "tax_rate_not_found"
    title = "No tax rate has this code"


class TaxRateExists(Conflict):
    code = "tax_rate_exists"
    title = "A tax rate with this code exists with other figures; tax rates never change"


class InvalidTaxRate(BillingInvalid):
    code = "invalid_tax_rate"
    title = "The tax rate is not valid"


class UnknownTaxRate(BillingInvalid):
    code = "unknown_tax_rate"
    title = "A tax rate of the list is not in the catalogue"


class TaxRateArchived(Conflict):
    code = "tax_rate_archived"
    title = "An archived tax rate cannot be given to a tenant"


class DuplicateTaxRate(BillingInvalid):
    code = "duplicate_tax_rate"
    title = "A tax rate appears twice in the list"


class TooManyTaxRates(BillingInvalid):
    code = "too_many_tax_rates"
    title = "A tenant has at most 10 tax rates"


class TaxRatesTooHigh(BillingInvalid):
    code = "tax_rates_too_high"
    title = "The tax rates together are more than 100 %"


# -- wallets (prepaid credits) ----------------------------------------------------------------------------------


class InvalidTopUp(BillingInvalid):
    code = "invalid_top_up"
    title = "The top-up's amount or expiry is not allowed"


class GrantStaffOnly(PermissionDenied):
    code = "credit_grant_staff_only"
    title = "Only platform staff may grant credit (a top-up with paid: false)"


class TopUpDeclined(PaymentRequired):
    """The card was charged for a credit purchase and refused it: the purchase invoice is voided, no credit
    is added."""

    code = "top_up_declined"
    title = "The card was declined; no credit was added"


class CreditPurchaseNotCreditable(Conflict):
    code = "credit_purchase_not_creditable"
    title = "A credit purchase is given back by a refund of its unapplied credit, not by a credit note"


# -- disputes -----------------------------------------------------------------------------------------------------


class InvalidDisputeEvent(BillingInvalid):
    """A Stripe dispute event the control plane cannot apply (a malformed or hostile object, an amount that is not
    the payment's): recorded as received and ignored, never answered with an error (Stripe would retry it)."""

    code = "invalid_dispute_event"
    title = "The Stripe dispute event cannot be applied"

    def __init__(self, detail: str, *, reason: str) -> None:
        super().__init__(detail)
        self.reason = reason  # a bounded word for the log: amount, currency, fee, id, ...


class CreditNoteNotFound(NotFound):
    code = "credit_note_not_found"
    title = "Credit note not found"


class DisputePaymentPending(Conflict):
    """A dispute of a charge whose success the control plane has not been told yet (its collection's answer was
    lost, or recorded as a failure that Stripe will correct): answered 409 and left unrecorded, so Stripe sends
    the event again (it retries any answer but a 2xx) until the payment's success has been applied. A 409, not
    a 503: no dependency is down, and the outage alert must not fire."""

    code = "dispute_payment_pending"
    title = "The disputed payment has not settled here yet; Stripe will send the dispute again"


class InvoiceDisputed(Conflict):
    """A card dispute of the invoice's payment is open (the money is with the card network) or lost (it went
    back to the cardholder): a credit note or a refund would give it back a second time. A won dispute leaves
    the invoice creditable as before."""

    code = "invoice_disputed"
    title = "A card dispute of this invoice is open or lost; it cannot be credited or refunded"
