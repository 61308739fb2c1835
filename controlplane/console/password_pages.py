"""A forgotten password: an email address, a single-use link mailed to it (an hour), a new password; then every
older session of the person ends (their session generation moves on) and they are signed in anew.

Whether the address has an account is never told: the page that asks reads the same either way, and takes the
same time (the message is sent after the answer, so a mail server's delay says nothing); only the active
account's address gets a message. Links count against the same limits per email and per client address as
sign-up's (`signup_links`). A link keeps the account's reset stamp (`tenants.reset_stamp`) beside the address: once
the password changes (by another link too) or the person signs out everywhere, every link sent before is spent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.params import QueryParameter

from controlplane.console.pages import start_session, visitor_page
from controlplane.console.params import Form
from controlplane.console.rendering import page
from controlplane.console.signup_links import PASSWORD_RESET, password_reset_message
from controlplane.console.signup_pages import client_address, links_of, settings_of
from controlplane.core import metrics
from controlplane.core.auth.passwords import MIN_PASSWORD_LENGTH
from controlplane.core.mail import Mailer, MailUnavailable, is_one_address
from controlplane.core.settings import Settings
from tenants import service as tenants
from tenants.errors import InvalidCredentials

log = logging.getLogger("controlplane.console.password")
# Messages being sent after their page was answered; held here so that none is collected half-way.
_sending: set[asyncio.Task[None]] = set()


@dataclass
class ForgotForm:
    csrf_token: str
    email: str


@dataclass
class ResetForm:
    csrf_token: str
    token: str
    password: str


def _send_after_answering(settings: Settings, message: EmailMessage, recipient: str) -> None:
    async def send() -> None:
        try:
            await asyncio.to_thread(Mailer.from_settings(settings).send, message, recipient)
        except MailUnavailable as error:  # the person asks again; the page could not have said so anyway
            metrics.DEPENDENCY_UNAVAILABLE_TOTAL.labels(dependency=error.dependency).inc()
            log.warning("a password reset email was not sent: %s", error.code)
        except Exception:
            log.exception("a password reset email was not sent")

    task = asyncio.create_task(send(), name="password-reset-email")
    _sending.add(task)
    task.add_done_callback(_sending.discard)


async def _live_link(
    request: Request[Any, Any, Any], token: str, *, check_stamp: bool = True
) -> tuple[str, str] | None:
    """The address a live reset link proves and the stamp it was sent with; None for an unknown, expired or spent
    one. Not `check_stamp`: the reset checks it itself, under the account's lock."""
    value = await links_of(request).email_of(token, PASSWORD_RESET)
    stamp, _, email = (value or "").partition(" ")
    if not stamp or not email:
        return None
    if check_stamp and await tenants.reset_stamp(email) != stamp:
        return None
    return email, stamp


class PasswordPages(Controller):
    path = "/password"
    include_in_schema = False

    @get("/forgot")
    async def forgot_form(self, request: Request[Any, Any, Any]) -> Response[Any]:
        return await visitor_page(request, "password_forgot.html", error=None, email="")

    @post("/forgot", status_code=200)
    async def send_link(self, request: Request[Any, Any, Any], data: Annotated[ForgotForm, Form]) -> Response[str]:
        email = data.email.strip().lower()
        if len(email) > 320 or not is_one_address(email):
            return page(
                request, "password_forgot.html", status=400, error="Enter one email address.", email=email[:320]
            )
        links = links_of(request)
        await links.allow(email, client_address(request))
        stamp = await tenants.reset_stamp(email)
        if stamp is not None:
            settings = settings_of(request)
            link = await links.issue(f"{stamp} {email}", PASSWORD_RESET)  # an address has no space
            message = password_reset_message(settings.mail_from, email, link, settings.platform_name)
            _send_after_answering(settings, message, email)
        return page(request, "password_sent.html", email=email)

    @get("/reset")
    async def reset_form(
        self, request: Request[Any, Any, Any], token: Annotated[str, QueryParameter(max_length=128)] = ""
    ) -> Response[Any]:
        live = await _live_link(request, token)
        if live is None:
            return page(request, "password_expired.html", status=410)
        email, _ = live
        return await visitor_page(
            request, "password_reset.html", error=None, email=email, token=token, min_length=MIN_PASSWORD_LENGTH
        )

    @post("/reset", status_code=303)
    async def reset(self, request: Request[Any, Any, Any], data: Annotated[ResetForm, Form]) -> Response[Any]:
        if len(data.password) < MIN_PASSWORD_LENGTH or len(data.password) > 1024:
            live = await _live_link(request, data.token)  # the link stays usable
            if live is None:
                return page(request, "password_expired.html", status=410)
            email, _ = live
            return page(
                request,
                "password_reset.html",
                status=400,
                error=f"Choose a password of {MIN_PASSWORD_LENGTH} to 1,024 characters.",
                email=email,
                token=data.token,
                min_length=MIN_PASSWORD_LENGTH,
            )
        # The link is spent by the reset itself (its stamp no longer matches, even for a request racing this one
        # with it), not before: a reset the database could not make (a 503) leaves it usable for the retry.
        live = await _live_link(request, data.token, check_stamp=False)
        if live is None:
            return page(request, "password_expired.html", status=410)
        email, stamp = live
        try:
            user = await tenants.reset_password(email, data.password, stamp)
        except InvalidCredentials:  # disabled or erased since the link was sent, or its password changed
            return page(request, "password_expired.html", status=410)
        await links_of(request).spend(data.token, PASSWORD_RESET)  # tidied away: the stamp spent it already
        return await start_session(request, user, "/console/")
