"""Rotating the PII key against the real OpenBao: every tenant's wrapped data key rewrapped (the rows sealed with
them untouched), none left on an old version, the old versions retired, everything still readable; an
interrupted rewrap carries on; values from before the data keys (transit ciphertext, a plaintext billing email)
keep reading and are moved to the data keys."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import asyncpg
import hvac
import pytest

from controlplane.core import invalidation
from controlplane.core.pii import KEY_NAME, TRANSIT_MOUNT, PiiCipher
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings
from tenants import service
from tenants.service import _billing_profiles
from tests.integration.conftest import staff_principal

PROFILES = 450  # three batches of 200


class FailingOnSecondBatch(PiiCipher):
    """Stands for a worker killed mid-run: the second rewrap batch never comes back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batches = 0

    def rewrap(self, items: Any) -> list[str]:
        self.batches += 1
        if self.batches == 2:
            raise ConnectionError("worker lost")
        return super().rewrap(items)


def _transit_ciphertext(client: hvac.Client, tenant_id: uuid.UUID, text: str) -> str:
    """A value as stored before the data keys: transit ciphertext of its own (the app no longer makes these)."""
    response = client.secrets.transit.encrypt_data(
        KEY_NAME,
        base64.b64encode(text.encode()).decode(),
        context=base64.b64encode(tenant_id.bytes).decode(),
        mount_point=TRANSIT_MOUNT,
    )
    return str(response["data"]["ciphertext"])


async def _key_versions(owner_connection: asyncpg.Connection) -> dict[int, int]:
    rows = await owner_connection.fetch("select key_version, count(*) as n from tenant_data_keys group by 1")
    return {row["key_version"]: row["n"] for row in rows}


async def _profiles(owner_connection: asyncpg.Connection) -> list[asyncpg.Record]:
    return await owner_connection.fetch("select * from tenant_billing_profiles order by tenant_id")


async def test_rotation_rewraps_every_data_key_and_retires_old_versions(
    client: Any, settings: Settings, owner_connection: asyncpg.Connection, report: Any
) -> None:
    store = SecretStore.connect(settings)
    cipher = PiiCipher(store.client)
    staff = staff_principal()
    tenants = []
    for number in range(PROFILES):
        tenant = await service.create_tenant(
            staff, service.NewTenant(name=f"T{number}", slug=f"pii-{number}", currency="EUR")
        )
        await service.put_billing_profile(
            staff, cipher, tenant.id, service.BillingProfileValues(contact_name=f"Name {number}", tax_id=f"TAX{number}")
        )
        tenants.append(tenant.id)
    before = cipher.latest_version()
    assert await _key_versions(owner_connection) == {before: PROFILES}
    sealed = await _profiles(owner_connection)
    assert all(row["contact_name"].startswith("dk:v1:") and row["key_version"] is None for row in sealed)

    # Rotated, then the rewrap dies in its second batch: the first batch is done, the rest untouched.
    interrupted = FailingOnSecondBatch(store.client)
    with pytest.raises(ConnectionError):
        await _billing_profiles.rotate_pii_key(interrupted)
    after = cipher.latest_version()
    assert after == before + 1
    assert await _key_versions(owner_connection) == {after: 200, before: PROFILES - 200}
    assert cipher.min_decryption_version() <= before  # nothing retired while keys need it

    # Carried on without rotating again (what the scheduled run does when the key is not due).
    finished = await _billing_profiles.rotate_pii_key(cipher, rotate_key=False)
    assert (finished.version, finished.rewrapped, finished.moved) == (after, PROFILES - 200, 0)
    assert await _key_versions(owner_connection) == {after: PROFILES}
    assert cipher.min_decryption_version() == after
    assert await _profiles(owner_connection) == sealed  # the keys were rewrapped, not the rows

    invalidation.clear_all()  # nothing in memory: each key is unwrapped from its rewrapped form
    for number in (0, 199, 200, PROFILES - 1):
        shown = await service.get_billing_profile(cipher, tenants[number])
        assert (shown.contact_name, shown.tax_id) == (f"Name {number}", f"TAX{number}")

    # Run twice: rotates again, rewraps every key again.
    again = await service.rotate_pii_key(cipher)
    assert (again.version, again.rewrapped, again.moved) == (after + 1, PROFILES, 0)
    assert cipher.min_decryption_version() == after + 1
    invalidation.clear_all()
    shown = await service.get_billing_profile(cipher, tenants[7])
    assert (shown.contact_name, shown.tax_id) == ("Name 7", "TAX7")
    report(
        f"pii rewrap: {PROFILES} data keys; interrupted after 200, resumed {finished.rewrapped}; "
        f"0 left on old versions; rows untouched; min decryption version {after + 1}"
    )


