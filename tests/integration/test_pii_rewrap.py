"""Rotating the PII key against the real OpenBao: every ciphertext rewrapped, none left on an old version,
the old versions retired, everything still readable; an interrupted rewrap carries on."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest

from controlplane.core.pii import PiiCipher
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


async def _versions(owner_connection: asyncpg.Connection) -> dict[int, int]:
    rows = await owner_connection.fetch("select key_version, count(*) as n from tenant_billing_profiles group by 1")
    return {row["key_version"]: row["n"] for row in rows}


async def test_rotation_rewraps_every_row_and_retires_old_versions(
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
    assert await _versions(owner_connection) == {before: PROFILES}

    # Rotated, then the rewrap dies in its second batch: the first batch is done, the rest untouched.
    interrupted = FailingOnSecondBatch(store.client)
    with pytest.raises(ConnectionError):
        await _billing_profiles.rotate_pii_key(interrupted)
    after = cipher.latest_version()
    assert after == before + 1
    assert await _versions(owner_connection) == {after: 200, before: PROFILES - 200}
    assert cipher.min_decryption_version() <= before  # nothing retired while rows need it

    # Carried on without rotating again (what the scheduled run does when the key is not due).
    finished = await _billing_profiles.rotate_pii_key(cipher, rotate_key=False)
    assert (finished.version, finished.rewrapped) == (after, PROFILES - 200)
    assert await _versions(owner_connection) == {after: PROFILES}
    assert cipher.min_decryption_version() == after

    for number in (0, 199, 200, PROFILES - 1):
        shown = await service.get_billing_profile(cipher, tenants[number])
        assert (shown.contact_name, shown.tax_id) == (f"Name {number}", f"TAX{number}")

    # Run twice: rotates again, rewraps everything again.
    again = await service.rotate_pii_key(cipher)
    assert (again.version, again.rewrapped) == (after + 1, PROFILES)
    assert cipher.min_decryption_version() == after + 1
    report(
        f"pii rewrap: {PROFILES} profiles; interrupted after 200, resumed {finished.rewrapped}; "
        f"0 left on old versions; min decryption version {after + 1}"
    )


async def test_a_stored_ciphertext_of_a_retired_version_no_longer_decrypts(
    client: Any, settings: Settings, owner_connection: asyncpg.Connection
) -> None:
    cipher = PiiCipher(SecretStore.connect(settings).client)
    tenant_id = uuid.uuid4()
    (old,) = cipher.encrypt(tenant_id, ["kept by a backup"])
    await service.rotate_pii_key(cipher)
    with pytest.raises(Exception, match="OpenBao"):
        cipher.decrypt(tenant_id, [old])


async def test_billing_emails_are_rewrapped_and_a_plaintext_one_left_from_before_is_sealed(
    client: Any, settings: Settings, owner_connection: asyncpg.Connection
) -> None:
    cipher = PiiCipher(SecretStore.connect(settings).client)
    staff = staff_principal()
    sealed = [
        await service.create_tenant(
            staff,
            service.NewTenant(name=f"S{n}", slug=f"sealed-{n}", currency="EUR", billing_email=f"ap{n}@example.com"),
        )
        for n in range(3)
    ]
    legacy = await service.create_tenant(staff, service.NewTenant(name="Old", slug="legacy", currency="EUR"))
    # A row from before the column was sealed (the check is NOT VALID: it binds new writes only).
    async with owner_connection.transaction():
        await owner_connection.execute("alter table tenants drop constraint tenants_billing_email_sealed")
        await owner_connection.execute("update tenants set billing_email = 'old@example.com' where id = $1", legacy.id)
        await owner_connection.execute(
            "alter table tenants add constraint tenants_billing_email_sealed check (billing_email is null or "
            "(billing_email like 'vault:v%' and billing_email_key_version is not null)) not valid"
        )
    assert (await service.get_tenant(legacy.id)).billing_email == "old@example.com"  # shown as it is

    rotated = await service.rotate_pii_key(cipher)
    assert rotated.rewrapped == 4
    rows = await owner_connection.fetch(
        "select id, billing_email, billing_email_key_version from tenants where billing_email is not null"
    )
    assert {row["billing_email_key_version"] for row in rows} == {rotated.version}
    assert all(row["billing_email"].startswith(f"vault:v{rotated.version}:") for row in rows)
    assert cipher.min_decryption_version() == rotated.version
    for number, tenant in enumerate(sealed):
        assert (await service.get_tenant(tenant.id)).billing_email == f"ap{number}@example.com"
    assert (await service.get_tenant(legacy.id)).billing_email == "old@example.com"
