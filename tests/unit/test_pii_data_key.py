"""A tenant's data key seals and opens values locally (no OpenBao): a fresh nonce each, and the tenant's id bound
to every value, so neither the same key under another tenant nor another key opens it."""

from __future__ import annotations

import base64
import os
import uuid

import pytest

from controlplane.core.pii import SEALED_PREFIX, DataKey, PersonalDataUnreadable, is_sealed_locally


def test_a_value_opens_with_its_tenants_key_only() -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    key = os.urandom(32)
    sealed = DataKey(tenant, key).seal("ap@acme.example")
    assert sealed.startswith(SEALED_PREFIX) and is_sealed_locally(sealed)
    assert "acme" not in sealed
    assert DataKey(tenant, key).open(sealed) == "ap@acme.example"
    # The same key bytes under another tenant's id: the associated data differs.
    with pytest.raises(PersonalDataUnreadable):
        DataKey(other, key).open(sealed)
    with pytest.raises(PersonalDataUnreadable):
        DataKey(tenant, os.urandom(32)).open(sealed)


def test_every_seal_takes_a_fresh_nonce_and_a_tampered_value_does_not_open() -> None:
    key = DataKey(uuid.uuid4(), os.urandom(32))
    first, second = key.seal("same"), key.seal("same")
    assert first != second
    raw = bytearray(base64.b64decode(first[len(SEALED_PREFIX) :]))
    assert base64.b64decode(second[len(SEALED_PREFIX) :])[:12] != raw[:12]
    raw[-1] ^= 1
    for broken in (SEALED_PREFIX + base64.b64encode(bytes(raw)).decode(), SEALED_PREFIX + "not base64!", "vault:v1:x"):
        with pytest.raises(PersonalDataUnreadable):
            key.open(broken)


def test_the_key_never_shows_in_its_repr() -> None:
    tenant, raw = uuid.uuid4(), os.urandom(32)
    shown = repr(DataKey(tenant, raw)) + str(DataKey(tenant, raw))
    assert str(tenant) in shown
    assert raw.hex() not in shown and base64.b64encode(raw).decode() not in shown
