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


def test_every_table_class_is_listed_in_its_app() -> None:
    """A class left out of its app's `table_classes` would escape the check above."""
    from piccolo.table import Table

    import billing.tables
    import plugins_registry.tables
    import tenants.tables

    for module, app in ((tenants.tables, TENANTS), (billing.tables, BILLING), (plugins_registry.tables, PLUGINS)):
        declared = {
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, Table) and value.__module__ == module.__name__
        }
        assert declared - set(app.table_classes) == set(), module.__name__
