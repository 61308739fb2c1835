import os

from piccolo.conf.apps import AppConfig

from billing.tables import (
    BillableMetric,
    BillingCustomer,
    CreditNote,
    Escrow,
    EscrowMilestone,
    Invoice,
    InvoiceLine,
    LedgerJournal,
    LedgerPosting,
    Payment,
    PaymentMethod,
    PendingInvoiceItem,
    Plan,
    Refund,
    StripeWebhookEvent,
    StripeWebhookRejection,
    Subscription,
    SubscriptionAddon,
    UsageEvent,
)

APP_CONFIG = AppConfig(
    app_name="billing",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[
        BillableMetric,
        Plan,
        Subscription,
        SubscriptionAddon,
        UsageEvent,
        Invoice,
        InvoiceLine,
        PendingInvoiceItem,
        CreditNote,
        BillingCustomer,
        PaymentMethod,
        Payment,
        LedgerJournal,
        LedgerPosting,
        Refund,
        Escrow,
        EscrowMilestone,
        StripeWebhookEvent,
        StripeWebhookRejection,
    ],
    migration_dependencies=["tenants.piccolo_app"],
)
