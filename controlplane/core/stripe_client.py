"""The Stripe client factory: the official SDK, with its key from OpenBao and, outside production,
its base address pointed at the local Stripe double (`STRIPE_API_BASE`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from controlplane.core.secrets import STRIPE_PATH, SecretStore
from controlplane.core.settings import Settings

MAX_NETWORK_RETRIES = 2


def make_stripe_client(settings: Settings, secret_store: SecretStore) -> stripe.StripeClient:
    api_key = secret_store.read(STRIPE_PATH)["api_key"]
    base_addresses: dict[str, str] = {}
    if settings.stripe_api_base:
        base_addresses = {"api": settings.stripe_api_base.rstrip("/")}
    return stripe.StripeClient(
        api_key,
        base_addresses=base_addresses,  # type: ignore[arg-type]
        max_network_retries=MAX_NETWORK_RETRIES,
    )


# Fields of the KV secret `platform/stripe` for the webhook signing secret. While Stripe rolls the endpoint's
# secret it signs every delivery with both, and until `…_previous_until` either one verifies here.
WEBHOOK_SECRET = "webhook_secret"  # noqa: S105 (field names, not secrets)
WEBHOOK_SECRET_PREVIOUS = "webhook_secret_previous"  # noqa: S105
WEBHOOK_SECRET_PREVIOUS_UNTIL = "webhook_secret_previous_until"  # noqa: S105


def webhook_secrets_in_force(data: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    """The secrets a delivery may be signed with at `now`: the current one, and the previous one until its
    window ends."""
    current = (str(data[WEBHOOK_SECRET]),)
    previous, until = data.get(WEBHOOK_SECRET_PREVIOUS), data.get(WEBHOOK_SECRET_PREVIOUS_UNTIL)
    if previous and until and now < datetime.fromisoformat(str(until)):
        return (*current, str(previous))
    return current


# The webhook secrets are read again after this long in any case, and a signature mismatch asks for a fresh
# read at most once in WEBHOOK_SECRET_REFRESH_SECONDS: forged deliveries cannot turn into OpenBao reads.
WEBHOOK_SECRET_MAX_AGE_SECONDS = 300
WEBHOOK_SECRET_REFRESH_SECONDS = 30


class WebhookSecret:
    """The webhook signing secrets from OpenBao, kept in memory; `(fresh=True)` reads them again (after a
    signature mismatch, so a rotated secret is picked up without a restart) unless they were read fresh less
    than `WEBHOOK_SECRET_REFRESH_SECONDS` ago; they are read again anyway after `WEBHOOK_SECRET_MAX_AGE_SECONDS`.
    A rotation is thus picked up within the refresh interval (Stripe retries a refused delivery)."""

    def __init__(self, secret_store: SecretStore, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = secret_store
        self._clock = clock
        self._data: dict[str, Any] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def __call__(self, fresh: bool = False) -> tuple[str, ...]:
        with self._lock:  # called from worker threads: one read at a time
            now = self._clock()
            age = now - self._read_at
            if (
                self._data is None
                or age >= WEBHOOK_SECRET_MAX_AGE_SECONDS
                or (fresh and age >= WEBHOOK_SECRET_REFRESH_SECONDS)
            ):
                self._data = self._store.read(STRIPE_PATH)
                self._read_at = now
            data = self._data
        return webhook_secrets_in_force(data, datetime.now(UTC))

    def forget(self) -> None:
        """The next call reads OpenBao (as once the refresh interval has passed)."""
        with self._lock:
            self._data = None
