"""Use cases of the billing domain: each opens its transaction, calls the pure core, writes and audits."""

from billing.addons import AddonNotFound, AddonSourceTaken, InvalidAddon
from billing.service._addons import attach_addon, end_addon, set_addon_quantity, validate_addon_charge
from billing.service._catalogue import create_metric, create_plan, get_plan, list_metrics, list_plans
from billing.service._commissions import (
    CloseReport,
    MonthNotOver,
    close_month,
    count_resellers_to_close,
    get_agreement,
    get_statement,
    list_payouts,
    list_statements,
    parse_month,
    put_agreement,
    send_payouts,
    statement_csv,
)
from billing.service._cycle import (
    CycleReport,
    bill_many,
    bill_subscription,
    count_due,
    due_batches,
    finalize_due_drafts,
    run_cycle,
)
from billing.service._dunning import CollectionReport, collect_due_invoices
from billing.service._erasure import detach_erased_cards, end_for_erased_tenant
from billing.service._escrow import (
    EscrowNotFunded,
    FundingDeclined,
    accept_overdue,
    cancel_escrow,
    create_escrow,
    fund_escrow,
    get_escrow,
    milestone_step,
)
from billing.service._invoices import (
    credit_invoice,
    get_invoice,
    list_credit_notes,
    list_invoices,
    upcoming_invoice,
    void_invoice,
)
from billing.service._ledger import LedgerReport, verify_ledger
from billing.service._lookups import known_metrics, live_subscription
from billing.service._payments import (
    NoPaymentMethod,
    add_payment_method,
    collect_invoice,
    list_payment_methods,
    pay_invoice,
)
from billing.service._refunds import RefundExceedsPaid, refund_invoice
from billing.service._subscriptions import (
    cancel_subscription,
    change_subscription,
    create_subscription,
    get_subscription,
    list_subscriptions,
    resume_subscription,
)
from billing.service._trials import TrialGrant, claim_trial, grant_trial
from billing.service._usage import current_usage, ingest
from billing.service._webhooks import receive_stripe_event

__all__ = [
    "AddonNotFound",
    "AddonSourceTaken",
    "CloseReport",
    "CollectionReport",
    "CycleReport",
    "EscrowNotFunded",
    "FundingDeclined",
    "InvalidAddon",
    "LedgerReport",
    "MonthNotOver",
    "NoPaymentMethod",
    "RefundExceedsPaid",
    "TrialGrant",
    "accept_overdue",
    "add_payment_method",
    "attach_addon",
    "bill_many",
    "bill_subscription",
    "cancel_escrow",
    "cancel_subscription",
    "change_subscription",
    "claim_trial",
    "close_month",
    "collect_due_invoices",
    "collect_invoice",
    "count_due",
    "count_resellers_to_close",
    "create_escrow",
    "create_metric",
    "create_plan",
    "create_subscription",
    "credit_invoice",
    "current_usage",
    "detach_erased_cards",
    "due_batches",
    "end_addon",
    "end_for_erased_tenant",
    "finalize_due_drafts",
    "fund_escrow",
    "get_agreement",
    "get_escrow",
    "get_invoice",
    "get_plan",
    "get_statement",
    "get_subscription",
    "grant_trial",
    "ingest",
    "known_metrics",
    "list_credit_notes",
    "list_invoices",
    "list_metrics",
    "list_payment_methods",
    "list_payouts",
    "list_plans",
    "list_statements",
    "list_subscriptions",
    "live_subscription",
    "milestone_step",
    "parse_month",
    "pay_invoice",
    "put_agreement",
    "receive_stripe_event",
    "refund_invoice",
    "resume_subscription",
    "run_cycle",
    "send_payouts",
    "set_addon_quantity",
    "statement_csv",
    "upcoming_invoice",
    "validate_addon_charge",
    "verify_ledger",
    "void_invoice",
]
