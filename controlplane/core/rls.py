"""SQL for row-level security, shared by every domain's migrations so every policy has one shape.

The context functions read transaction-local settings made by `controlplane.core.db`. `nullif(…, '')` matters:
after a transaction that set the value ends, the setting reads '' (not NULL) on that pooled connection,
and '' must mean "no tenant", i.e. no rows. Each call is wrapped in `(select …)` so PostgreSQL evaluates
it once per statement instead of once per row.
"""

from __future__ import annotations

CURRENT_TENANT = "(select nullif(current_setting('app.tenant_id', true), '')::uuid)"
CURRENT_USER = "(select nullif(current_setting('app.user_id', true), '')::uuid)"
CURRENT_RESELLER = "(select nullif(current_setting('app.reseller_id', true), '')::uuid)"
SYSTEM_SCOPE = "(select coalesce(current_setting('app.scope', true), '') = 'system')"


def tenant_isolation(table: str, column: str = "tenant_id") -> str:
    """RLS for a table of tenant rows: one tenant in a tenant context, all of them in a system context.

    FORCE makes the policies apply to the table owner as well; the app role owns nothing and cannot
    bypass RLS, so without a context it reads and writes nothing.
    """
    return f"""
        alter table {table} enable row level security;
        alter table {table} force row level security;
        create policy tenant_isolation on {table}
            using ({column} = {CURRENT_TENANT})
            with check ({column} = {CURRENT_TENANT});
        create policy platform_access on {table}
            using ({SYSTEM_SCOPE})
            with check ({SYSTEM_SCOPE});
        create index if not exists {table}_{column}_idx on {table} ({column});
    """


def partner_isolation(table: str, column: str = "reseller_id") -> str:
    """RLS for a table of one partner's rows: that partner in its partner context (`app.reseller_id`: a
    reseller's id is its partner id), all of them in a system context."""
    index = "" if column == "id" else f"create index if not exists {table}_{column}_idx on {table} ({column});"
    return f"""
        alter table {table} enable row level security;
        alter table {table} force row level security;
        create policy partner_isolation on {table}
            using ({column} = {CURRENT_RESELLER})
            with check ({column} = {CURRENT_RESELLER});
        create policy platform_access on {table}
            using ({SYSTEM_SCOPE})
            with check ({SYSTEM_SCOPE});
        {index}
    """


def grant_to_app(app_role: str, table: str, privileges: str = "select, insert, update, delete") -> str:
    return f"grant {privileges} on {table} to {app_role};"
