import os

from piccolo.conf.apps import AppConfig

from tenants.tables import (
    ApiKey,
    AuditEvent,
    IdempotencyKey,
    Membership,
    Notification,
    Partner,
    PartnerCheckpoint,
    PartnerCheckpointHistory,
    PartnerMember,
    Tenant,
    TenantDataKey,
    User,
    WebhookOutboxEvent,
)

APP_CONFIG = AppConfig(
    app_name="tenants",
    migrations_folder_path=os.path.join(os.path.dirname(__file__), "piccolo_migrations"),
    table_classes=[
        User,
        Tenant,
        TenantDataKey,
        Membership,
        ApiKey,
        AuditEvent,
        IdempotencyKey,
        Partner,
        PartnerMember,
        PartnerCheckpoint,
        PartnerCheckpointHistory,
        WebhookOutboxEvent,
        Notification,
    ],
)
