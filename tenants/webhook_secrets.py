"""A tenant's outbound webhook signing secret, in the tenant's own OpenBao namespace.

Deliveries are signed as Stripe signs its own: `t=<unix time>,v1=<HMAC-SHA256(secret, "<t>.<body>")>`. After a
rotation, every delivery carries one `v1` per secret in force, the new and (for `window`) the previous one, so
a receiver still holding the old secret keeps verifying while it switches over.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from controlplane.core.errors import SecretConflict, SecretNotFound
from controlplane.core.tenant_vault import TenantVault

PATH = "webhook-signing"
ROTATION_WINDOW = timedelta(hours=24)
CAS_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class WebhookSecretState:
    secret: str
    rotated_at: datetime
    previous_valid_until: datetime | None  # None: no previous secret verifies any more

    @classmethod
    def of(cls, data: Mapping[str, Any], now: datetime) -> WebhookSecretState:
        until = datetime.fromisoformat(data["previous_until"]) if data.get("previous_until") else None
        return cls(
            str(data["secret"]),
            datetime.fromisoformat(data["rotated_at"]),
            until if until is not None and until > now else None,
        )


def in_force(data: Mapping[str, Any], now: datetime) -> tuple[str, ...]:
    """The secrets deliveries are signed with at `now`: the current one first."""
    state = WebhookSecretState.of(data, now)
    if state.previous_valid_until is not None and data.get("previous"):
        return (state.secret, str(data["previous"]))
    return (state.secret,)


def signature_header(signing_secrets: Sequence[str], payload: bytes, at: int) -> str:
    signed = f"{at}.".encode() + payload
    digests = [hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest() for secret in signing_secrets]
    return ",".join([f"t={at}", *(f"v1={digest}" for digest in digests)])


def verify(header: str, payload: bytes, secret: str, *, now: int, tolerance_seconds: int = 300) -> bool:
    """What a receiver does: some `v1` matches its secret, and `t` is recent."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for name, value in fields if name == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance_seconds:
        return False
    expected = hmac.new(secret.encode(), f"{stamps[0]}.".encode() + payload, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for name, value in fields if name == "v1")


def rotate(
    vault: TenantVault, tenant_id: uuid.UUID, *, window: timedelta = ROTATION_WINDOW, now: datetime | None = None
) -> WebhookSecretState:
    """A new secret signs from now; the current one keeps signing beside it for `window` (the first secret has
    no previous one). Check-and-set, so two rotations at once cannot lose one's secret unseen."""
    vault.provision(tenant_id)
    for _attempt in range(CAS_ATTEMPTS):
        moment = now or datetime.now(UTC)
        try:
            current, version = vault.read(tenant_id, PATH)
        except SecretNotFound:
            current, version = {}, 0
        data = {"secret": f"whsec_{secrets.token_urlsafe(32)}", "rotated_at": moment.isoformat()}
        if current:
            data |= {"previous": current["secret"], "previous_until": (moment + window).isoformat()}
        try:
            vault.write(tenant_id, PATH, data, cas=version)
        except SecretConflict:
            continue
        return WebhookSecretState.of(data, moment)
    raise SecretConflict(f"tenant {tenant_id}'s webhook secret kept changing; gave up after {CAS_ATTEMPTS} attempts")


def current(vault: TenantVault, tenant_id: uuid.UUID) -> tuple[WebhookSecretState, tuple[str, ...]]:
    """The state and the secrets in force; `SecretNotFound` when the tenant has never had one."""
    if not vault.exists(tenant_id):
        raise SecretNotFound("this tenant has no webhook signing secret yet")
    data, _version = vault.read(tenant_id, PATH)
    moment = datetime.now(UTC)
    return WebhookSecretState.of(data, moment), in_force(data, moment)
