"""A Stripe key rotated in OpenBao is picked up: a call Stripe refuses for its key is made once more with
the key OpenBao holds now."""

from __future__ import annotations

import uuid

import pytest
import stripe

from billing.errors import PaymentProviderUnavailable
from billing.payments.gateway import StripeGateway
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client


def _stale_client(settings: Settings) -> stripe.StripeClient:
    # A key Stripe no longer accepts (the local Stripe refuses anything not shaped like a secret key).
    return stripe.StripeClient("revoked_key", base_addresses={"api": str(settings.stripe_api_base)})


def test_a_refused_key_is_read_again_from_openbao(settings: Settings) -> None:
    secrets = SecretStore.connect(settings)
    gateway = StripeGateway(_stale_client(settings), reload=lambda: make_stripe_client(settings, secrets))
    assert gateway.create_customer(str(uuid.uuid4()), "billing@example.com").startswith("cus_")


def test_without_a_way_to_reload_a_refused_key_is_unavailable_not_a_crash(settings: Settings) -> None:
    with pytest.raises(PaymentProviderUnavailable):
        StripeGateway(_stale_client(settings)).create_customer(str(uuid.uuid4()), None)
