"""Production reaches OpenBao with AppRole, not a root token: the secret store logs in and reads."""

from __future__ import annotations

import base64
import dataclasses

import hvac
import pytest

from controlplane.core.errors import SecretsUnavailable
from controlplane.core.secrets import JWT_KEYS_PATH, SecretStore
from controlplane.core.settings import Settings

POLICY = 'path "secret/data/platform/*" { capabilities = ["read"] }'


@pytest.fixture(scope="module")
def approle(stack_env: dict[str, str]) -> tuple[str, str]:
    root = hvac.Client(url=stack_env["BAO_ADDR"], token=stack_env["BAO_TOKEN"])
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy("controlplane-test", POLICY)
    root.auth.approle.create_or_update_approle("controlplane-test", token_policies=["controlplane-test"])
    role_id = root.auth.approle.read_role_id("controlplane-test")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("controlplane-test")["data"]["secret_id"]
    return role_id, secret_id


def test_approle_login_reads_platform_secrets_without_root(settings: Settings, approle: tuple[str, str]) -> None:
    role_id, secret_id = approle
    production_like = dataclasses.replace(settings, bao_token="", bao_role_id=role_id, bao_secret_id=secret_id)
    store = SecretStore.connect(production_like)
    assert store.is_ready()
    assert not store.token_is_root()
    assert set(store.read(JWT_KEYS_PATH)) >= {"active_kid", "keys"}


def test_a_wrong_secret_id_is_a_clear_error(settings: Settings, approle: tuple[str, str]) -> None:
    role_id, _ = approle
    wrong = dataclasses.replace(settings, bao_token="", bao_role_id=role_id, bao_secret_id="not-the-secret")
    with pytest.raises(SecretsUnavailable):
        SecretStore.connect(wrong)


def test_the_dev_root_token_is_recognised(settings: Settings) -> None:
    assert SecretStore.connect(settings).token_is_root()


def test_production_refuses_a_root_token(settings: Settings) -> None:
    from controlplane.ops.startup_checks import UnsafeConfiguration, refuse_unsafe_production

    production = dataclasses.replace(settings, env="production", stripe_api_base=None)
    with pytest.raises(UnsafeConfiguration, match="root token"):
        refuse_unsafe_production(production, SecretStore.connect(settings))


def test_the_shipped_app_policy_covers_every_path_the_app_uses_and_no_more(settings: Settings) -> None:
    """deploy/openbao/controlplane-app.hcl, loaded as is: the app's OpenBao work succeeds under it."""
    import uuid
    from pathlib import Path

    from controlplane.core.pii import PiiCipher
    from controlplane.core.tenant_vault import TenantVault
    from plugins_registry.signer import LicenseSigner

    policy = (Path(__file__).resolve().parents[2] / "deploy/openbao/controlplane-app.hcl").read_text()
    root = hvac.Client(url=settings.bao_addr, token=settings.bao_token)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy("controlplane-app", policy)
    root.auth.approle.create_or_update_approle("controlplane-app", token_policies=["controlplane-app"])
    role_id = root.auth.approle.read_role_id("controlplane-app")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("controlplane-app")["data"]["secret_id"]
    store = SecretStore.connect(
        dataclasses.replace(settings, bao_token="", bao_role_id=role_id, bao_secret_id=secret_id)
    )

    assert set(store.read(JWT_KEYS_PATH)) >= {"active_kid", "keys"}
    assert LicenseSigner(store.client).sign({"sub": "policy-check"})[0].count(".") == 2
    cipher = PiiCipher(store.client)
    tenant_id = uuid.uuid4()
    key, wrapped = cipher.new_data_key(tenant_id)
    (rewrapped,) = cipher.rewrap([(tenant_id, wrapped)])
    assert cipher.unwrap_data_keys([(tenant_id, rewrapped)]) == [key]
    vault = TenantVault(store.client)
    vault.provision(tenant_id)
    vault.write(tenant_id, "webhook-signing", {"secret": "whsec_x"}, cas=0)
    assert vault.read(tenant_id, "webhook-signing")[0] == {"secret": "whsec_x"}
    vault.destroy(tenant_id)
    assert not vault.exists(tenant_id)

    # And nothing beyond it: no policy writes, no other transit key, no other secrets.
    for forbidden in (
        lambda: store.client.sys.create_or_update_policy("escalate", 'path "*" { capabilities = ["sudo"] }'),
        lambda: store.client.secrets.transit.rotate_key("some-other-key"),
        # Values are sealed with data keys now: transit encrypts nothing for the app.
        lambda: store.client.secrets.transit.encrypt_data(
            "tenant-pii", "QWRh", context=base64.b64encode(tenant_id.bytes).decode()
        ),
        lambda: store.client.secrets.kv.v2.read_secret_version(
            "elsewhere/x", mount_point="secret", raise_on_deleted_version=True
        ),
    ):
        with pytest.raises(hvac.exceptions.Forbidden):
            forbidden()


def test_a_short_lived_approle_token_is_renewed_then_replaced_and_never_lapses(settings: Settings) -> None:
    import time

    root = hvac.Client(url=settings.bao_addr, token=settings.bao_token)
    if "approle/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("approle")
    root.sys.create_or_update_policy("controlplane-test", POLICY)
    # A 3-second token renewable up to 6 seconds: production's hours, compressed.
    root.auth.approle.create_or_update_approle(
        "short-lived", token_policies=["controlplane-test"], token_ttl="3s", token_max_ttl="6s"
    )
    role_id = root.auth.approle.read_role_id("short-lived")["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id("short-lived")["data"]["secret_id"]
    store = SecretStore.connect(
        dataclasses.replace(settings, bao_token="", bao_role_id=role_id, bao_secret_id=secret_id)
    )
    first_token = store.client.token

    outcomes = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        outcomes.append(store.keep_alive())
        assert set(store.read(JWT_KEYS_PATH)) >= {"active_kid", "keys"}  # never a lapsed token
        time.sleep(0.3)
    assert "renewed" in outcomes and "logged_in" in outcomes
    assert store.client.token != first_token

    # Expired outright (nothing kept it alive): the next keep-alive logs in again.
    lapsed = SecretStore.connect(
        dataclasses.replace(settings, bao_token="", bao_role_id=role_id, bao_secret_id=secret_id)
    )
    time.sleep(3.2)
    assert lapsed.keep_alive() == "logged_in"
    assert set(lapsed.read(JWT_KEYS_PATH)) >= {"active_kid", "keys"}
