"""The secrets engines and platform secrets the control plane reads from OpenBao at start-up.

Created only when missing, so keys survive restarts and a developer's edits are kept.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

import hvac
import hvac.exceptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane.core.pii import PiiCipher
from plugins_registry.signer import LicenseSigner

KV_MOUNT = "secret"
TRANSIT_MOUNT = "transit"
JWT_PATH = "platform/jwt"
STRIPE_PATH = "platform/stripe"


def ensure_platform_secrets(client: hvac.Client) -> None:
    _ensure_mount(client, KV_MOUNT, "kv", {"version": "2"})
    _ensure_mount(client, TRANSIT_MOUNT, "transit", None)
    _ensure_kv_secret(client, JWT_PATH, new_jwt_signing_keys)
    _ensure_kv_secret(client, STRIPE_PATH, new_stripe_secrets)
    # The ed25519 transit key that signs plugin licenses (`license-signing`); its versions are the kids.
    LicenseSigner(client).ensure_key()
    # The derived AES key that encrypts tenants' personal data (`tenant-pii`).
    PiiCipher(client).ensure_key()


def new_jwt_signing_keys() -> dict[str, str]:
    """One Ed25519 key; `keys` is a JSON object kid -> PKCS#8 PEM, so rotation adds a key beside it."""
    kid = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
    pem = Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return {"active_kid": kid, "keys": json.dumps({kid: pem.decode()})}


def new_stripe_secrets() -> dict[str, str]:
    # localstripe accepts any key starting with sk_; the webhook secret signs its webhook calls.
    return {"api_key": f"sk_test_{secrets.token_hex(24)}", "webhook_secret": f"whsec_{secrets.token_hex(24)}"}


def _ensure_mount(client: hvac.Client, path: str, engine: str, options: dict[str, str] | None) -> None:
    mounts = client.sys.list_mounted_secrets_engines()["data"]
    if f"{path}/" not in mounts:
        client.sys.enable_secrets_engine(backend_type=engine, path=path, options=options)


def _ensure_kv_secret(client: hvac.Client, path: str, make: Callable[[], dict[str, str]]) -> None:
    kv = client.secrets.kv.v2
    # A freshly mounted KV v2 engine can refuse requests for a moment while it sets itself up.
    deadline = time.monotonic() + 10.0
    while True:
        try:
            kv.read_secret_version(path=path, mount_point=KV_MOUNT, raise_on_deleted_version=True)
            return
        except hvac.exceptions.InvalidPath:
            # cas=0: write only if still absent, so two concurrent bootstraps cannot overwrite each other.
            kv.create_or_update_secret(path=path, secret=make(), cas=0, mount_point=KV_MOUNT)
            return
        except (hvac.exceptions.InvalidRequest, hvac.exceptions.InternalServerError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
