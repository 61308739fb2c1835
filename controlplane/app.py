"""The composition root: `create_app(settings)` builds the Litestar application."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import (
    JsonRenderPlugin,
    OpenAPIRenderPlugin,
    RapidocRenderPlugin,
    RedocRenderPlugin,
    StoplightRenderPlugin,
    SwaggerRenderPlugin,
    YamlRenderPlugin,
)
from litestar.openapi.spec import Components, SecurityScheme
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Receive, Scope, Send

from billing import hooks as billing_hooks
from billing import service as billing_service
from billing.api.controllers import (
    AnalyticsController,
    CommissionController,
    CouponController,
    DisputeController,
    DocumentController,
    EscrowController,
    InvoiceController,
    MetricController,
    PaymentMethodController,
    PlanController,
    StripeWebhookController,
    SubscriptionController,
    SubscriptionDiscountController,
    TaxRateController,
    TenantSubscriptionController,
    TenantTaxRateController,
    TrialGrantController,
    UsageController,
    WalletController,
)
from billing.business_metrics import BusinessGauges
from billing.documents import service as documents
from billing.notices import service as notices
from billing.payments import service as payments_service
from billing.payments.gateway import StripeGateway
from controlplane.console import VISITOR_KEY_PURPOSE, ConsoleMiddleware, SessionStore, SignupLinks, console_router
from controlplane.core import context, db, db_credentials
from controlplane.core.auth.throttle import SignInThrottle
from controlplane.core.auth.tokens import ReloadingTokenSigner
from controlplane.core.idempotency_middleware import IdempotencyMiddleware
from controlplane.core.invalidation import Listener
from controlplane.core.metrics import HTTPMetricsMiddleware, ScrapeRefresher
from controlplane.core.openapi import ClosedStructSchemaPlugin
from controlplane.core.pii import PiiCipher
from controlplane.core.problems import EXCEPTION_HANDLERS
from controlplane.core.ratelimit.limiter import RateLimiter
from controlplane.core.ratelimit.middleware import RateLimitMiddleware
from controlplane.core.ratelimit.refusals import RefusalStreaks
from controlplane.core.ratelimit.store import GcraStore
from controlplane.core.secrets import JWT_KEYS_PATH, SecretStore
from controlplane.core.settings import Settings, SettingsError
from controlplane.core.stripe_client import WebhookSecret, make_stripe_client
from controlplane.core.tenant_vault import TenantVault
from controlplane.health import live, ready, scrape
from controlplane.ops.rotation import SecretAgeGauge
from controlplane.ops.startup_checks import refuse_unsafe_database_role, refuse_unsafe_production
from plugins_registry import service as plugins
from plugins_registry.api.controllers import (
    EntitlementController,
    LicenseController,
    LicensingController,
    PluginAnalyticsController,
    PluginController,
    PublisherController,
    TenantLicenseController,
    TenantPluginController,
)
from plugins_registry.api.entitlements import EntitlementFastPath
from plugins_registry.signer import LicenseSigner
from tenants import billing_contact
from tenants import hooks as tenant_hooks
from tenants.api.authentication import BearerAuthenticationMiddleware
from tenants.api.controllers import (
    ApiKeyController,
    AuditController,
    MemberController,
    TenantController,
    TenantSecretsController,
    TenantWebhookEventController,
)
from tenants.api.guards import may_act_in
from tenants.api.limits import TenantLimitsController
from tenants.api.notifications import PartnerNotificationController, TenantNotificationController
from tenants.api.partners import PartnerController, ResellerController, TenantOwnerController
from tenants.api.tokens import issue_token
from tenants.notifications import attachments as notification_attachments
from tenants.notifications.events import INVOICE_PDF

log = logging.getLogger("controlplane")

# The docs pages' JavaScript and CSS, pinned and served by the app itself (see its README): the pages work offline.
DOCS_ASSETS = Path(__file__).parent / "static" / "docs"
DOCS_ASSETS_PATH = "/schema/assets"


def _docs_pages() -> list[OpenAPIRenderPlugin]:
    """The pages Litestar serves under `/schema` by default (Redoc also at the root), each pointed at the
    vendored copy of its renderer instead of a CDN, with no favicon or web fonts fetched from elsewhere."""
    assets = DOCS_ASSETS_PATH
    return [
        # The first one is also the root page, `/schema`.
        RedocRenderPlugin(js_url=f"{assets}/redoc-2.5.4/redoc.standalone.js", google_fonts=False, favicon=""),
        SwaggerRenderPlugin(
            js_url=f"{assets}/swagger-ui-dist-5.18.2/swagger-ui-bundle.js",
            css_url=f"{assets}/swagger-ui-dist-5.18.2/swagger-ui.css",
            standalone_preset_js_url=f"{assets}/swagger-ui-dist-5.18.2/swagger-ui-standalone-preset.js",
            favicon="",
        ),
        StoplightRenderPlugin(
            js_url=f"{assets}/stoplight-elements-7.7.18/web-components.min.js",
            css_url=f"{assets}/stoplight-elements-7.7.18/styles.min.css",
            favicon="",
        ),
        RapidocRenderPlugin(js_url=f"{assets}/rapidoc-9.3.4/rapidoc-min.js", favicon=""),
        JsonRenderPlugin(),
        YamlRenderPlugin(),
    ]


def _request_id_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = next((value for name, value in scope["headers"] if name == b"x-request-id"), b"")
        request_id = context.request_id_from(incoming)
        token = context.request_id.set(request_id)

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            context.request_id.reset(token)

    return middleware


class ControlPlane(Litestar):
    """Litestar with request metrics around the whole handler, so unrouted requests (404) count too;
    Litestar's own middleware only runs for requests that matched a route. Inside them, before routing, the
    entitlement check's fast path (plugins_registry.api.entitlements)."""

    def _create_asgi_handler(self) -> ASGIApp:
        return HTTPMetricsMiddleware(EntitlementFastPath(super()._create_asgi_handler()))


