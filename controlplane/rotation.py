"""Rotation of the platform's own secrets in OpenBao: the JWT signing keys and the license-signing key.

- JWT keys (KV v2 `platform/jwt`): a new Ed25519 key is added beside the others and becomes active; keys that
  stopped signing more than `overlap` ago are dropped, the previous one always kept. Written with
  check-and-set on the version read, so two rotations at once cannot lose each other's key.
- License key (transit `license-signing`): a new version signs from now on; every version stays in the
  JWKS (its `min_decryption_version` is never raised here), so licenses already issued keep verifying.

Each rotation is an audit event: a `controlplane.audit` log line (there is no platform audit table;
`tenants.audit` is per tenant), counted in `controlplane_secret_rotations_total{secret, outcome}`, and its
time recorded in the KV secret `platform/rotations` ({secret: ISO time}), from which
`controlplane_secret_age_seconds{secret}` is computed when the API is scraped.

Running a rotation twice is safe: it rotates twice, and keeps every key a live token may carry. The
scheduled task passes `only_due=True`, so a redelivered or doubled run changes nothing.

Not here (not built yet): rotating the database credentials, and rewrapping PII under a new transit key.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controlplane import metrics
from controlplane.exceptions import DomainError
from controlplane.secrets import JWT_KEYS_PATH, STRIPE_PATH, SecretConflict, SecretNotFound, SecretStore
from controlplane.settings import Settings
from plugins_registry.signer import KEY_NAME as LICENSE_KEY_NAME
from plugins_registry.signer import TRANSIT_MOUNT, LicenseSigner

audit = logging.getLogger("controlplane.audit")
log = logging.getLogger("controlplane.rotation")

JWT_SIGNING_KEY = "jwt_signing_key"
LICENSE_SIGNING_KEY = "license_signing_key"
STRIPE_WEBHOOK_SECRET = "stripe_webhook_secret"  # noqa: S105 (a label value, not a secret)
# The `secret` label's whole value set. Stripe's webhook secret is rotated in Stripe, not here: its age is
# reported so an old one is noticed.
SECRETS = (JWT_SIGNING_KEY, LICENSE_SIGNING_KEY, STRIPE_WEBHOOK_SECRET)
ROTATABLE = {"jwt": JWT_SIGNING_KEY, "license": LICENSE_SIGNING_KEY}
# How often the scheduled task rotates each; deploy/prometheus alerts a day after these are exceeded.
ROTATION_PERIODS = {JWT_SIGNING_KEY: timedelta(days=7), LICENSE_SIGNING_KEY: timedelta(days=90)}
OUTCOMES = ("success", "failure", "skipped")
# Every series exists from the start at 0, so a first failure is an increase that Prometheus sees.
for _secret in ROTATABLE.values():
    for _outcome in OUTCOMES:
        metrics.SECRET_ROTATIONS_TOTAL.labels(secret=_secret, outcome=_outcome)

ROTATIONS_PATH = "platform/rotations"
CAS_ATTEMPTS = 5
# Beyond the token lifetime: API processes re-read the key set within 5 minutes (ReloadingTokenSigner), and
# clocks drift; a key that stopped signing this long ago signed no live token.
OVERLAP_SLACK = timedelta(hours=1)


class RotationFailed(DomainError):
    code = "rotation_failed"
    title = "A secret rotation failed"


def jwt_overlap(settings: Settings) -> timedelta:
    """How long a JWT key keeps verifying after it stops signing."""
    return timedelta(seconds=settings.jwt_ttl_seconds) + OVERLAP_SLACK


@dataclass(frozen=True, slots=True)
class JwtRotation:
    active_kid: str
    previous_kid: str
    dropped: tuple[str, ...]
    kept: tuple[str, ...]  # every kid that verifies after the rotation, the active one included

    def describe(self) -> str:
        dropped = ", ".join(self.dropped) or "none"
        return (
            f"active kid {self.active_kid} (previous {self.previous_kid}; "
            f"{len(self.kept)} verifying; dropped {dropped})"
        )


@dataclass(frozen=True, slots=True)
class LicenseRotation:
    key_name: str
    version: int

    def describe(self) -> str:
        return f"{self.key_name} version {self.version} signs; earlier versions still verify"


@dataclass(frozen=True, slots=True)
class Outcome:
    secret: str
    outcome: str  # success, failure, skipped
    detail: str


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _json_field(secret: Mapping[str, Any], name: str) -> dict[str, str]:
    value = secret.get(name) or {}
    return dict(json.loads(value) if isinstance(value, str) else value)


def new_jwt_key(now: datetime, taken: Iterable[str] = ()) -> tuple[str, str]:
    """A fresh Ed25519 key: its kid (date and random suffix) and its PKCS#8 PEM."""
    taken = set(taken)
    kid = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
    while kid in taken:
        kid = f"{now:%Y%m%d}-{secrets.token_hex(4)}"
    pem = Ed25519PrivateKey.generate().private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )
    return kid, pem.decode()


