"""The Stripe client factory: the official SDK, with its key from OpenBao and, outside production,
its base address pointed at the local Stripe double (`STRIPE_API_BASE`)."""

from __future__ import annotations

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


class WebhookSecret:
    """The webhook signing secret from OpenBao, kept in memory; `(fresh=True)` reads it again (after a
    signature mismatch, so a rotated secret is picked up without a restart)."""

    def __init__(self, secret_store: SecretStore) -> None:
        self._store = secret_store
        self._secret: str | None = None

    def __call__(self, fresh: bool = False) -> str:
        if fresh or self._secret is None:
            self._secret = str(self._store.read(STRIPE_PATH)["webhook_secret"])
        return self._secret
