"""Errors of the billing domain. `controlplane.core.problems` maps each base class to its HTTP status."""

from controlplane.core.errors import Conflict, InvalidInput, NotFound, PermissionDenied


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
