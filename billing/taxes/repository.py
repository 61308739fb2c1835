"""Tax rates (a platform-wide catalogue: added and archived, never changed) and each tenant's list of them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from controlplane.core.db import fetch
from controlplane.core.pagination import PageRequest, keyset_clause

COLUMNS = "id, code, name, rate_bps, jurisdiction, archived_at, created_at"


async def insert_rate(code: str, name: str, rate_bps: int, jurisdiction: str) -> dict[str, Any] | None:
    """The new rate, or None when the code is taken."""
    rows = await fetch(
        f"insert into tax_rates (id, code, name, rate_bps, jurisdiction) values ({{}}, {{}}, {{}}, {{}}, {{}}) "
        f"on conflict (code) do nothing returning {COLUMNS}",
        uuid.uuid4(),
        code,
        name,
        rate_bps,
        jurisdiction,
    )
    return rows[0] if rows else None


async def get_rate(code: str, *, lock: bool = False) -> dict[str, Any] | None:
    rows = await fetch(f"select {COLUMNS} from tax_rates where code = {{}}{' for update' if lock else ''}", code)
    return rows[0] if rows else None


async def rates_by_code(codes: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The rates of `codes`, locked against archiving until the caller's transaction ends."""
    rows = await fetch(
        f"select {COLUMNS} from tax_rates where code = any({{}}::text[]) order by code for share", list(codes)
    )
    return {row["code"]: row for row in rows}


async def list_rates(page: PageRequest) -> list[dict[str, Any]]:
    clause, args = keyset_clause(page)
    return await fetch(
        f"select {COLUMNS} from tax_rates where true{clause} order by created_at, id limit {{}}",
        *args,
        page.limit + 1,
    )


async def archive_rate(code: str) -> dict[str, Any]:
    rows = await fetch(
        f"update tax_rates set archived_at = now() where code = {{}} and archived_at is null returning {COLUMNS}",
        code,
    )
    return rows[0]


async def tenant_rates(tenant_id: uuid.UUID) -> list[dict[str, Any]]:
    """Inside the tenant's transaction: its rates in order (archived ones included: they stay)."""
    return await fetch(
        "select r.code, r.name, r.rate_bps, r.jurisdiction, r.archived_at from tenant_tax_rates t "
        "join tax_rates r on r.code = t.tax_rate_code where t.tenant_id = {} order by t.position",
        tenant_id,
    )


async def replace_tenant_rates(tenant_id: uuid.UUID, codes: Sequence[str]) -> None:
    await fetch("delete from tenant_tax_rates where tenant_id = {}", tenant_id)
    if codes:
        await fetch(
            "insert into tenant_tax_rates (tenant_id, position, tax_rate_code) "
            "select {}, t.position - 1, t.code from unnest({}::text[]) with ordinality as t (code, position)",
            tenant_id,
            list(codes),
        )


async def lock_tenant(tenant_id: uuid.UUID) -> bool:
    """Serialize changes of one tenant's list (two PUTs at once would otherwise collide on its keys); False
    when there is no such tenant."""
    return bool(await fetch("select id from tenants where id = {} for no key update", tenant_id))
