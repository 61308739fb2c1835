"""A tenant's billing profile: sealed with the tenant's data key before it is stored, opened only to be shown;
and the PII rewrap: every tenant's wrapped data key moved to the newest `tenant-pii` version, and personal data
from before the data keys (transit ciphertext, or a plaintext billing email) sealed with them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pii import DataKey, PersonalDataUnreadable, PiiCipher, PiiRotation
from tenants import audit, data_keys, repository
from tenants import pii_repository as profiles
from tenants.errors import TenantNotFound

REWRAP_BATCH = 200


@dataclass(frozen=True, slots=True)
class PostalAddress:
    line1: str
    city: str
    country: str
    line2: str | None = None
    postal_code: str | None = None
    region: str | None = None


@dataclass(frozen=True, slots=True)
class BillingProfileValues:
    """The whole profile to store: a field left None is cleared."""

    contact_name: str | None = None
    contact_email: str | None = None
    tax_id: str | None = None
    address: PostalAddress | None = None


@dataclass(frozen=True, slots=True)
class BillingProfileView:
    """The profile decrypted; every field None (and `updated_at` None) when the tenant has none."""

    contact_name: str | None
    contact_email: str | None
    tax_id: str | None
    address: PostalAddress | None
    updated_at: datetime | None


def _plaintexts(values: BillingProfileValues) -> dict[str, str]:
    """The profile's fields as the strings to encrypt (the address as canonical JSON); absent ones left out."""
    texts = {
        field: text
        for field, text in (
            ("contact_name", values.contact_name),
            ("contact_email", values.contact_email),
            ("tax_id", values.tax_id),
        )
        if text
    }
    if values.address:
        texts["address"] = json.dumps(dataclasses.asdict(values.address), sort_keys=True, separators=(",", ":"))
    return texts


def _shown(decrypted: dict[str, str], updated_at: datetime | None) -> BillingProfileView:
    address = decrypted.get("address")
    return BillingProfileView(
        contact_name=decrypted.get("contact_name"),
        contact_email=decrypted.get("contact_email"),
        tax_id=decrypted.get("tax_id"),
        address=PostalAddress(**json.loads(address)) if address else None,
        updated_at=updated_at,
    )


async def put_billing_profile(
    actor: Principal, cipher: PiiCipher, tenant_id: uuid.UUID, values: BillingProfileValues
) -> BillingProfileView:
    """Replace the profile (every field; none given clears it). Repeating the same request leaves the same
    profile, so it is safe to retry. The audit trail names the fields, never their values."""
    texts = _plaintexts(values)
    async with tenant_tx(tenant_id):
        if await repository.get_tenant(tenant_id, lock="share") is None:
            raise TenantNotFound()
        if texts:
            key = await data_keys.for_sealing(cipher, tenant_id)
            row = await profiles.put(tenant_id, {field: _sealed(key, texts.get(field)) for field in profiles.FIELDS})
            updated_at = row["updated_at"]
        else:
            await profiles.delete(tenant_id)
            updated_at = None
        await audit.record(
            actor, tenant_id, "tenant.billing_profile_updated", "tenant", tenant_id, after={"fields": sorted(texts)}
        )
    return _shown(texts, updated_at)


def _sealed(key: DataKey, text: str | None) -> str | None:
    return key.seal(text) if text is not None else None


async def get_billing_profile(cipher: PiiCipher, tenant_id: uuid.UUID) -> BillingProfileView:
    """The profile opened with the tenant's data key (no OpenBao call once it is in memory); one stored before
    the data keys, transit ciphertext, decrypted by transit until the next PII rewrap moves it."""
    async with tenant_tx(tenant_id):
        if await repository.get_tenant(tenant_id) is None:
            raise TenantNotFound()
        row = await profiles.get(tenant_id)
    if row is None:
        return _shown({}, None)
    stored = {field: row[field] for field in profiles.FIELDS if row[field]}
    if row["key_version"] is not None:
        plain = await asyncio.to_thread(cipher.decrypt, tenant_id, list(stored.values()))
        return _shown(dict(zip(stored, plain, strict=True)), row["updated_at"])
    keys = await data_keys.for_reading(cipher, [tenant_id])
    if tenant_id not in keys:
        raise PersonalDataUnreadable("the tenant has no data key (erased)")
    return _shown({field: keys[tenant_id].open(text) for field, text in stored.items()}, row["updated_at"])


