"""`controlplane secrets rotate` against the test stack, as an operator runs it."""

from __future__ import annotations

import json
import uuid

from controlplane.core.auth.tokens import TokenSigner
from controlplane.core.secrets import JWT_KEYS_PATH, SecretStore
from controlplane.core.settings import Settings
from tests.e2e.test_cli import _cli


def _signer(store: SecretStore) -> TokenSigner:
    return TokenSigner.from_secret(store.read(JWT_KEYS_PATH), issuer="controlplane", ttl_seconds=900)


def test_rotating_the_jwt_keys_from_the_command_line_twice(stack_env: dict[str, str], settings: Settings) -> None:
    store = SecretStore.connect(settings)
    before = _signer(store)
    token = before.issue(uuid.uuid4())

    first = _cli(stack_env, "secrets", "rotate", "--what", "jwt")
    assert first.returncode == 0, first.stderr
    active = store.read(JWT_KEYS_PATH)["active_kid"]
    assert first.stdout.startswith(f"rotated jwt_signing_key: active kid {active} (previous {before.active_kid}")

    second = _cli(stack_env, "secrets", "rotate", "--what", "jwt")
    assert second.returncode == 0, second.stderr
    after = _signer(store)
    assert f"(previous {active};" in second.stdout
    assert {before.active_kid, active, after.active_kid} <= set(json.loads(store.read(JWT_KEYS_PATH)["keys"]))
    assert after.verify(token)  # issued before both rotations, still verifies

    # What beat runs: nothing is due again so soon, the license key included.
    due = _cli(stack_env, "secrets", "rotate", "--what", "all", "--if-due")
    assert due.returncode == 0, due.stderr
    lines = due.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "skipped jwt_signing_key",
        "skipped license_signing_key",
        "skipped tenant_pii_key",
        "skipped database_app_password",
    ]
    assert lines[2].endswith("; 0 data keys and 0 rows left over were rewrapped")
    assert lines[3] == "skipped database_app_password: BAO_DB_STATIC_ROLE is not set"
    assert _signer(store).active_kid == after.active_kid


def test_rotating_the_pii_key_from_the_command_line_rewraps_and_retires(
    stack_env: dict[str, str], settings: Settings
) -> None:
    from controlplane.core.pii import PiiCipher

    cipher = PiiCipher(SecretStore.connect(settings).client)
    before = cipher.latest_version()
    rotated = _cli(stack_env, "secrets", "rotate", "--what", "pii")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == (
        f"rotated tenant_pii_key: tenant-pii version {before + 1}; 0 data keys rewrapped; "
        "0 rows moved to data keys; older versions retired"
    )
    assert cipher.min_decryption_version() == before + 1
