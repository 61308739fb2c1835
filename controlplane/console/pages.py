"""The console's pages: signing in and out, the home page (the person's tenants and the partners they
administer), and a tenant's overview, invoices and API keys.

Each page calls the same services as the API with the signed-in person's principal, after the same access
check (`tenants.service.authorize`), so roles and row-level security apply unchanged. Every form carries the
session's CSRF token (`csrf_protected`, on every unsafe request under /console).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import Body, PathParameter
from litestar.response import Redirect
from litestar.types import ExceptionHandlersMap

from billing import service as billing
from billing.documents import service as documents
from billing.errors import InvoiceNotFound, SubscriptionNotFound
from controlplane.console.middleware import SESSION_STATE, console_session
from controlplane.console.params import PAGE_SIZE, Cursor, TenantPath
from controlplane.console.rendering import page
from controlplane.console.sessions import MAX_SECONDS, SessionStore, cookie_shape
from controlplane.core import context, metrics
from controlplane.core.auth.principal import Principal
from controlplane.core.auth.throttle import SignInThrottle
from controlplane.core.db import tenant_tx
from controlplane.core.errors import DomainError, PermissionDenied, RateLimited, ServiceUnavailable
from controlplane.core.pagination import PageRequest
from controlplane.core.problems import status_for
from tenants import service as tenants
from tenants.errors import InvalidCredentials
from tenants.roles import Permission

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequired(Exception):
    """A page for signed-in people, asked for without a session: the answer is the sign-in page."""


class CsrfRefused(PermissionDenied):
    code = "csrf_refused"
    title = "This form has expired"


# A handler's `opt` flag: signed out, a forged form has nothing to do there, and a retry must not fail (sign-out).
WITHOUT_SESSION_HARMLESS = "without_session_harmless"


async def csrf_protected(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Every unsafe request carries its session's CSRF token in the form's `csrf_token` field."""
    if connection.scope.get("method", "GET") in _SAFE_METHODS:
        return
    session = console_session(connection.scope)
    if (session is None or session.user_id is None) and handler.opt.get(WITHOUT_SESSION_HARMLESS):
        return
    sent = (await Request(connection.scope, connection.receive).form()).get("csrf_token", "")
    if session is None or not isinstance(sent, str) or not session.accepts_csrf(sent):
        raise CsrfRefused("The form was not sent from this session's page: reload the page and try again")


def signed_in(request: Request[Any, Any, Any]) -> Principal:
    principal = request.scope.get("user")
    if not isinstance(principal, Principal):
        raise SignInRequired()
    return principal


def cookie(request: Request[Any, Any, Any], value: str, *, max_age: int = MAX_SECONDS) -> Cookie:
    settings = request.app.state.settings
    shape = cookie_shape(settings.env, settings.public_url)
    return Cookie(
        key=shape.name,
        value=value,
        path=shape.path,
        httponly=True,
        samesite="lax",
        secure=shape.secure,
        max_age=max_age,
    )


def _sessions(request: Request[Any, Any, Any]) -> SessionStore:
    sessions: SessionStore = request.app.state.console_sessions
    return sessions


async def visitor_page(request: Request[Any, Any, Any], template: str, **context: Any) -> Response[str]:
    """A page with a form for someone not signed in: a visitor's session is started if there is none, its CSRF
    token protecting that form (sign-in, sign-up). A visitor's session is stored nowhere (`sessions`)."""
    if console_session(request.scope) is not None:
        return page(request, template, **context)
    session = await _sessions(request).start_visitor()
    request.scope["state"][SESSION_STATE] = session
    return page(request, template, cookies=[cookie(request, session.id)], **context)


async def start_session(request: Request[Any, Any, Any], user: tenants.UserView, then: str) -> Response[Any]:
    """Signed in: the session the request came with ends and a new one (a new id) begins, in the user's session
    generation as read with their password (a change since ends it at once); on to `then`."""
    sessions = _sessions(request)
    previous = console_session(request.scope)
    if previous is not None:
        await sessions.end(previous.id)
    session = await sessions.start(user.id, user.session_generation)
    return Redirect(then, status_code=303, cookies=[cookie(request, session.id)])


async def live_subscription(tenant_id: uuid.UUID) -> billing.SubscriptionView | None:
    """The tenant's subscription that is not canceled, however many it had before."""
    async with tenant_tx(tenant_id):
        return await billing.live_subscription(tenant_id)


@dataclass
class SignInForm:
    csrf_token: str
    email: str
    password: str


class AuthPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/signin")
    async def signin_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        if isinstance(request.scope.get("user"), Principal):
            return Redirect("/console/")
        return await visitor_page(request, "signin.html", error=None, email="")

    @post("/signin", status_code=303)
    async def signin(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[SignInForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Response[Any]:
        email = data.email.strip()[:254]
        throttle: SignInThrottle = request.app.state.sign_in_throttle
        address = request.client.host if request.client else "unknown"
        await throttle.reserve(email, address)
        try:
            user = await tenants.authenticate_password(email, data.password[:1024])
        except InvalidCredentials:
            return page(request, "signin.html", status=401, error="The email or password is not right.", email=email)
        await throttle.succeeded(email, address)
        return await start_session(request, user, "/console/")

    @post("/signout", status_code=303, opt={WITHOUT_SESSION_HARMLESS: True})
    async def signout(self, request: Request[Any, Any, Any]) -> Response[Any]:
        session = console_session(request.scope)
        if session is not None:
            await _sessions(request).end(session.id)
        return Redirect("/console/signin", status_code=303, cookies=[cookie(request, "", max_age=0)])

    @post("/signout/everywhere", status_code=303, opt={WITHOUT_SESSION_HARMLESS: True})
    async def signout_everywhere(self, request: Request[Any, Any, Any]) -> Response[Any]:
        """Every session of the person ends, in every browser and process (their session generation moves on);
        this one too. Repeated, it ends whatever sessions began since, which is what was asked."""
        principal = signed_in(request)
        await tenants.end_sessions(principal.id)
        session = console_session(request.scope)
        if session is not None:
            await _sessions(request).end(session.id)
        return Redirect("/console/signin", status_code=303, cookies=[cookie(request, "", max_age=0)])


InvoicePath = Annotated[uuid.UUID, PathParameter(description="The invoice's id")]


async def may(principal: Principal, tenant_id: uuid.UUID, permission: Permission, *, method: str = "GET") -> bool:
    """Whether the person's role allows `permission` in the tenant: whether a form is worth showing (its own
    request checks again)."""
    try:
        await tenants.authorize(principal, tenant_id, permission, method=method)
    except PermissionDenied:
        return False
    return True


async def tenant_in_view(principal: Principal, tenant_id: uuid.UUID, permission: Permission) -> tenants.TenantView:
    await tenants.authorize(principal, tenant_id, permission, method="GET")
    return await tenants.get_tenant(tenant_id)


class TenantPages(Controller):
    path = "/"
    include_in_schema = False

    @get("/")
    async def home(self, request: Request[Any, Any, Any]) -> Response[Any]:
        principal = signed_in(request)
        found = await tenants.list_tenants(principal, PageRequest.parse(PAGE_SIZE, None))
        partners = await tenants.administered_partners(principal)
        # Signed up, no tenant yet: on with sign-up; a partner's admin without a tenant has their partners here.
        if not found.items and not partners and not principal.is_staff:
            return Redirect("/console/signup/tenant")
        return page(request, "tenants.html", tenants=found.items, partners=partners)

    @get("/tenants/{tenant_id:uuid}")
    async def overview(self, request: Request[Any, Any, Any], tenant_id: TenantPath) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_TENANT)
        if not await may(principal, tenant_id, Permission.READ_BILLING):  # a member sees the tenant alone
            return page(
                request, "overview.html", tenant=tenant, billing=False, subscription=None, upcoming=None, usage=None
            )
        subscription = await live_subscription(tenant_id)
        upcoming = usage = None
        if subscription is not None:
            try:
                upcoming = await billing.upcoming_invoice(tenant_id)
                usage = await billing.current_usage(tenant_id)
            except SubscriptionNotFound:  # ended meanwhile
                subscription = None
        return page(
            request,
            "overview.html",
            tenant=tenant,
            billing=True,
            subscription=subscription,
            upcoming=upcoming,
            usage=usage,
        )

    @get("/tenants/{tenant_id:uuid}/invoices")
    async def invoices(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, cursor: Cursor = None
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_BILLING)
        found = await billing.list_invoices(tenant_id, PageRequest.parse(PAGE_SIZE, cursor))
        return page(request, "invoices.html", tenant=tenant, invoices=found.items, next_cursor=found.next_cursor)

    @get("/tenants/{tenant_id:uuid}/invoices/{invoice_id:uuid}")
    async def invoice(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, invoice_id: InvoicePath
    ) -> Response[str]:
        principal = signed_in(request)
        tenant = await tenant_in_view(principal, tenant_id, Permission.READ_BILLING)
        invoice = await billing.get_invoice(principal, invoice_id)
        if invoice.tenant_id != tenant_id:  # another of the person's tenants: not under this one's pages
            raise InvoiceNotFound()
        return page(request, "invoice.html", tenant=tenant, invoice=invoice)

    @get("/tenants/{tenant_id:uuid}/invoices/{invoice_id:uuid}/pdf")
    async def invoice_pdf(
        self, request: Request[Any, Any, Any], tenant_id: TenantPath, invoice_id: InvoicePath
    ) -> Response[bytes]:
        principal = signed_in(request)
        await tenants.authorize(principal, tenant_id, Permission.READ_BILLING, method="GET")
        invoice = await billing.get_invoice(principal, invoice_id)
        if invoice.tenant_id != tenant_id:
            raise InvoiceNotFound()
        pdf = await documents.invoice_pdf(principal, invoice_id)
        return Response(
            pdf.content,
            media_type=documents.PDF,
            headers={"Content-Disposition": f'attachment; filename="{pdf.filename}"'},
        )


def _error_page(request: Request[Any, Any, Any], status: int, code: str, title: str, detail: str) -> Response[str]:
    return page(
        request, "error.html", status=status, code=code, title=title, detail=detail, request_id=context.request_id.get()
    )


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[str]:
    response = _error_page(request, status_for(exc), exc.code, exc.title, exc.detail)
    if isinstance(exc, ServiceUnavailable):  # as the API's problems: counted by dependency
        metrics.DEPENDENCY_UNAVAILABLE_TOTAL.labels(dependency=exc.dependency).inc()
    if isinstance(exc, RateLimited | ServiceUnavailable):
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
    return response


def _sign_in_first(request: Request[Any, Any, Any], _: SignInRequired) -> Response[Any]:
    return Redirect("/console/signin", status_code=303)


def _validation_error(request: Request[Any, Any, Any], exc: ValidationException) -> Response[str]:
    return _error_page(request, 400, "validation_error", "The form is not valid", "Check the form and send it again.")


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[str]:
    status = exc.status_code
    return _error_page(request, status, "http_error", "The page cannot be shown", exc.detail or "")


CONSOLE_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    SignInRequired: _sign_in_first,
    DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
}
