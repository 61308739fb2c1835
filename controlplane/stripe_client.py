"""The Stripe client factory: the official SDK, with its key from OpenBao and, outside production,
its base address pointed at the local Stripe double (`STRIPE_API_BASE`)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import stripe

from controlplane.secrets import STRIPE_PATH, SecretStore
from controlplane.settings import Settings

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


class WebhookSecret:
    """The webhook signing secrets from OpenBao, kept in memory; `(fresh=True)` reads them again (after a
    signature mismatch, so a rotated secret is picked up without a restart)."""

    def __init__(self, secret_store: SecretStore) -> None:
        self._store = secret_store
        self._data: dict[str, Any] | None = None

    def __call__(self, fresh: bool = False) -> tuple[str, ...]:
        if fresh or self._data is None:
            self._data = self._store.read(STRIPE_PATH)
        return webhook_secrets_in_force(self._data, datetime.now(UTC))
