"""The Piccolo tables describe the schema the migrations made: same tables, same columns."""

from __future__ import annotations

import asyncpg

from billing.piccolo_app import APP_CONFIG as BILLING
from plugins_registry.piccolo_app import APP_CONFIG as PLUGINS
from tenants.piccolo_app import APP_CONFIG as TENANTS


async def test_every_piccolo_table_matches_its_migrated_table(app_connection: asyncpg.Connection) -> None:
    for table in [*TENANTS.table_classes, *BILLING.table_classes, *PLUGINS.table_classes]:
        rows = await app_connection.fetch(
            "select column_name from information_schema.columns where table_schema = 'public' and table_name = $1",
            table._meta.tablename,
        )
        migrated = {row["column_name"] for row in rows}
        declared = {column._meta.db_column_name for column in table._meta.columns}
        assert migrated, f"{table._meta.tablename} was not migrated"
        assert declared == migrated, (table._meta.tablename, declared ^ migrated)
