"""The Stripe SDK, configured from settings and OpenBao, reaches the local Stripe double."""

from __future__ import annotations

from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.core.stripe_client import make_stripe_client


def test_the_sdk_creates_and_reads_back_a_customer(settings: Settings) -> None:
    client = make_stripe_client(settings, SecretStore.connect(settings))
    created = client.v1.customers.create(params={"email": "billing@example.com", "metadata": {"tenant": "t-1"}})
    assert created.id.startswith("cus_")
    fetched = client.v1.customers.retrieve(created.id)
    assert fetched.email == "billing@example.com"
    assert fetched.metadata["tenant"] == "t-1"