def plan_jwt_rotation(
    secret: Mapping[str, Any],
    new_kid: str,
    new_pem: str,
    *,
    now: datetime,
    overlap: timedelta,
    written_at: datetime,
) -> tuple[dict[str, str], JwtRotation]:
    """The key set after a rotation (pure): `new_kid` active, the old active retired now, and keys retired
    more than `overlap` ago dropped, except the previous one.

    `retired` (JSON kid -> ISO time) says when each key stopped signing; a key with no such entry is taken
    to have stopped when this version of the secret was written (`written_at`), which is never too early.
    """
    keys = _json_field(secret, "keys")
    retired = _json_field(secret, "retired")
    previous = str(secret["active_kid"])
    if new_kid in keys:
        raise ValueError(f"kid {new_kid} already exists")
    retired[previous] = now.isoformat()
    cutoff = now - overlap
    dropped = tuple(
        sorted(kid for kid in keys if kid != previous and _utc(retired.get(kid) or written_at.isoformat()) <= cutoff)
    )
    keys = {kid: pem for kid, pem in keys.items() if kid not in dropped}
    keys[new_kid] = new_pem
    retired = {kid: when for kid, when in retired.items() if kid in keys and kid != new_kid}
    for kid in keys:
        if kid not in (new_kid, previous):
            retired.setdefault(kid, written_at.isoformat())
    rotated = {**secret, "active_kid": new_kid, "keys": json.dumps(keys), "retired": json.dumps(retired)}
    return rotated, JwtRotation(new_kid, previous, dropped, tuple(sorted(keys)))


def rotate_jwt_keys(
    store: SecretStore, *, overlap: timedelta, path: str = JWT_KEYS_PATH, now: datetime | None = None
) -> JwtRotation:
    """Add a new active Ed25519 key to the key set at `path`; drop keys retired more than `overlap` ago."""
    for _attempt in range(CAS_ATTEMPTS):
        current = store.read_versioned(path)
        moment = now or datetime.now(UTC)
        kid, pem = new_jwt_key(moment, _json_field(current.data, "keys"))
        secret, rotation = plan_jwt_rotation(
            current.data, kid, pem, now=moment, overlap=overlap, written_at=current.created_time
        )
        try:
            store.write(path, secret, cas=current.version)
        except SecretConflict:
            continue  # another rotation wrote first: rotate on top of its key set, keeping its key
        return rotation
    raise SecretConflict(f"{path} kept changing; gave up after {CAS_ATTEMPTS} attempts")


def rotate_license_key(client: hvac.Client, *, key_name: str = LICENSE_KEY_NAME) -> LicenseRotation:
    """Rotate the transit license-signing key: its new version signs; `min_decryption_version` is left alone,
    so the JWKS keeps every earlier version and licenses signed with them keep verifying."""
    return LicenseRotation(key_name, LicenseSigner(client, key_name=key_name).rotate())


def record_rotation(store: SecretStore, secret: str, when: datetime, *, path: str = ROTATIONS_PATH) -> None:
    """`platform/rotations[secret] = when`, by check-and-set (other secrets' entries are kept)."""
    for _attempt in range(CAS_ATTEMPTS):
        try:
            current = store.read_versioned(path)
            data, version = current.data, current.version
        except SecretNotFound:
            data, version = {}, 0
        if secret in data and _utc(str(data[secret])) >= when:
            return  # a later rotation is already recorded
        try:
            store.write(path, {**data, secret: when.isoformat()}, cas=version)
        except SecretConflict:
            continue
        return
    raise SecretConflict(f"{path} kept changing; gave up after {CAS_ATTEMPTS} attempts")


def _read_record(store: SecretStore, path: str) -> dict[str, datetime]:
    try:
        data = store.read(path)
    except SecretNotFound:
        return {}
    return {name: _utc(str(value)) for name, value in data.items() if name in SECRETS}


def _license_key_created(client: hvac.Client, key_name: str) -> datetime | None:
    data = client.secrets.transit.read_key(key_name, mount_point=TRANSIT_MOUNT)["data"]
    latest = data["keys"].get(str(data["latest_version"])) or {}
    created = latest.get("creation_time") if isinstance(latest, Mapping) else None
    return _utc(created) if created else None


