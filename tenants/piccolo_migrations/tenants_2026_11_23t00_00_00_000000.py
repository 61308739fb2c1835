"""A tenant's billing profile (contact, tax id, address): personal data, stored only as transit ciphertext."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-11-23T00:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "encrypted billing profiles"

SCHEMA = """
create table tenant_billing_profiles (
    tenant_id uuid primary key references tenants (id),
    -- OpenBao transit ciphertexts (key tenant-pii, the tenant as context); the checks refuse plaintext.
    contact_name text check (contact_name like 'vault:v%'),
    contact_email text check (contact_email like 'vault:v%'),
    tax_id text check (tax_id like 'vault:v%'),
    address text check (address like 'vault:v%'),
    -- The key version of every ciphertext in the row: a rewrap finds the rows left on older versions.
    key_version integer not null check (key_version >= 1),
    updated_at timestamptz not null default clock_timestamp()
);
create index tenant_billing_profiles_key_version_idx on tenant_billing_profiles (key_version);
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("tenant_billing_profiles"),
                rls.grant_to_app(role, "tenant_billing_profiles", "select, insert, update, delete"),
            ]
        )

    manager.add_raw(run)
    return manager
