"""Queries of tenants' personal data: each tenant's wrapped data key, the billing profiles and the billing email on
the tenant row, sealed with that key (see `controlplane.core.pii`), or transit ciphertext from before the keys."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from controlplane.core.db import fetch

FIELDS = ("contact_name", "contact_email", "tax_id", "address")
# Taken shared by every transaction that stores a new wrapped data key or reads one to unwrap it, and
# exclusively by the rewrap before it retires old key versions, so no key under an old version can land, or be
# unwrapped, after the check that none is left.
PII_KEY_LOCK = 0x7E17A11


async def share_key_lock() -> None:
    await fetch("select pg_advisory_xact_lock_shared({})", PII_KEY_LOCK)


async def take_key_lock() -> None:
    await fetch("select pg_advisory_xact_lock({})", PII_KEY_LOCK)


# -- data keys ---------------------------------------------------------------------------------------------------


async def data_keys(tenant_ids: Sequence[uuid.UUID]) -> list[dict[str, Any]]:
    return await fetch(
        "select tenant_id, wrapped_key from tenant_data_keys where tenant_id = any({})", list(tenant_ids)
    )


async def insert_data_key(tenant_id: uuid.UUID, wrapped_key: str, key_version: int) -> bool:
    """False when the tenant has one already (another transaction made it first): that one stays."""
    rows = await fetch(
        "insert into tenant_data_keys (tenant_id, wrapped_key, key_version) values ({}, {}, {}) "
        "on conflict (tenant_id) do nothing returning tenant_id",
        tenant_id,
        wrapped_key,
        key_version,
    )
    return bool(rows)


async def delete_data_key(tenant_id: uuid.UUID) -> bool:
    return bool(await fetch("delete from tenant_data_keys where tenant_id = {} returning tenant_id", tenant_id))


async def data_keys_older_than(version: int, limit: int) -> list[dict[str, Any]]:
    """Data keys wrapped under a key version before `version`, locked, a batch at a time."""
    return await fetch(
        "select tenant_id, wrapped_key from tenant_data_keys where key_version < {} "
        "order by tenant_id limit {} for update",
        version,
        limit,
    )


async def count_data_keys_older_than(version: int) -> int:
    rows = await fetch("select count(*) as n from tenant_data_keys where key_version < {}", version)
    return int(rows[0]["n"])


async def rewrapped_data_key(tenant_id: uuid.UUID, wrapped_key: str, key_version: int) -> None:
    await fetch(
        "update tenant_data_keys set wrapped_key = {}, key_version = {} where tenant_id = {}",
        wrapped_key,
        key_version,
        tenant_id,
    )


# -- billing profiles --------------------------------------------------------------------------------------------


async def get(tenant_id: uuid.UUID) -> dict[str, Any] | None:
    rows = await fetch(
        "select tenant_id, contact_name, contact_email, tax_id, address, key_version, updated_at "
        "from tenant_billing_profiles where tenant_id = {}",
        tenant_id,
    )
    return rows[0] if rows else None


async def put(tenant_id: uuid.UUID, sealed: dict[str, str | None]) -> dict[str, Any]:
    """The profile's fields, sealed with the tenant's data key."""
    rows = await fetch(
        "insert into tenant_billing_profiles (tenant_id, contact_name, contact_email, tax_id, address, key_version) "
        "values ({}, {}, {}, {}, {}, null) on conflict (tenant_id) do update set contact_name = excluded.contact_name, "
        "contact_email = excluded.contact_email, tax_id = excluded.tax_id, address = excluded.address, "
        "key_version = null, updated_at = clock_timestamp() "
        "returning tenant_id, updated_at",
        tenant_id,
        *(sealed[field] for field in FIELDS),
    )
    return rows[0]


async def delete(tenant_id: uuid.UUID) -> bool:
    return bool(await fetch("delete from tenant_billing_profiles where tenant_id = {} returning tenant_id", tenant_id))


async def unmoved_profiles(limit: int) -> list[dict[str, Any]]:
    """Profiles still transit ciphertext (a version beside them), locked, a batch at a time."""
    return await fetch(
        "select tenant_id, contact_name, contact_email, tax_id, address from tenant_billing_profiles "
        "where key_version is not null order by tenant_id limit {} for update",
        limit,
    )


async def count_unmoved_profiles() -> int:
    rows = await fetch("select count(*) as n from tenant_billing_profiles where key_version is not null")
    return int(rows[0]["n"])


async def moved_profile(tenant_id: uuid.UUID, sealed: dict[str, str | None]) -> None:
    """Its fields sealed with the data key now (they were transit ciphertext); nothing else of it changes."""
    await fetch(
        "update tenant_billing_profiles set contact_name = {}, contact_email = {}, tax_id = {}, address = {}, "
        "key_version = null where tenant_id = {}",
        *(sealed[field] for field in FIELDS),
        tenant_id,
    )


# -- billing emails ----------------------------------------------------------------------------------------------


async def unmoved_tenant_emails(limit: int) -> list[dict[str, Any]]:
    """Tenants whose billing email is not sealed with their data key: transit ciphertext, or still plaintext."""
    return await fetch(
        "select id, billing_email from tenants where billing_email is not null and billing_email not like 'dk:v1:%' "
        "order by id limit {} for update",
        limit,
    )


async def count_unmoved_tenant_emails() -> int:
    rows = await fetch(
        "select count(*) as n from tenants where billing_email is not null and billing_email not like 'dk:v1:%'"
    )
    return int(rows[0]["n"])


async def moved_tenant_email(tenant_id: uuid.UUID, sealed: str) -> None:
    await fetch(
        "update tenants set billing_email = {}, billing_email_key_version = null where id = {}", sealed, tenant_id
    )
