"""Rolling the Stripe webhook secret: both verify inside the window, only the new one after it."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

from httpx import AsyncClient
from litestar import Litestar

from controlplane.core.secrets import STRIPE_PATH, SecretStore
from controlplane.core.settings import Settings
from controlplane.ops.rotation import roll_stripe_webhook_secret
from tests.api._helpers import assert_problem
from tests.api.billing.test_webhooks import URL, event, signed


def _take_in(stack_env: dict[str, str], new_secret: str) -> subprocess.CompletedProcess[str]:
    """`controlplane secrets stripe-webhook`, the secret on standard input as an operator pipes it."""
    return subprocess.run(
        [sys.executable, "-m", "controlplane.cli", "secrets", "stripe-webhook", "--window-hours", "1"],
        env={**os.environ, **stack_env},
        input=new_secret + "\n",
        capture_output=True,
        text=True,
        timeout=120,
    )


def _signed_by_both(payload: bytes, first: str, second: str) -> dict[str, str]:
    """What Stripe sends while it rolls an endpoint's secret: one v1 signature per secret."""
    stamp = int(time.time())
    v1 = [hmac.new(key.encode(), f"{stamp}.".encode() + payload, hashlib.sha256).hexdigest() for key in (first, second)]
    return {"Stripe-Signature": f"t={stamp},v1={v1[0]},v1={v1[1]}", "Content-Type": "application/json"}


async def _delivered(client: AsyncClient, payload: bytes, headers: dict[str, str]) -> int:
    return (await client.post(URL, content=payload, headers=headers)).status_code


async def test_both_secrets_verify_inside_the_window_and_only_the_new_one_after(
    client: AsyncClient, app: Litestar, settings: Settings, stack_env: dict[str, str]
) -> None:
    cached = app.state.stripe_webhook_secret
    cached()  # the API holds the current (old) secret
    store = SecretStore.connect(settings)
    old = str(store.read(STRIPE_PATH)["webhook_secret"])
    new = f"whsec_{secrets.token_hex(24)}"
    payload = event(f"evt_{secrets.token_hex(6)}", "customer.created", {"id": "cus_x"})

    taken = _take_in(stack_env, new)
    assert taken.returncode == 0, taken.stderr
    assert taken.stdout.startswith("rotated stripe_webhook_secret: the new secret verifies now")
    again = _take_in(stack_env, new)
    assert (again.returncode, again.stdout.strip()) == (
        0,
        "unchanged stripe_webhook_secret: already current; nothing changed",
    )
    assert store.read(STRIPE_PATH)["webhook_secret_previous"] == old  # the repeat did not push the old one out

    # Inside the window: the API (which cached the old secret) takes either, and both at once.
    cached.forget()  # the refresh interval has passed: a mismatch reads the secrets again
    for headers in (signed(payload, old), signed(payload, new), _signed_by_both(payload, new, old)):
        assert await _delivered(client, payload, headers) == 200
    assert_problem(
        await client.post(URL, content=payload, headers=signed(payload, "whsec_other")), 400, "webhook_rejected"
    )

    # Rolled again with a window that is already over: only the newest verifies.
    newest = f"whsec_{secrets.token_hex(24)}"
    roll_stripe_webhook_secret(store, newest, window=timedelta(hours=1), now=datetime.now(UTC) - timedelta(hours=2))
    cached.forget()  # the refresh interval has passed since the mismatch above
    assert await _delivered(client, payload, signed(payload, newest)) == 200
    for stale_secret in (new, old):
        assert_problem(
            await client.post(URL, content=payload, headers=signed(payload, stale_secret)), 400, "webhook_rejected"
        )


def test_a_value_that_is_not_a_webhook_secret_is_refused_and_nothing_changes(
    settings: Settings, stack_env: dict[str, str]
) -> None:
    store = SecretStore.connect(settings)
    before = store.read_versioned(STRIPE_PATH).version
    refused = _take_in(stack_env, "sk_live_pasted_the_wrong_thing")
    assert refused.returncode == 1
    assert (
        "FAILED stripe_webhook_secret: ValueError: a Stripe webhook signing secret starts with whsec_" in refused.stderr
    )
    assert store.read_versioned(STRIPE_PATH).version == before
