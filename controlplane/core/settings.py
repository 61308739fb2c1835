"""The one settings object, read once from the environment.

`create_app(settings)` and the workers take it as an argument, so tests pass settings instead of
patching the environment. Secrets (JWT keys, Stripe keys) are not settings: they come from OpenBao.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from controlplane.core.mail import parse_smtp_url, sender_address
from controlplane.core.ratelimit.policy import RateLimits

Environment = Literal["development", "test", "production"]
_ENVIRONMENTS: tuple[Environment, ...] = ("development", "test", "production")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
# Where `make run` serves the API (and, when built, the console).
DEV_PUBLIC_URL = "http://127.0.0.1:8000"
DEFAULT_PLATFORM_NAME = "Control Plane (development)"
DEFAULT_PLATFORM_ADDRESS = ("1 Example Street", "00000 Example City", "Nowhere")


class SettingsError(ValueError):
    """The environment does not describe a process that may start."""


@dataclass(frozen=True, slots=True)
class Settings:
    env: Environment = "development"
    debug: bool = False
    database_url: str = ""
    database_owner_url: str = ""
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    redis_url: str = ""
    bao_addr: str = ""
    bao_token: str = ""
    bao_role_id: str = ""
    bao_secret_id: str = ""
    # OpenBao database secrets engine: when a static role is named (BAO_DB_STATIC_ROLE), the password of
    # DATABASE_URL's user is read from `{BAO_DB_MOUNT}/static-creds/{role}` for each new connection, and
    # DATABASE_URL carries none. Empty: the password is the one in DATABASE_URL.
    bao_db_static_role: str = ""
    bao_db_mount: str = "database"
    # None means the real Stripe API; the dev stack points it at localstripe.
    stripe_api_base: str | None = None
    # Stripe.js in the console's card form: the account's publishable key (public by design). Unset, the form is
    # not offered, except against localstripe, which takes any `pk_test_` key.
    stripe_publishable_key: str = ""
    jwt_issuer: str = "controlplane"
    jwt_ttl_seconds: int = 900
    max_request_body_bytes: int = 1024 * 1024
    idempotency_ttl_seconds: int = 24 * 3600
    # Usage events may arrive this long after their period ends and still be billed in it; the billing
    # cycle waits as long before invoicing a boundary.
    usage_grace_seconds: int = 3600
    # Days after the first failed payment on which it is retried (BILLING_DUNNING_DAYS="1,3,5,7").
    dunning_days: tuple[int, ...] = (1, 3, 5, 7)
    # A license activation without a heartbeat for this long gives its seat back (LICENSE_HEARTBEAT_SECONDS).
    license_heartbeat_seconds: int = 3600
    # New activations of one license allowed per hour (LICENSE_ACTIVATIONS_PER_HOUR): a leaked key cannot
    # churn seats.
    license_activations_per_hour: int = 30
    # Browser origins allowed to call the API (comma-separated CONTROLPLANE_CORS_ORIGINS); none by default.
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    # A Celery worker serves /metrics on this port (CONTROLPLANE_WORKER_METRICS_PORT); 0: it does not.
    worker_metrics_port: int = 0
    # Email (controlplane.core.mail): the SMTP server (SMTP_URL: smtp://[user:pass@]host:port, smtps:// for TLS
    # from the start, ?starttls=true to upgrade) and the sender (MAIL_FROM). Unset, the dev stack runs its own.
    smtp_url: str = ""
    mail_from: str = ""
    # The console's base address (PUBLIC_URL), for links in emails; unset, the API's (CONTROLPLANE_URL, which the
    # dev stack sets), and `make run`'s by default.
    public_url: str = DEV_PUBLIC_URL
    # A card dispute lost suspends its tenant as for non-payment (DISPUTE_LOST_SUSPENDS, default true).
    dispute_lost_suspends: bool = True
    # Who issues the invoice and credit-note PDFs: PLATFORM_NAME, and PLATFORM_ADDRESS with its lines
    # separated by `|` ("1 Example Street|10115 Berlin|Germany|VAT DE000000000"). Development defaults.
    platform_name: str = DEFAULT_PLATFORM_NAME
    platform_address: tuple[str, ...] = DEFAULT_PLATFORM_ADDRESS
    # Rate limits (controlplane.core.ratelimit): on unless RATE_LIMIT_ENABLED=false, which production refuses.
    # Budgets per route class as "<per second>/<burst>": RATE_LIMIT_<CLASS> for one API key, person or address,
    # RATE_LIMIT_TENANT_<CLASS> for a tenant's keys and members together (classes: INGESTION, in events;
    # ENTITLEMENTS; READS; WRITES; UNAUTHENTICATED, per address only).
    rate_limit_enabled: bool = True
    rate_limits: RateLimits = field(default_factory=RateLimits)
    # The proxies uvicorn (`--proxy-headers`) takes a client's address from, in X-Forwarded-For: uvicorn reads
    # FORWARDED_ALLOW_IPS itself (addresses or networks, comma-separated; unset, 127.0.0.1). Behind the ingress
    # production must name it, or every client is the ingress's one address (see production_problems).
    forwarded_allow_ips: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        env = environ.get("CONTROLPLANE_ENV", "development")
        if env not in _ENVIRONMENTS:
            raise SettingsError(f"CONTROLPLANE_ENV must be one of {', '.join(_ENVIRONMENTS)}, not {env!r}")
        dispute_lost_suspends = _flag(environ, "DISPUTE_LOST_SUSPENDS", default=True)
        rate_limit_enabled = _flag(environ, "RATE_LIMIT_ENABLED", default=True)
        try:
            rate_limits = RateLimits.from_env(environ)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        try:
            return cls(
                env=env,
                debug=environ.get("CONTROLPLANE_DEBUG", "").lower() in _TRUE,
                database_url=environ.get("DATABASE_URL", ""),
                database_owner_url=environ.get("DATABASE_OWNER_URL", ""),
                db_pool_min_size=int(environ.get("DB_POOL_MIN_SIZE", "1")),
                db_pool_max_size=int(environ.get("DB_POOL_MAX_SIZE", "10")),
                redis_url=environ.get("REDIS_URL", ""),
                bao_addr=environ.get("BAO_ADDR", ""),
                bao_token=environ.get("BAO_TOKEN", ""),
                bao_role_id=environ.get("BAO_ROLE_ID", ""),
                bao_secret_id=environ.get("BAO_SECRET_ID", ""),
                bao_db_static_role=environ.get("BAO_DB_STATIC_ROLE", "").strip(),
                bao_db_mount=environ.get("BAO_DB_MOUNT", "").strip().strip("/") or "database",
                stripe_api_base=environ.get("STRIPE_API_BASE") or None,
                stripe_publishable_key=environ.get("STRIPE_PUBLISHABLE_KEY", "").strip(),
                jwt_ttl_seconds=int(environ.get("JWT_TTL_SECONDS", "900")),
                usage_grace_seconds=int(environ.get("BILLING_USAGE_GRACE_SECONDS", "3600")),
                dunning_days=_dunning_days(environ.get("BILLING_DUNNING_DAYS", "1,3,5,7")),
                license_heartbeat_seconds=int(environ.get("LICENSE_HEARTBEAT_SECONDS", "3600")),
                license_activations_per_hour=int(environ.get("LICENSE_ACTIVATIONS_PER_HOUR", "30")),
                max_request_body_bytes=int(environ.get("MAX_REQUEST_BODY_BYTES", str(1024 * 1024))),
                worker_metrics_port=int(environ.get("CONTROLPLANE_WORKER_METRICS_PORT", "0")),
                smtp_url=_smtp_url(environ.get("SMTP_URL", "").strip()),
                mail_from=_mail_from(environ.get("MAIL_FROM", "").strip()),
                public_url=_public_url(
                    environ.get("PUBLIC_URL", "").strip()
                    or environ.get("CONTROLPLANE_URL", "").strip()
                    or DEV_PUBLIC_URL
                ),
                dispute_lost_suspends=dispute_lost_suspends,
                rate_limit_enabled=rate_limit_enabled,
                rate_limits=rate_limits,
                platform_name=environ.get("PLATFORM_NAME", "").strip() or DEFAULT_PLATFORM_NAME,
                platform_address=_address_lines(environ.get("PLATFORM_ADDRESS")),
                forwarded_allow_ips=tuple(
                    part.strip() for part in environ.get("FORWARDED_ALLOW_IPS", "").split(",") if part.strip()
                ),
                cors_origins=tuple(
                    origin.strip()
                    for origin in environ.get("CONTROLPLANE_CORS_ORIGINS", "").split(",")
                    if origin.strip()
                ),
            )
        except SettingsError:
            raise
        except ValueError as exc:
            raise SettingsError(f"invalid numeric setting: {exc}") from exc

    @property
    def license_renewal_grace(self) -> timedelta:
        """How long a paid license outlives its period unpaid: past the last dunning retry, by a day."""
        return timedelta(days=self.dunning_days[-1] + 1)

    def require_services(self) -> None:
        missing = [
            name
            for name, value in (
                ("DATABASE_URL", self.database_url),
                ("REDIS_URL", self.redis_url),
                ("BAO_ADDR", self.bao_addr),
            )
            if not value
        ]
        if not (self.bao_token or (self.bao_role_id and self.bao_secret_id)):
            missing.append("BAO_TOKEN or BAO_ROLE_ID+BAO_SECRET_ID")
        if missing:
            raise SettingsError(
                "not configured: " + ", ".join(missing) + " (run `controlplane devstack up` for a local stack)"
            )

    def production_problems(self) -> list[str]:
        """What makes these settings unfit for production; checks that need a live service are in startup."""
        if self.env != "production":
            return []
        problems = []
        if self.debug:
            problems.append("CONTROLPLANE_DEBUG is on")
        if not self.rate_limit_enabled:
            problems.append("RATE_LIMIT_ENABLED is off (every API route would take any load)")
        if not self.forwarded_allow_ips:
            problems.append(
                "FORWARDED_ALLOW_IPS is not set: name the proxies in front of the API (the ingress), or every client"
                " is counted as the proxy's one address (one budget, and one client's failed authentications refuse"
                " everyone's requests)"
            )
        elif any(part in {"*", "0.0.0.0/0", "::/0"} for part in self.forwarded_allow_ips):
            problems.append(
                "FORWARDED_ALLOW_IPS trusts every address: any client could name its own in X-Forwarded-For, escape"
                " its address's limits and spend another's"
            )
        if self.stripe_api_base and urlsplit(self.stripe_api_base).hostname in _LOOPBACK_HOSTS:
            problems.append("STRIPE_API_BASE points at a local Stripe double")
        if self.stripe_api_base and not self.stripe_api_base.startswith("https://"):
            problems.append("STRIPE_API_BASE is not https")
        if self.bao_token in {"root", "dev-root-token", ""} and not self.bao_role_id:
            problems.append("OpenBao is reached with a development root token, not AppRole")
        urls = [("DATABASE_OWNER_URL", self.database_owner_url)]
        if not self.bao_db_static_role:  # otherwise OpenBao holds DATABASE_URL's password
            urls.insert(0, ("DATABASE_URL", self.database_url))
        for name, url in urls:
            parts = urlsplit(url)
            if parts.password in {None, "", "postgres", "password", "controlplane"}:
                problems.append(f"{name} has a missing or default password")
        if self.database_url and self.database_url == self.database_owner_url:
            problems.append("DATABASE_URL must use the app role, not the owner role")
        if not self.smtp_url:
            problems.append("SMTP_URL is not set (notifications could not be sent)")
        elif (smtp := parse_smtp_url(self.smtp_url)).username and not smtp.encrypted:
            problems.append("SMTP_URL sends its password without TLS (use smtps:// or ?starttls=true)")
        if not self.mail_from:
            problems.append("MAIL_FROM is not set")
        public = urlsplit(self.public_url)
        if public.scheme != "https" or public.hostname in _LOOPBACK_HOSTS:
            problems.append("PUBLIC_URL is not the console's https address (links in emails use it)")
        return problems


def _flag(environ: Mapping[str, str], name: str, *, default: bool) -> bool:
    """A yes/no setting; anything but 1/true/yes/on or 0/false/no/off (any case) is refused, not guessed."""
    text = environ.get(name, "").strip().lower()
    if not text:
        return default
    if text in _TRUE | _FALSE:
        return text in _TRUE
    raise SettingsError(f"{name} must be true or false, not {text!r}")


def _dunning_days(text: str) -> tuple[int, ...]:
    days = tuple(int(part) for part in text.split(",") if part.strip())
    if not days or any(day <= 0 for day in days) or list(days) != sorted(set(days)):
        raise ValueError(f"BILLING_DUNNING_DAYS must be increasing positive days, not {text!r}")
    return days


def _smtp_url(text: str) -> str:
    if text:
        try:
            parse_smtp_url(text)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None  # never the URL itself: it may hold a password
    return text


def _mail_from(text: str) -> str:
    if text:
        try:
            sender_address(text)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
    return text


def _public_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise SettingsError(f"PUBLIC_URL must be an http(s) address without query, not {text!r}")
    return text.rstrip("/")


def _address_lines(text: str | None) -> tuple[str, ...]:
    """PLATFORM_ADDRESS's lines (`|` between them); unset: the development default."""
    if text is None:
        return DEFAULT_PLATFORM_ADDRESS
    return tuple(line.strip() for line in text.split("|") if line.strip())
