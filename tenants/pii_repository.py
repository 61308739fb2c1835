"""Queries of tenants' personal data, stored as transit ciphertext (see `controlplane.core.pii`): billing profiles
and the billing email on the tenant row."""

from __future__ import annotations

import uuid
from typing import Any

from controlplane.core.db import fetch

FIELDS = ("contact_name", "contact_email", "tax_id", "address")
# Taken shared by every write of a ciphertext and exclusively by the rewrap before it retires old key versions,
# so no row written under an old version can land after the check that none is left.
PII_KEY_LOCK = 0x7E17A11


async def share_key_lock() -> None:
    await fetch("select pg_advisory_xact_lock_shared({})", PII_KEY_LOCK)


async def take_key_lock() -> None:
    await fetch("select pg_advisory_xact_lock({})", PII_KEY_LOCK)


async def get(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        "select tenant_id, contact_name, contact_email, tax_id, address, key_version, updated_at "
        "from tenant_billing_profiles where tenant_id = {}",
        tenant_id,
    )
    return rows[0] if rows else None


async def put(tenant_id: uuid.UUID, ciphertexts: dict[str, str | None], key_version: int) -> dict[str, Any]:
    rows = await fetch(
        "insert into tenant_billing_profiles (tenant_id, contact_name, contact_email, tax_id, address, key_version) "
        "values ({}, {}, {}, {}, {}, {}) on conflict (tenant_id) do update set contact_name = excluded.contact_name, "
        "contact_email = excluded.contact_email, tax_id = excluded.tax_id, address = excluded.address, "
        "key_version = excluded.key_version, updated_at = clock_timestamp() "
        "returning tenant_id, key_version, updated_at",
        tenant_id,
        *(ciphertexts[field] for field in FIELDS),
        key_version,
    )
    return rows[0]


async def delete(tenant_id: uuid.UUID) -> bool:
    return bool(await fetch("delete from tenant_billing_profiles where tenant_id = {} returning tenant_id", tenant_id))


async def older_than(version: int, limit: int) -> list[dict[str, Any]]:
    """Rows with ciphertext under a key version before `version`, locked, a batch at a time."""
    return await fetch(
        "select tenant_id, contact_name, contact_email, tax_id, address from tenant_billing_profiles "
        "where key_version < {} order by tenant_id limit {} for update",
        version,
        limit,
    )


async def count_older_than(version: int) -> int:
    rows = await fetch("select count(*) as n from tenant_billing_profiles where key_version < {}", version)
    return int(rows[0]["n"])


async def rewrapped(tenant_id: uuid.UUID, ciphertexts: dict[str, str | None], key_version: int) -> None:
    await fetch(
        "update tenant_billing_profiles set contact_name = {}, contact_email = {}, tax_id = {}, address = {}, "
        "key_version = {} where tenant_id = {}",
        *(ciphertexts[field] for field in FIELDS),
        key_version,
        tenant_id,
    )


async def tenant_emails_older_than(version: int, limit: int) -> list[dict[str, Any]]:
    """Tenants whose billing email is under a key version before `version`, or still plaintext (no version)."""
    return await fetch(
        "select id, billing_email, billing_email_key_version from tenants where billing_email is not null "
        "and coalesce(billing_email_key_version, 0) < {} order by id limit {} for update",
        version,
        limit,
    )


async def count_tenant_emails_older_than(version: int) -> int:
    rows = await fetch(
        "select count(*) as n from tenants "
        "where billing_email is not null and coalesce(billing_email_key_version, 0) < {}",
        version,
    )
    return int(rows[0]["n"])


async def resealed_tenant_email(tenant_id: uuid.UUID, ciphertext: str, key_version: int) -> None:
    await fetch(
        "update tenants set billing_email = {}, billing_email_key_version = {} where id = {}",
        ciphertext,
        key_version,
        tenant_id,
    )
