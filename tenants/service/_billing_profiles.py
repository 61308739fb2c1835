"""A tenant's billing profile: encrypted by OpenBao transit before it is stored, decrypted only to be shown;
and the rewrap that moves every stored ciphertext of tenants' personal data to the newest key version."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from controlplane.core.auth.principal import Principal
from controlplane.core.db import SystemReason, system_tx, tenant_tx
from controlplane.core.pii import PiiCipher, PiiRotation, key_version
from tenants import audit, repository
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
        # Held to commit: the rewrap cannot retire the key version these ciphertexts were made with meanwhile.
        await profiles.share_key_lock()
        encrypted = dict(
            zip(texts, await asyncio.to_thread(cipher.encrypt, tenant_id, list(texts.values())), strict=True)
        )
        if encrypted:
            version = min(key_version(text) for text in encrypted.values())
            row = await profiles.put(tenant_id, {field: encrypted.get(field) for field in profiles.FIELDS}, version)
            updated_at = row["updated_at"]
        else:
            await profiles.delete(tenant_id)
            updated_at = None
        await audit.record(
            actor, tenant_id, "tenant.billing_profile_updated", "tenant", tenant_id, after={"fields": sorted(texts)}
        )
    return _shown(texts, updated_at)


async def get_billing_profile(cipher: PiiCipher, tenant_id: uuid.UUID) -> BillingProfileView:
    async with tenant_tx(tenant_id):
        if await repository.get_tenant(tenant_id) is None:
            raise TenantNotFound()
        row = await profiles.get(tenant_id)
    if row is None:
        return _shown({}, None)
    stored = {field: row[field] for field in profiles.FIELDS if row[field]}
    plain = await asyncio.to_thread(cipher.decrypt, tenant_id, list(stored.values()))
    return _shown(dict(zip(stored, plain, strict=True)), row["updated_at"])


async def rewrap_personal_data(cipher: PiiCipher, *, batch_size: int = REWRAP_BATCH) -> PiiRotation:
    """Every stored ciphertext (billing profiles, tenants' billing emails) rewrapped to the key's latest version,
    and any billing email still in plaintext sealed, a batch per transaction (an interrupted run leaves whole
    rows on the old version, and the next run carries on); then versions before it stop decrypting, once
    none is left, checked under the lock every writer shares."""
    version = await asyncio.to_thread(cipher.latest_version)
    moved = 0
    while True:
        async with system_tx(SystemReason.PLATFORM_JOB):
            done = await _rewrap_profiles(cipher, version, batch_size) or await _reseal_emails(
                cipher, version, batch_size
            )
            if done:
                moved += done
                continue
            await profiles.take_key_lock()
            left = await profiles.count_older_than(version) + await profiles.count_tenant_emails_older_than(version)
            if left == 0:
                await asyncio.to_thread(cipher.retire_versions_before, version)
                return PiiRotation(version, moved)


async def _rewrap_profiles(cipher: PiiCipher, version: int, batch_size: int) -> int:
    rows = await profiles.older_than(version, batch_size)
    stored = [(row["tenant_id"], field, row[field]) for row in rows for field in profiles.FIELDS if row[field]]
    fresh = await asyncio.to_thread(cipher.rewrap, [(tenant, text) for tenant, _field, text in stored])
    by_tenant: dict[uuid.UUID, dict[str, str | None]] = {row["tenant_id"]: {} for row in rows}
    for (tenant, field, _old), text in zip(stored, fresh, strict=True):
        by_tenant[tenant][field] = text
    for tenant, texts in by_tenant.items():
        await profiles.rewrapped(tenant, {field: texts.get(field) for field in profiles.FIELDS}, version)
    return len(rows)


async def _reseal_emails(cipher: PiiCipher, version: int, batch_size: int) -> int:
    rows = await profiles.tenant_emails_older_than(version, batch_size)
    legacy = [(row["id"], row["billing_email"]) for row in rows if row["billing_email_key_version"] is None]
    sealed = [(row["id"], row["billing_email"]) for row in rows if row["billing_email_key_version"] is not None]
    fresh = await asyncio.to_thread(cipher.encrypt_many, legacy) + await asyncio.to_thread(cipher.rewrap, sealed)
    for (tenant, _old), text in zip(legacy + sealed, fresh, strict=True):
        await profiles.resealed_tenant_email(tenant, text, key_version(text))
    return len(rows)


async def rotate_pii_key(cipher: PiiCipher, *, rotate_key: bool = True) -> PiiRotation:
    """Rotate the key (unless only finishing an interrupted rewrap), then rewrap and retire older versions."""
    if rotate_key:
        await asyncio.to_thread(cipher.rotate)
    return await rewrap_personal_data(cipher)