def create_app(settings: Settings) -> Litestar:
    settings.require_services()
    # A paid invoice renews the tenant's plugin licenses, in the payment's own transaction.
    billing_hooks.on_invoice_paid(plugins.renew_on_payment)
    # A tenant's admins are told of a disputed payment and of how the dispute ended.
    billing_hooks.on_dispute_changed(notices.dispute_changed)
    # Staff grant a plugin's trial by the plugin's id; the registry checks it.
    billing_hooks.check_plugins_with(plugins.require_plugin)
    # A tenant's erasure ends its subscription, add-ons, collection and licenses (in the tenant's context, after
    # the erasure commits; a retried DELETE finishes them).
    tenant_hooks.on_tenant_erased(billing_service.end_for_erased_tenant)
    tenant_hooks.on_tenant_erased(plugins.revoke_for_erased_tenant)
    # Stored invoice documents carry the tenant's billing address: its erasure removes them (the invoices stay).
    tenant_hooks.on_tenant_erased(documents.forget_for_erased_tenant)
    # The platform that issues invoice and credit-note documents (PLATFORM_NAME, PLATFORM_ADDRESS).
    documents.configure(settings)
    # The invoice.finalized email carries the invoice's PDF.
    notification_attachments.provide(INVOICE_PDF, documents.invoice_pdf_for_attachment)
    # A tenant's currency is checked against its subscription and invoices; a reseller's new tenants are
    # billed in the currency of the agreement staff set with it.
    tenant_hooks.on_currency_change(billing_service.currency_lock)
    tenant_hooks.on_reseller_currency(billing_service.reseller_currency)
    # A failed payment's notice names the next retry of the configured dunning schedule.
    payments_service.use_dunning_schedule(settings.dunning_days)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        secret_store = await asyncio.to_thread(SecretStore.connect, settings)
        await asyncio.to_thread(refuse_unsafe_production, settings, secret_store)
        app.state.secret_store = secret_store
        app.state.payments = StripeGateway(
            await asyncio.to_thread(make_stripe_client, settings, secret_store),
            reload=lambda: make_stripe_client(settings, secret_store),
        )
        app.state.stripe_webhook_secret = WebhookSecret(secret_store)
        # After the erasure commits, its cards leave Stripe (through this app's gateway, read at call time).
        tenant_hooks.after_erasure(
            "billing.detach_cards", lambda tenant_id: billing_service.detach_erased_cards(app.state.payments, tenant_id)
        )
        # Follows rotations (`controlplane secrets rotate`): re-read periodically and on an unknown kid.
        app.state.token_signer = ReloadingTokenSigner(
            await asyncio.to_thread(secret_store.read, JWT_KEYS_PATH),
            lambda: secret_store.read(JWT_KEYS_PATH),
            issuer=settings.jwt_issuer,
            ttl_seconds=settings.jwt_ttl_seconds,
        )
        app.state.secret_ages = SecretAgeGauge(secret_store)
        app.state.business_gauges = BusinessGauges()
        app.state.licensing = plugins.Licensing(LicenseSigner(secret_store.client), settings.license_renewal_grace)
        app.state.pii_cipher = PiiCipher(secret_store.client)
        billing_contact.use(app.state.pii_cipher)
        app.state.tenant_vault = TenantVault(secret_store.client)
        redis_client = aioredis.from_url(settings.redis_url, socket_timeout=2.0, socket_connect_timeout=2.0)
        app.state.sign_in_throttle = SignInThrottle(redis_client)
        signer: ReloadingTokenSigner = app.state.token_signer
        app.state.console_sessions = SessionStore(redis_client, lambda: signer.derived_keys(VISITOR_KEY_PURPOSE))
        app.state.signup_links = SignupLinks(redis_client, settings.public_url)
        app.state.redis = redis_client
        # Its own connections with short timeouts: an unreachable Redis costs a request half a second at most
        # (and then none while the limiter pauses), not the two seconds other Redis calls may wait.
        limiter_redis = aioredis.from_url(settings.redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
        streaks = RefusalStreaks(limiter_redis)
        app.state.rate_limiter = RateLimiter(
            GcraStore(limiter_redis),
            settings.rate_limits,
            billing_service.tenant_rate_limit_percent,
            may_act_in,
            enabled=settings.rate_limit_enabled,
            streaks=streaks,
        )
        app.state.refusal_streaks = ScrapeRefresher("rate limit refusal streaks", streaks.refresh_gauge, interval=10.0)
        # AppRole tokens expire: renewed, or replaced by a new login, before they do.
        token_keeper = asyncio.create_task(secret_store.keep_token_alive(), name="openbao-token")
        try:
            # With BAO_DB_STATIC_ROLE, each new connection reads OpenBao's current password for the app role.
            db_password = db_credentials.password_for(settings, secret_store)
            if db_password is not None:
                await db_password()  # read first: a misconfigured role stops startup here, with its reason
            await db.start_pool(
                settings.database_url,
                min_size=settings.db_pool_min_size,
                max_size=settings.db_pool_max_size,
                password=db_password,
            )
            listener = Listener(settings.database_url, password=db_password)
            try:
                await refuse_unsafe_database_role()
                await listener.start()
                # What startup built lives as long as the process: kept out of the collector's full passes, which
                # would otherwise walk it all (tens of ms, paid by whichever request triggers one).
                gc.collect()
                gc.freeze()
                yield
            finally:
                await listener.stop()
                await db.stop_pool()
        finally:
            token_keeper.cancel()
            await asyncio.gather(token_keeper, return_exceptions=True)
            await redis_client.aclose()
            await limiter_redis.aclose()

    return ControlPlane(
        route_handlers=[
            live,
            ready,
            scrape,
            issue_token,
            TenantController,
            MemberController,
            TenantSecretsController,
            TenantLimitsController,
            ApiKeyController,
            AuditController,
            MetricController,
            PlanController,
            TaxRateController,
            TenantTaxRateController,
            TenantSubscriptionController,
            TrialGrantController,
            SubscriptionController,
            SubscriptionDiscountController,
            CouponController,
            UsageController,
            InvoiceController,
            DocumentController,
            PaymentMethodController,
            WalletController,
            EscrowController,
            StripeWebhookController,
            PublisherController,
            PluginController,
            TenantPluginController,
            TenantLicenseController,
            TenantWebhookEventController,
            LicenseController,
            LicensingController,
            EntitlementController,
            PluginAnalyticsController,
            ResellerController,
            PartnerController,
            TenantOwnerController,
            TenantNotificationController,
            PartnerNotificationController,
            CommissionController,
            DisputeController,
            AnalyticsController,
            create_static_files_router(DOCS_ASSETS_PATH, directories=[DOCS_ASSETS], name="docs-assets"),
            console_router(),
        ],
        lifespan=[lifespan],
        state=State({"settings": settings}),
        middleware=[
            _request_id_middleware,
            DefineMiddleware(BearerAuthenticationMiddleware, exclude=["^/schema", "^/console"]),
            ConsoleMiddleware(),
            RateLimitMiddleware(),
            IdempotencyMiddleware(settings.idempotency_ttl_seconds, settings.max_request_body_bytes, may_act_in),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        plugins=[ClosedStructSchemaPlugin()],
        request_max_body_size=settings.max_request_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Control plane API",
            version="1.0.0",
            path="/schema",
            render_plugins=_docs_pages(),
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT or API key")
                }
            ),
        ),
        cors_config=CORSConfig(allow_origins=list(settings.cors_origins)) if settings.cors_origins else None,
        debug=settings.debug,
    )


def create_app_from_env() -> Litestar:
    """Entry point for uvicorn (`--factory`): settings read once from the environment."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        raise SystemExit(f"controlplane: {exc}") from exc
    if problems := settings.production_problems():
        raise SystemExit("controlplane: refusing to start in production: " + "; ".join(problems))
    return create_app(settings)
