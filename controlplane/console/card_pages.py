"""A tenant's cards in the console: the list, and a new one added with Stripe.js, so the card's number goes from
the browser to Stripe and never to us. The page makes a SetupIntent; Stripe.js confirms it in the browser
(`static/cards.js`); the form then sends only the SetupIntent's id, which the billing service reads back from
Stripe and accepts only if it succeeded for this tenant's own customer.

This page alone lets Stripe's origin in: its Content-Security-Policy adds Stripe.js (and, in development,
localstripe, which serves its own stand-in for Stripe.js at `<its address>/js.stripe.com/v3/`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlsplit

from litestar import Controller, Request, Response, get, post
from litestar.response import Redirect
from msgspec import Meta

from billing import service as billing
from controlplane.console.middleware import CONTENT_SECURITY_POLICY
from controlplane.console.pages import signed_in, tenant_in_view
from controlplane.console.params import PAGE_SIZE, Form, TenantPath
from controlplane.console.rendering import page
from controlplane.core.errors import PermissionDenied
from controlplane.core.pagination import PageRequest
from controlplane.core.settings import Settings
from tenants import service as tenants
from tenants.roles import Permission

STRIPE_JS = "https://js.stripe.com/v3/"
_LOCALSTRIPE_KEY = "pk_test_localstripe"


@dataclass(frozen=True, slots=True)
class StripeJs:
    script: str  # where Stripe.js is loaded from
    publishable_key: str
    policy: str  # the page's Content-Security-Policy


def stripe_js(settings: Settings) -> StripeJs | None:
    """Stripe.js as this deployment loads it, or None when no publishable key is configured."""
    base = (settings.stripe_api_base or "").rstrip("/")
    if base:  # localstripe (or another stand-in) serves the script and the API on one origin
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
        script, api, frames = f"{base}/js.stripe.com/v3/", origin, origin
        key = settings.stripe_publishable_key or _LOCALSTRIPE_KEY
    else:
        if not settings.stripe_publishable_key:
            return None
        script, api, frames = STRIPE_JS, "https://api.stripe.com", "https://js.stripe.com https://hooks.stripe.com"
        key = settings.stripe_publishable_key
    script_origin = "{0.scheme}://{0.netloc}".format(urlsplit(script))
    policy = (
        CONTENT_SECURITY_POLICY.replace("script-src 'self'", f"script-src 'self' {script_origin}")
        .replace("connect-src 'self'", f"connect-src 'self' {api}")
        .replace("object-src 'none'", f"frame-src {frames}; object-src 'none'")
    )
    return StripeJs(script, key, policy)


@dataclass
class CardForm:
    csrf_token: str
    setup_intent: Annotated[str, Meta(pattern=r"^seti_[A-Za-z0-9]{1,64}$")]
    make_default: str = ""


class CardPages(Controller):
    path = "/tenants/{tenant_id:uuid}"
    include_in_schema = False

    @get("/payment-methods")
    async def cards(self, request: Request[Any, Any, Any], tenant_id: TenantPath) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_BILLING)
        found = await billing.list_payment_methods(tenant_id, PageRequest.parse(PAGE_SIZE, None))
        js = stripe_js(request.app.state.settings)
        setup = None
        if js is not None:
            try:
                await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
            except PermissionDenied:
                js = None
            else:
                setup = await billing.start_card_setup(request.app.state.payments, tenant_id)
        response = page(request, "cards.html", tenant=tenant, cards=found.items, stripe=js, setup=setup)
        if js is not None:
            response.headers["Content-Security-Policy"] = js.policy
        return response

    @post("/payment-methods", status_code=303)
    async def add_card(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, data: Annotated[CardForm, Form]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        await billing.finish_card_setup(
            request.app.state.payments, principal, tenant_id, data.setup_intent, data.make_default == "yes"
        )
        return Redirect(f"/console/tenants/{tenant_id}/payment-methods", status_code=303)
