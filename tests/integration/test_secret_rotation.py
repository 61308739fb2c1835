"""Secret rotation against the test stack's real OpenBao.

Each test rotates a key set, a transit key and a rotation record of its own (scratch paths and names), so
the stack's `platform/jwt` and `license-signing`, which other tests and the session's app use, stay as
they are.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from controlplane.core import metrics
from controlplane.core.auth.tokens import ReloadingTokenSigner, TokenSigner
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from controlplane.devstack.platform_secrets import new_jwt_signing_keys
from controlplane.ops import rotation
from plugins_registry.license_token import verify as verify_license
from plugins_registry.signer import LicenseSigner

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def store(settings: Settings) -> SecretStore:
    return SecretStore.connect(settings)


def _scratch_name(kind: str) -> str:
    return f"test-{kind}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def jwt_path(store: SecretStore) -> Iterator[str]:
    path = f"platform/{_scratch_name('jwt')}"
    store.write(path, new_jwt_signing_keys(), cas=0)
    yield path
    store.client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point="secret")


@pytest.fixture
def record_path(store: SecretStore) -> Iterator[str]:
    path = f"platform/{_scratch_name('rotations')}"
    yield path
    store.client.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point="secret")


@pytest.fixture
def license_key(store: SecretStore) -> str:
    signer = LicenseSigner(store.client, key_name=f"license-signing-{_scratch_name('rotation')}")
    signer.ensure_key()
    return signer.key_name


def _signer(store: SecretStore, path: str) -> TokenSigner:
    return TokenSigner.from_secret(store.read(path), issuer="controlplane", ttl_seconds=900)


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _license_claims() -> dict[str, Any]:
    return {"sub": f"lic_{uuid.uuid4().hex}", "plugin": "acme-reports", "seats": 1, "exp": int(time.time()) + 3600}


def test_a_jwt_issued_before_a_rotation_verifies_after_it_and_new_ones_carry_the_new_kid(
    store: SecretStore, jwt_path: str
) -> None:
    before = _signer(store, jwt_path)
    user = uuid.uuid4()
    old_token = before.issue(user)

    done = rotation.rotate_jwt_keys(store, overlap=HOUR, path=jwt_path)

    after = _signer(store, jwt_path)
    assert done.previous_kid == before.active_kid == _kid(old_token)
    assert after.active_kid == done.active_kid != before.active_kid
    assert after.verify(old_token).user_id == user
    new_token = after.issue(user)
    assert _kid(new_token) == done.active_kid
    assert after.verify(new_token).user_id == user


def test_rotating_twice_keeps_the_previous_key_and_drops_only_what_is_past_the_overlap(
    store: SecretStore, jwt_path: str
) -> None:
    first_kid = _signer(store, jwt_path).active_kid
    first = rotation.rotate_jwt_keys(store, overlap=HOUR, path=jwt_path)
    second = rotation.rotate_jwt_keys(store, overlap=HOUR, path=jwt_path)
    assert second.previous_kid == first.active_kid
    assert set(second.kept) == {first_kid, first.active_kid, second.active_kid} and second.dropped == ()

    # With no overlap, keys that stopped signing before the last rotation go; the previous one stays.
    third = rotation.rotate_jwt_keys(store, overlap=timedelta(0), path=jwt_path)
    assert set(third.dropped) == {first_kid, first.active_kid}
    assert set(json.loads(store.read(jwt_path)["keys"])) == {second.active_kid, third.active_kid}


def test_concurrent_rotations_lose_no_key(store: SecretStore, jwt_path: str) -> None:
    original = _signer(store, jwt_path).active_kid
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(pool.map(lambda _: rotation.rotate_jwt_keys(store, overlap=HOUR, path=jwt_path), range(4)))
    keys = set(json.loads(store.read(jwt_path)["keys"]))
    assert keys == {original} | {rotated.active_kid for rotated in done}
    assert store.read(jwt_path)["active_kid"] in keys


async def test_a_running_signer_follows_a_rotation_done_elsewhere(store: SecretStore, jwt_path: str) -> None:
    running = ReloadingTokenSigner(
        store.read(jwt_path),
        lambda: store.read(jwt_path),
        issuer="controlplane",
        ttl_seconds=900,
        retry_seconds=0,
    )
    old_token = running.issue(uuid.uuid4())
    rotation.rotate_jwt_keys(store, overlap=HOUR, path=jwt_path)
    # Another process, reading the key set after the rotation, signs with the new kid.
    elsewhere = _signer(store, jwt_path).issue(uuid.uuid4())
    assert _kid(elsewhere) not in running.current.kids

    assert (await running.verify_fresh(elsewhere)).user_id
    assert (await running.verify_fresh(old_token)).user_id
    assert _kid(running.issue(uuid.uuid4())) == _kid(elsewhere)


def test_the_license_key_rotation_adds_a_jwks_version_and_old_licenses_still_verify(
    store: SecretStore, license_key: str
) -> None:
    signer = LicenseSigner(store.client, key_name=license_key)
    claims = _license_claims()
    old_token, old_version = signer.sign(claims)
    before = {key["kid"] for key in signer.jwks()["keys"]}

    done = rotation.rotate_license_key(store.client, key_name=license_key)

    jwks = signer.jwks()
    assert done.version == old_version + 1
    assert {key["kid"] for key in jwks["keys"]} == before | {str(done.version)}
    assert verify_license(old_token, jwks) == claims
    data = store.client.secrets.transit.read_key(license_key, mount_point="transit")["data"]
    assert int(data["min_decryption_version"]) == 1
    fresh = LicenseSigner(store.client, key_name=license_key)
    new_token, new_version = fresh.sign(_license_claims())
    assert new_version == done.version
    assert verify_license(new_token, jwks)["plugin"] == "acme-reports"


def _gauge(secret: str) -> float:
    return float(metrics.SECRET_AGE_SECONDS.labels(secret=secret)._value.get())


def _rotations(secret: str, outcome: str) -> float:
    return float(metrics.SECRET_ROTATIONS_TOTAL.labels(secret=secret, outcome=outcome)._value.get())


def test_a_rotation_is_recorded_counted_and_resets_the_age_gauge(
    store: SecretStore, jwt_path: str, license_key: str, record_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    paths = {"jwt_path": jwt_path, "license_key": license_key, "record_path": record_path}
    month_later = datetime.now(UTC) + timedelta(days=30)
    ages = rotation.update_age_gauge(store, now=month_later, **paths)
    # Never rotated: the ages count from when the key set was written and the transit key created.
    assert ages[rotation.JWT_SIGNING_KEY] == pytest.approx(30 * 86400, abs=120)
    assert ages[rotation.LICENSE_SIGNING_KEY] == pytest.approx(30 * 86400, abs=120)
    assert _gauge(rotation.JWT_SIGNING_KEY) > 29 * 86400
    successes = _rotations(rotation.JWT_SIGNING_KEY, "success")

    with caplog.at_level("INFO", logger="controlplane.audit"):
        outcomes = rotation.rotate(store, ["jwt", "license"], overlap=HOUR, actor="test", **paths)

    assert [(outcome.secret, outcome.outcome) for outcome in outcomes] == [
        (rotation.JWT_SIGNING_KEY, "success"),
        (rotation.LICENSE_SIGNING_KEY, "success"),
    ]
    assert _gauge(rotation.JWT_SIGNING_KEY) < 60
    assert _gauge(rotation.LICENSE_SIGNING_KEY) < 60
    assert _rotations(rotation.JWT_SIGNING_KEY, "success") == successes + 1
    assert set(store.read(record_path)) == {rotation.JWT_SIGNING_KEY, rotation.LICENSE_SIGNING_KEY}
    audited = [record.getMessage() for record in caplog.records if record.name == "controlplane.audit"]
    assert any("secret rotation success: secret=jwt_signing_key actor=test" in line for line in audited)
    # As the API computes it when scraped: from the record.
    assert rotation.update_age_gauge(store, **paths)[rotation.JWT_SIGNING_KEY] < 60

    # The scheduled run is safe to repeat: nothing is due again within the period.
    keys = store.read(jwt_path)["keys"]
    again = rotation.rotate(store, ["jwt", "license"], overlap=HOUR, actor="test", only_due=True, **paths)
    assert {outcome.outcome for outcome in again} == {"skipped"}
    assert store.read(jwt_path)["keys"] == keys
    # A week on, the JWT keys are due and the license key (quarterly) is not.
    week_later = datetime.now(UTC) + timedelta(days=8)
    due = rotation.rotate(store, ["jwt", "license"], overlap=HOUR, actor="test", only_due=True, now=week_later, **paths)
    assert [outcome.outcome for outcome in due] == ["success", "skipped"]


def test_a_failed_rotation_is_counted_and_does_not_stop_the_others(
    store: SecretStore, jwt_path: str, record_path: str, caplog: pytest.LogCaptureFixture
) -> None:
    failures = _rotations(rotation.LICENSE_SIGNING_KEY, "failure")
    with caplog.at_level("INFO", logger="controlplane.audit"):
        outcomes = rotation.rotate(
            store,
            ["license", "jwt"],
            overlap=HOUR,
            actor="test",
            jwt_path=jwt_path,
            license_key=f"missing-{uuid.uuid4().hex}",
            record_path=record_path,
        )
    assert [outcome.outcome for outcome in outcomes] == ["failure", "success"]
    assert _rotations(rotation.LICENSE_SIGNING_KEY, "failure") == failures + 1
    assert any(
        record.levelname == "ERROR" and "secret=license_signing_key" in record.getMessage() for record in caplog.records
    )
    assert set(store.read(record_path)) == {rotation.JWT_SIGNING_KEY}


async def test_the_api_scrape_reports_every_secrets_age(client: Any) -> None:
    body = (await client.get("/metrics")).text
    ages = {
        line.split('"')[1]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("controlplane_secret_age_seconds{")
    }
    # The database password has an age once rotated here (OpenBao's own rotations of it are not recorded).
    assert set(ages) == set(rotation.SECRETS) - {rotation.DB_PASSWORD}
    assert all(age >= 0 for age in ages.values())