def last_rotations(
    store: SecretStore,
    *,
    record_path: str = ROTATIONS_PATH,
    jwt_path: str = JWT_KEYS_PATH,
    license_key: str = LICENSE_KEY_NAME,
) -> dict[str, datetime]:
    """When each secret was last rotated: the recorded time, else when it was written or created.

    For the license key, the latest transit version's creation time counts too (a rotation done with the
    `bao` CLI is not recorded). A secret that cannot be read is left out.
    """
    record = _read_record(store, record_path)
    found: dict[str, datetime] = {}
    fallbacks: dict[str, Callable[[], datetime | None]] = {
        JWT_SIGNING_KEY: lambda: store.read_versioned(jwt_path).created_time,
        LICENSE_SIGNING_KEY: lambda: _license_key_created(store.client, license_key),
        STRIPE_WEBHOOK_SECRET: lambda: store.read_versioned(STRIPE_PATH).created_time,
    }
    for secret, fallback in fallbacks.items():
        candidates = [record[secret]] if secret in record else []
        if secret not in record or secret == LICENSE_SIGNING_KEY:
            try:
                if (when := fallback()) is not None:
                    candidates.append(when)
            except Exception as exc:  # an unreadable secret has no age, and must not hide the others
                log.debug("no age for %s: %s", secret, type(exc).__name__)
        if candidates:
            found[secret] = max(candidates)
    return found


def update_age_gauge(store: SecretStore, *, now: datetime | None = None, **paths: str) -> dict[str, float]:
    """Set `controlplane_secret_age_seconds` from OpenBao; the ages set, in seconds."""
    moment = now or datetime.now(UTC)
    ages = {
        secret: max((moment - when).total_seconds(), 0.0) for secret, when in last_rotations(store, **paths).items()
    }
    for secret, age in ages.items():
        metrics.SECRET_AGE_SECONDS.labels(secret=secret).set(age)
    return ages


class SecretAgeGauge:
    """Refreshes `controlplane_secret_age_seconds` when the API is scraped, at most every `interval` seconds."""

    def __init__(
        self,
        store: SecretStore,
        *,
        interval: float = 60.0,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._interval = interval
        self._timeout = timeout
        self._clock = clock
        self._refreshed_at: float | None = None

    async def refresh_if_stale(self) -> None:
        now = self._clock()
        if self._refreshed_at is not None and now - self._refreshed_at < self._interval:
            return
        self._refreshed_at = now
        try:
            # Bounded: a slow OpenBao must not make the scrape itself time out.
            await asyncio.wait_for(asyncio.to_thread(update_age_gauge, self._store), self._timeout)
        except Exception as exc:  # the scrape goes on with the last ages
            log.warning("secret ages not refreshed: %s", type(exc).__name__)


def rotate(
    store: SecretStore,
    what: Iterable[str],
    *,
    overlap: timedelta,
    actor: str,
    only_due: bool = False,
    now: datetime | None = None,
    jwt_path: str = JWT_KEYS_PATH,
    license_key: str = LICENSE_KEY_NAME,
    record_path: str = ROTATIONS_PATH,
) -> list[Outcome]:
    """Rotate each of `what` (`jwt`, `license`), audited, counted and recorded; one failing does not stop the
    others. With `only_due`, a secret rotated within its period is skipped."""
    moment = now or datetime.now(UTC)
    paths = {"record_path": record_path, "jwt_path": jwt_path, "license_key": license_key}
    last = last_rotations(store, **paths) if only_due else {}
    outcomes = []
    for choice in what:
        secret = ROTATABLE[choice]
        if only_due and secret in last and moment - last[secret] < ROTATION_PERIODS[secret]:
            detail = f"not due (last rotated {last[secret]:%Y-%m-%d %H:%M} UTC)"
            outcomes.append(_finish(secret, "skipped", detail, actor))
            continue
        try:
            if secret == JWT_SIGNING_KEY:
                done: JwtRotation | LicenseRotation = rotate_jwt_keys(store, overlap=overlap, path=jwt_path, now=moment)
            else:
                done = rotate_license_key(store.client, key_name=license_key)
            record_rotation(store, secret, moment, path=record_path)
        except (DomainError, ValueError) as exc:
            detail = f"{type(exc).__name__}: {exc}"
            outcomes.append(_finish(secret, "failure", detail, actor))
            continue
        metrics.SECRET_AGE_SECONDS.labels(secret=secret).set(max((datetime.now(UTC) - moment).total_seconds(), 0.0))
        outcomes.append(_finish(secret, "success", done.describe(), actor))
    return outcomes


def _finish(secret: str, outcome: str, detail: str, actor: str) -> Outcome:
    metrics.SECRET_ROTATIONS_TOTAL.labels(secret=secret, outcome=outcome).inc()
    level = logging.ERROR if outcome == "failure" else logging.INFO
    audit.log(level, "secret rotation %s: secret=%s actor=%s %s", outcome, secret, actor, detail)
    return Outcome(secret, outcome, detail)


def parse_what(what: str) -> tuple[str, ...]:
    """`jwt`, `license` or `all` as the choices `rotate` takes."""
    if what == "all":
        return tuple(ROTATABLE)
    if what not in ROTATABLE:
        raise ValueError(f"cannot rotate {what!r}: choose {', '.join(ROTATABLE)} or all")
    return (what,)
