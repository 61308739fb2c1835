"""Queries of the billing domain. They run inside the caller's transaction and know nothing of HTTP.

Row-level security confines subscriptions, usage, invoices and credit notes to the tenant in context;
metrics and plans are a platform-wide catalogue that the app role may read and add to, never change.

Queries over many rows also name the tenant: the policies combine as `tenant = … OR system scope`, which
the planner cannot match to an index, so without `tenant_id = {}` they would scan every tenant's rows.
"""

from billing.repository._adjustments import (
    CREDIT_NOTE_COLUMNS,
    consume_pending_items,
    credit_notes_of,
    insert_credit_note,
    insert_pending_items,
    open_pending_items,
)
from billing.repository._catalogue import (
    METRIC_COLUMNS,
    PLAN_COLUMNS,
    get_metric,
    insert_metric,
    insert_plan_version,
    latest_plan,
    list_latest_plans,
    list_metrics,
    metrics_by_code,
    plan_version,
    plans_by_id,
)
from billing.repository._invoices import (
    INVOICE_COLUMNS,
    LINE_COLUMNS,
    due_drafts,
    finalize_invoice,
    get_invoice,
    insert_invoice,
    insert_lines,
    invoice_lines,
    invoices_billing_period,
    list_invoices,
    resource_tenant,
    set_invoice_status,
    take_invoice_number,
    tenant_billing_settings,
)
from billing.repository._locks import ROW_LOCKS
from billing.repository._subscriptions import (
    DUE,
    SUBSCRIPTION_COLUMNS,
    SUBSCRIPTION_FROM,
    USAGE_WINDOW_LOCK,
    WRITABLE_SUBSCRIPTION,
    count_due_subscriptions,
    due_subscriptions,
    get_subscription,
    insert_subscription,
    list_subscriptions,
    live_subscription,
    lock_usage_window,
    update_subscription,
)
from billing.repository._usage import aggregate_usage, insert_usage_events, stored_keys

__all__ = [
    "CREDIT_NOTE_COLUMNS",
    "DUE",
    "INVOICE_COLUMNS",
    "LINE_COLUMNS",
    "METRIC_COLUMNS",
    "PLAN_COLUMNS",
    "ROW_LOCKS",
    "SUBSCRIPTION_COLUMNS",
    "SUBSCRIPTION_FROM",
    "USAGE_WINDOW_LOCK",
    "WRITABLE_SUBSCRIPTION",
    "aggregate_usage",
    "consume_pending_items",
    "count_due_subscriptions",
    "credit_notes_of",
    "due_drafts",
    "due_subscriptions",
    "finalize_invoice",
    "get_invoice",
    "get_metric",
    "get_subscription",
    "insert_credit_note",
    "insert_invoice",
    "insert_lines",
    "insert_metric",
    "insert_pending_items",
    "insert_plan_version",
    "insert_subscription",
    "insert_usage_events",
    "invoice_lines",
    "invoices_billing_period",
    "latest_plan",
    "list_invoices",
    "list_latest_plans",
    "list_metrics",
    "list_subscriptions",
    "live_subscription",
    "lock_usage_window",
    "metrics_by_code",
    "open_pending_items",
    "plan_version",
    "plans_by_id",
    "resource_tenant",
    "set_invoice_status",
    "stored_keys",
    "take_invoice_number",
    "tenant_billing_settings",
    "update_subscription",
]
