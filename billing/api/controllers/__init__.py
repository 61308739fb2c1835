"""HTTP for the billing domain. Thin: parse, call the service, shape."""

from billing.api.controllers._analytics import AnalyticsController
from billing.api.controllers._catalogue import MetricController, PlanController
from billing.api.controllers._commissions import CommissionController
from billing.api.controllers._coupons import CouponController, SubscriptionDiscountController
from billing.api.controllers._disputes import DisputeController
from billing.api.controllers._documents import DocumentController
from billing.api.controllers._escrow import EscrowController
from billing.api.controllers._invoices import InvoiceController
from billing.api.controllers._payments import PaymentMethodController
from billing.api.controllers._subscriptions import SubscriptionController, TenantSubscriptionController
from billing.api.controllers._taxes import TaxRateController, TenantTaxRateController
from billing.api.controllers._trials import TrialGrantController
from billing.api.controllers._usage import UsageController
from billing.api.controllers._wallets import WalletController
from billing.api.controllers._webhooks import StripeWebhookController

__all__ = [
    "AnalyticsController",
    "CommissionController",
    "CouponController",
    "DisputeController",
    "DocumentController",
    "EscrowController",
    "InvoiceController",
    "MetricController",
    "PaymentMethodController",
    "PlanController",
    "StripeWebhookController",
    "SubscriptionController",
    "SubscriptionDiscountController",
    "TaxRateController",
    "TenantSubscriptionController",
    "TenantTaxRateController",
    "TrialGrantController",
    "UsageController",
    "WalletController",
]
