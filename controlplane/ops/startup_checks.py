"""Checks that refuse to serve rather than run unsafely."""

from __future__ import annotations

from controlplane.core import db
from controlplane.core.secrets import SecretStore
from controlplane.core.settings import Settings


class UnsafeConfiguration(RuntimeError):
    """The process must not start; the message says why."""


def refuse_unsafe_production(settings: Settings, secret_store: SecretStore) -> None:
    problems = settings.production_problems()
    if settings.env == "production" and secret_store.token_is_root():
        problems.append("the OpenBao token is a root token")
    if problems:
        raise UnsafeConfiguration("refusing to start in production: " + "; ".join(problems))


async def refuse_unsafe_database_role() -> None:
    """The app role must not be able to bypass row-level security, in any environment."""
    async with db.anonymous_tx():
        rows = await db.fetch(
            "select r.rolsuper, r.rolbypassrls, "
            # Owning a table, or being a member of a role that does, lets a role switch RLS off on it.
            "(select count(*) from pg_class c where c.relnamespace = 'public'::regnamespace "
            " and pg_has_role(r.oid, c.relowner, 'MEMBER')) as owned "
            "from pg_roles r where r.rolname = current_user"
        )
    if not rows or rows[0]["rolsuper"] or rows[0]["rolbypassrls"] or rows[0]["owned"]:
        raise UnsafeConfiguration(
            "refusing to serve: the app's database role is a superuser, has BYPASSRLS or owns tables "
            "(directly or as a member of their owner), "
            "so row-level security would not isolate tenants"
        )
