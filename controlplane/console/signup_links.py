"""The email proof of a sign-up or of a forgotten password's reset: a single-use link, mailed, that expires; and
how often one may be asked for.

A link's token is random (never derived from the address); Redis keeps the address under the token's SHA-256,
in a key of the link's purpose (a sign-up link is no reset link), for the purpose's lifetime, so an abandoned
link disappears by itself. A used one is spent by what it did, not before it (an outage in between leaves it
good for the retry): a sign-up link by the account it made (`signup_pages`), a reset link by the reset
(`password_pages`). Asking for links is limited per email and per client address, each a fixed window in Redis
shared by both purposes, so a form cannot be made to mail someone without end; both are counted in a canonical
form, so the limits are not walked around: an email lowercased and without a `+tag` (one mailbox under many
names), an IPv6 address by its /64 (what one subscriber is routinely given). An account still keeps the address
as typed.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import redis.asyncio as aioredis

from controlplane.console.sessions import redis_call
from controlplane.core.errors import RateLimited
from controlplane.core.ratelimit.limiter import address_key

KEY_PREFIX = "controlplane:console:signup:"
WINDOW_SECONDS = 3600
PER_EMAIL = 3  # links an address may be sent in a window
PER_ADDRESS = 10  # links one client address may ask for in a window


class SignupsLimited(RateLimited):
    code = "signup_rate_limited"  # the code of sign-up's first limit; reset links count in the same windows
    title = "Too many emails were asked for"


@dataclass(frozen=True, slots=True)
class LinkPurpose:
    key: str  # in the Redis key of its links
    path: str  # the console page the link opens
    seconds: int  # how long a link lives


SIGNUP = LinkPurpose("link", "/console/signup/verify", 24 * 3600)
PASSWORD_RESET = LinkPurpose("reset", "/console/password/reset", 3600)


@dataclass(frozen=True, slots=True)
class Link:
    token: str
    url: str


def counted_email(email: str) -> str:
    """The mailbox an address names, as far as limits go: lowercase, and `local+tag@domain` is `local@domain`."""
    local, at, domain = email.strip().lower().rpartition("@")
    if not at:
        return email.strip().lower()
    untagged = local.split("+", 1)[0]
    return f"{untagged or local}@{domain}"


def _token_key(token: str, purpose: LinkPurpose) -> str:
    return f"{KEY_PREFIX}{purpose.key}:{hashlib.sha256(token.encode()).hexdigest()}"


class SignupLinks:
    def __init__(self, client: aioredis.Redis, public_url: str) -> None:
        self._client = client
        self._public_url = public_url.rstrip("/")

    async def allow(self, email: str, address: str) -> None:
        """Count one more link for this email and client address; `SignupsLimited` past either budget."""
        for subject, budget in (
            (f"email:{hashlib.sha256(counted_email(email).encode()).hexdigest()}", PER_EMAIL),
            (f"address:{address_key(address)}", PER_ADDRESS),
        ):
            key = f"{KEY_PREFIX}count:{subject}"
            # The window starts with its expiry (SET NX EX), so a count can never be left without one.
            await redis_call(self._client.set(key, 0, ex=WINDOW_SECONDS, nx=True))
            count = await redis_call(self._client.incr(key))
            if count > budget:
                raise SignupsLimited(
                    "Too many emails were asked for; try again in an hour", retry_after_seconds=WINDOW_SECONDS
                )

    async def issue(self, email: str, purpose: LinkPurpose) -> Link:
        token = secrets.token_urlsafe(32)
        await redis_call(self._client.set(_token_key(token, purpose), email, ex=purpose.seconds))
        return Link(token, f"{self._public_url}{purpose.path}?token={token}")

    async def email_of(self, token: str, purpose: LinkPurpose) -> str | None:
        """The address a live link proves, without using it up (the page that asks for a password)."""
        if not token or len(token) > 128:
            return None
        found: Any = await redis_call(self._client.get(_token_key(token, purpose)))
        return None if found is None else found.decode()

    async def spend(self, token: str, purpose: LinkPurpose) -> None:
        """The link used up, once what it proved has been done."""
        if token and len(token) <= 128:
            await redis_call(self._client.delete(_token_key(token, purpose)))


def verification_message(sender: str, recipient: str, link: Link, platform: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, recipient, f"Confirm your email for {platform}"
    message.set_content(
        f"Someone, hopefully you, started signing up for {platform} with this address.\n\n"
        f"To go on, open this link within 24 hours:\n{link.url}\n\n"
        "If it was not you, ignore this email: nothing is created until the link is opened.\n"
    )
    return message


def existing_account_message(sender: str, recipient: str, sign_in_url: str, platform: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, recipient, f"You already have a {platform} account"
    message.set_content(
        f"Someone, hopefully you, tried to sign up for {platform} with this address, which already has an account.\n\n"
        f"Sign in instead: {sign_in_url}\n\nIf it was not you, ignore this email.\n"
    )
    return message


def password_reset_message(sender: str, recipient: str, link: Link, platform: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, recipient, f"Reset your {platform} password"
    message.set_content(
        f"Someone, hopefully you, asked to reset the password of your {platform} account.\n\n"
        f"To choose a new one, open this link within an hour (it works once):\n{link.url}\n\n"
        "Choosing a new password signs you out of the console everywhere else.\n"
        "If it was not you, ignore this email: your password stays as it is.\n"
    )
    return message
