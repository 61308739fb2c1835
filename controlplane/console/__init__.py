"""The console: server-rendered pages under /console over the same services as the API (see `pages`).

`console_router()` is mounted by the app beside the API; `ConsoleMiddleware` (sessions, security headers) runs
among the app's middleware, where the API's bearer authentication runs.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.static_files import create_static_files_router

from controlplane.console.card_pages import CardPages
from controlplane.console.credit_pages import CreditPages
from controlplane.console.integration_pages import IntegrationPages
from controlplane.console.middleware import ConsoleMiddleware
from controlplane.console.pages import CONSOLE_EXCEPTION_HANDLERS, AuthPages, TenantPages, csrf_protected
from controlplane.console.partner_pages import PartnerPages
from controlplane.console.partner_review_pages import PartnerReviewPages
from controlplane.console.password_pages import PasswordPages
from controlplane.console.plugin_pages import PluginPages
from controlplane.console.sessions import VISITOR_KEY_PURPOSE, SessionStore
from controlplane.console.signup_links import SignupLinks
from controlplane.console.signup_pages import SignupPages
from controlplane.console.staff_pages import StaffPages
from controlplane.console.subscription_pages import SubscriptionPages
from controlplane.console.team_pages import TeamPages
from controlplane.console.usage_pages import UsagePages

STATIC = Path(__file__).parent / "static"

__all__ = ["VISITOR_KEY_PURPOSE", "ConsoleMiddleware", "SessionStore", "SignupLinks", "console_router"]


def console_router() -> Router:
    return Router(
        path="/console",
        route_handlers=[
            AuthPages,
            SignupPages,
            PasswordPages,
            TenantPages,
            TeamPages,
            StaffPages,
            PluginPages,
            IntegrationPages,
            UsagePages,
            CardPages,
            CreditPages,
            PartnerPages,
            PartnerReviewPages,
            SubscriptionPages,
            create_static_files_router("/static", directories=[STATIC], name="console-static", include_in_schema=False),
        ],
        guards=[csrf_protected],
        exception_handlers=CONSOLE_EXCEPTION_HANDLERS,
        include_in_schema=False,
    )
