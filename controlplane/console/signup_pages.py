"""Sign-up, page by page: an email address, the emailed link, a password, the tenant, a plan (its trial starts at
once), then the tenant's first API key, shown once, with a two-line quickstart.

Each step is safe to repeat: asking again mails a new link (within the limits of `signup_links`), a used link is
refused, a person who already has a tenant is sent to it, and a tenant with a live subscription to its overview.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import PathParameter, QueryParameter
from litestar.response import Redirect

from billing import service as billing
from billing.money import decimal_of, round_minor
from controlplane.console.pages import signed_in, start_session, visitor_page
from controlplane.console.params import Form
from controlplane.console.rendering import page
from controlplane.console.signup_links import SIGNUP, SignupLinks, existing_account_message, verification_message
from controlplane.core.auth.passwords import MIN_PASSWORD_LENGTH
from controlplane.core.auth.principal import Principal
from controlplane.core.errors import Conflict, InvalidInput
from controlplane.core.mail import Mailer, is_one_address
from controlplane.core.pagination import PageRequest
from controlplane.core.settings import Settings
from tenants import service as tenants
from tenants.errors import TenantSlugTaken, UserExists
from tenants.roles import Permission

FIRST_KEY_NAME = "First key"
_PLANS = 100


@dataclass
class EmailForm:
    csrf_token: str
    email: str


@dataclass
class PasswordForm:
    csrf_token: str
    token: str
    password: str


@dataclass
class TenantForm:
    csrf_token: str
    name: str
    slug: str
    currency: str


@dataclass
class PlanForm:
    csrf_token: str
    plan_code: str


def links_of(request: Request[Any, Any, Any]) -> SignupLinks:
    links: SignupLinks = request.app.state.signup_links
    return links


def settings_of(request: Request[Any, Any, Any]) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


async def send_mail(request: Request[Any, Any, Any], message: Any, recipient: str) -> None:
    # One message on a connection of its own, in a thread (smtplib blocks); an outage is a named 503.
    await asyncio.to_thread(Mailer.from_settings(settings_of(request)).send, message, recipient)


async def _plans_in(currency: str | None = None) -> list[billing.PlanView]:
    plans = (await billing.list_plans(PageRequest.parse(_PLANS, None))).items
    return [plan for plan in plans if currency is None or plan.currency == currency]


def flat_price(plan: billing.PlanView) -> int:
    """The plan's flat charges per interval, rounded once to a whole minor unit (the catalogue keeps fractions)."""
    flat = sum(
        (decimal_of(charge.get("amount_minor", 0)) for charge in plan.charges if charge.get("type") == "flat"),
        Decimal(0),
    )
    return round_minor(flat)


async def _ever_subscribed(tenant_id: uuid.UUID) -> bool:
    return bool((await billing.list_subscriptions(tenant_id, PageRequest.parse(1, None))).items)


class SignupPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/signup")
    async def email_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        if isinstance(request.scope.get("user"), Principal):
            return Redirect("/console/")
        return await visitor_page(request, "signup.html", error=None, email="")

    @post("/signup", status_code=200)
    async def send_link(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[EmailForm, Form],
    ) -> Response[str]:
        email = data.email.strip().lower()
        if len(email) > 320 or not is_one_address(email):
            return page(request, "signup.html", status=400, error="Enter one email address.", email=email[:320])
        links = links_of(request)
        await links.allow(email, client_address(request))
        settings = settings_of(request)
        sender = settings.mail_from
        if not await tenants.can_sign_up(email):
            # Said by email only: the page reads the same whether the address has an account or not.
            message = existing_account_message(
                sender, email, f"{settings.public_url}/console/signin", settings.platform_name
            )
        else:
            link = await links.issue(email, SIGNUP)
            message = verification_message(sender, email, link, settings.platform_name)
        await send_mail(request, message, email)
        return page(request, "signup_sent.html", email=email)

    @get("/signup/verify")
    async def password_form(
        self, request: Request[Any, Any, Any], token: Annotated[str, QueryParameter(max_length=128)] = ""
    ) -> Response[Any]:
        email = await links_of(request).email_of(token, SIGNUP)
        if email is None:
            return page(request, "signup_expired.html", status=410)
        return await visitor_page(
            request, "signup_password.html", error=None, email=email, token=token, min_length=MIN_PASSWORD_LENGTH
        )

    @post("/signup/verify", status_code=303)
    async def create_account(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[PasswordForm, Form],
    ) -> Response[Any]:
        links = links_of(request)
        if len(data.password) < MIN_PASSWORD_LENGTH or len(data.password) > 1024:
            email = await links.email_of(data.token, SIGNUP)
            if email is None:
                return page(request, "signup_expired.html", status=410)
            error = f"Choose a password of {MIN_PASSWORD_LENGTH} to 1,024 characters."
            return page(
                request,
                "signup_password.html",
                status=400,
                error=error,
                email=email,
                token=data.token,
                min_length=MIN_PASSWORD_LENGTH,
            )
        email = await links.email_of(data.token, SIGNUP)
        if email is None:
            return page(request, "signup_expired.html", status=410)
        # The account is made first and the link spent after it: an outage in between is a 503 whose retry finds
        # the link still good. Two tabs sending one link make one account: the other is told it exists.
        try:
            user = await tenants.register_user(email, data.password)
        except UserExists:
            return page(request, "signup_exists.html", status=409)
        await links.spend(data.token, SIGNUP)
        return await start_session(request, user, "/console/signup/tenant")

    @get("/signup/tenant")
    async def tenant_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        principal = signed_in(request)
        mine = await tenants.list_tenants(principal, PageRequest.parse(1, None))
        if mine.items:
            return Redirect(f"/console/tenants/{mine.items[0].id}")
        return page(
            request,
            "signup_tenant.html",
            error=None,
            name="",
            slug="",
            currency="",
            currencies=sorted({plan.currency for plan in await _plans_in()}),
        )

    @post("/signup/tenant", status_code=303)
    async def create_tenant(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[TenantForm, Form],
    ) -> Response[Any]:
        principal = signed_in(request)
        currencies = sorted({plan.currency for plan in await _plans_in()})
        try:
            if data.currency not in currencies:
                raise InvalidInput("Choose one of the currencies offered.")
            tenant = await tenants.create_own_tenant(principal, data.name, data.slug.strip().lower(), data.currency)
        except tenants.AlreadyHasTenant:
            return Redirect("/console/", status_code=303)
        except (InvalidInput, TenantSlugTaken) as error:
            message = "That slug is taken: choose another." if isinstance(error, TenantSlugTaken) else error.detail
            return page(
                request,
                "signup_tenant.html",
                status=400,
                error=message,
                name=data.name[:200],
                slug=data.slug[:63],
                currency=data.currency[:3],
                currencies=currencies,
            )
        return Redirect(f"/console/tenants/{tenant.id}/start", status_code=303)

    @get("/tenants/{tenant_id:uuid}/start")
    async def plan_form(
        self, request: Request[Any, Any, Any], tenant_id: Annotated[uuid.UUID, PathParameter()]
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="GET")
        if await _ever_subscribed(tenant_id):
            return Redirect(f"/console/tenants/{tenant_id}/subscription")
        tenant = await tenants.get_tenant(tenant_id)
        plans = await _plans_in(tenant.currency)
        return page(request, "signup_plan.html", tenant=tenant, plans=plans, flat_price=flat_price, error=None)

    @post("/tenants/{tenant_id:uuid}/start", status_code=200)
    async def start_trial(
        self,
        request: Request[Any, Any, Any],
        tenant_id: Annotated[uuid.UUID, PathParameter()],
        data: Annotated[PlanForm, Form],
    ) -> Response[Any]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.MANAGE_BILLING, method="POST")
        if await _ever_subscribed(tenant_id):  # a repeat (the first one stands), or not sign-up any more
            return Redirect(f"/console/tenants/{tenant_id}", status_code=303)
        try:
            subscription = await billing.create_subscription(
                principal, tenant_id, billing.NewSubscription(plan_code=data.plan_code[:63], seats=1)
            )
        except Conflict:  # a repeat that raced the first: the first one stands
            return Redirect(f"/console/tenants/{tenant_id}", status_code=303)
        # The first key, unless the tenant made one already (on its API keys page, before choosing a plan).
        keys = await tenants.list_api_keys(tenant_id, PageRequest.parse(1, None))
        key = None
        if not keys.items:
            key = await tenants.create_api_key(principal, tenant_id, FIRST_KEY_NAME, "tenant_member")
        tenant = await tenants.get_tenant(tenant_id)
        plan = await billing.get_plan(subscription.plan_code, subscription.plan_version)
        metric = next((charge["metric_code"] for charge in plan.charges if charge.get("metric_code")), None)
        return page(
            request,
            "welcome.html",
            tenant=tenant,
            subscription=subscription,
            api_key=key.secret if key else None,
            public_url=settings_of(request).public_url,
            metric=metric,
            now=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