async def test_a_stored_ciphertext_of_a_retired_version_no_longer_decrypts(
    client: Any, settings: Settings, owner_connection: asyncpg.Connection
) -> None:
    client = SecretStore.connect(settings).client
    cipher = PiiCipher(client)
    tenant_id = uuid.uuid4()
    old = _transit_ciphertext(client, tenant_id, "kept by a backup")
    _key, wrapped = cipher.new_data_key(tenant_id)
    await service.rotate_pii_key(cipher)
    with pytest.raises(Exception, match="OpenBao"):
        cipher.decrypt(tenant_id, [old])
    with pytest.raises(Exception, match="OpenBao"):
        cipher.unwrap_data_keys([(tenant_id, wrapped)])


async def _store_legacy_email(owner_connection: asyncpg.Connection, tenant_id: uuid.UUID, email: str) -> None:
    """A billing email from before the column was encrypted (the check is NOT VALID: it binds new writes only)."""
    definition = await owner_connection.fetchval(
        "select pg_get_constraintdef(oid) from pg_constraint where conname = 'tenants_billing_email_sealed'"
    )
    async with owner_connection.transaction():
        await owner_connection.execute("alter table tenants drop constraint tenants_billing_email_sealed")
        await owner_connection.execute("update tenants set billing_email = $1 where id = $2", email, tenant_id)
        await owner_connection.execute(f"alter table tenants add constraint tenants_billing_email_sealed {definition}")


async def test_values_from_before_the_data_keys_keep_reading_through_a_rotation_and_are_moved_to_them(
    client: Any, settings: Settings, owner_connection: asyncpg.Connection
) -> None:
    client = SecretStore.connect(settings).client
    cipher = PiiCipher(client)
    staff = staff_principal()
    current = [
        await service.create_tenant(
            staff,
            service.NewTenant(name=f"S{n}", slug=f"sealed-{n}", currency="EUR", billing_email=f"ap{n}@example.com"),
        )
        for n in range(2)
    ]
    transit = [
        await service.create_tenant(staff, service.NewTenant(name=f"V{n}", slug=f"vault-{n}", currency="EUR"))
        for n in range(2)
    ]
    plaintext = await service.create_tenant(staff, service.NewTenant(name="Old", slug="legacy", currency="EUR"))
    # Written as the code before the data keys did: transit ciphertext per value, its version beside it.
    for number, tenant in enumerate(transit):
        email = _transit_ciphertext(client, tenant.id, f"old{number}@example.com")
        name = _transit_ciphertext(client, tenant.id, f"Old Name {number}")
        await owner_connection.execute(
            "update tenants set billing_email = $1, billing_email_key_version = $2 where id = $3",
            email,
            int(email.split(":")[1][1:]),
            tenant.id,
        )
        await owner_connection.execute(
            "insert into tenant_billing_profiles (tenant_id, contact_name, key_version) values ($1, $2, $3)",
            tenant.id,
            name,
            int(name.split(":")[1][1:]),
        )
    await _store_legacy_email(owner_connection, plaintext.id, "old@example.com")

    shown = {
        **{tenant.id: f"ap{n}@example.com" for n, tenant in enumerate(current)},
        **{tenant.id: f"old{n}@example.com" for n, tenant in enumerate(transit)},
        plaintext.id: "old@example.com",
    }

    async def read_back() -> None:
        invalidation.clear_all()
        for tenant_id, email in shown.items():
            assert (await service.get_tenant(tenant_id)).billing_email == email
        for number, tenant in enumerate(transit):
            assert (await service.get_billing_profile(cipher, tenant.id)).contact_name == f"Old Name {number}"

    await read_back()
    # Rotated only (the rewrap not yet run): the old versions still decrypt.
    before = cipher.latest_version()
    assert cipher.rotate() == before + 1
    await read_back()

    rotated = await service.rotate_pii_key(cipher, rotate_key=False)
    assert (rotated.version, rotated.rewrapped, rotated.moved) == (before + 1, 2, 5)  # 2 profiles, 3 emails
    emails = await owner_connection.fetch(
        "select billing_email, billing_email_key_version from tenants where billing_email is not null"
    )
    assert len(emails) == 5
    assert all(row["billing_email"].startswith("dk:v1:") and row["billing_email_key_version"] is None for row in emails)
    profiles = await _profiles(owner_connection)
    assert all(row["contact_name"].startswith("dk:v1:") and row["key_version"] is None for row in profiles)
    assert await _key_versions(owner_connection) == {before + 1: 5}
    assert cipher.min_decryption_version() == before + 1
    await read_back()