async def rewrap_personal_data(cipher: PiiCipher, *, batch_size: int = REWRAP_BATCH) -> PiiRotation:
    """Every tenant's wrapped data key rewrapped to the key's latest version, then every value from before the
    data keys (a profile or billing email in transit ciphertext, a billing email in plaintext) sealed with its
    tenant's data key, a batch per transaction (an interrupted run leaves whole rows as they were, and the next
    run carries on); then versions before the latest stop decrypting, once nothing is left under them, checked
    under the lock every new or unwrapped data key shares."""
    version = await asyncio.to_thread(cipher.latest_version)
    rewrapped = moved = 0
    while True:
        async with system_tx(SystemReason.PLATFORM_JOB):
            if done := await data_keys.rewrap_older_than(cipher, version, batch_size):
                rewrapped += done
                continue
            if done := await _move_profiles(cipher, batch_size) or await _move_emails(cipher, batch_size):
                moved += done
                continue
            await profiles.take_key_lock()
            left = (
                await profiles.count_data_keys_older_than(version)
                + await profiles.count_unmoved_profiles()
                + await profiles.count_unmoved_tenant_emails()
            )
            if left == 0:
                await asyncio.to_thread(cipher.retire_versions_before, version)
                return PiiRotation(version, rewrapped, moved)


async def _move_profiles(cipher: PiiCipher, batch_size: int) -> int:
    rows = await profiles.unmoved_profiles(batch_size)
    if not rows:
        return 0
    stored = [(row["tenant_id"], field, row[field]) for row in rows for field in profiles.FIELDS if row[field]]
    plain = await asyncio.to_thread(cipher.decrypt_many, [(tenant, text) for tenant, _field, text in stored])
    keys = await data_keys.for_jobs(cipher, [row["tenant_id"] for row in rows])
    by_tenant: dict[uuid.UUID, dict[str, str | None]] = {row["tenant_id"]: {} for row in rows}
    for (tenant, field, _old), text in zip(stored, plain, strict=True):
        by_tenant[tenant][field] = keys[tenant].seal(text)
    for tenant, sealed in by_tenant.items():
        await profiles.moved_profile(tenant, {field: sealed.get(field) for field in profiles.FIELDS})
    return len(rows)


async def _move_emails(cipher: PiiCipher, batch_size: int) -> int:
    rows = await profiles.unmoved_tenant_emails(batch_size)
    if not rows:
        return 0
    encrypted = [(row["id"], row["billing_email"]) for row in rows if row["billing_email"].startswith("vault:v")]
    plain = {row["id"]: row["billing_email"] for row in rows}  # plaintext from before the column was encrypted
    plain |= dict(
        zip(
            (tenant for tenant, _text in encrypted),
            await asyncio.to_thread(cipher.decrypt_many, encrypted),
            strict=True,
        )
    )
    keys = await data_keys.for_jobs(cipher, list(plain))
    for tenant, text in plain.items():
        await profiles.moved_tenant_email(tenant, keys[tenant].seal(text))
    return len(rows)


async def rotate_pii_key(cipher: PiiCipher, *, rotate_key: bool = True) -> PiiRotation:
    """Rotate the key (unless only finishing an interrupted rewrap), then rewrap and retire older versions."""
    if rotate_key:
        await asyncio.to_thread(cipher.rotate)
    return await rewrap_personal_data(cipher)
