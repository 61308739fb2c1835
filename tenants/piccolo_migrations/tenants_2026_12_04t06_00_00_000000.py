"""Envelope encryption of tenants' personal data: each tenant's data key, stored only wrapped by transit
(`tenant-pii`), and the billing email and profile sealed with it (`dk:v1:…`) instead of by transit per value.

A migration cannot reach OpenBao: values already stored stay transit ciphertext (`vault:v<N>:…`, still read
through transit) until the next `controlplane secrets rotate --what pii` moves them to their tenant's data key.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T06:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "tenants: a wrapped data key per tenant; personal data sealed with it"

DATA_KEYS = """
create table tenant_data_keys (
    -- Deferred: a new tenant's key is made (when its billing email is sealed) before its row is inserted.
    tenant_id uuid primary key references tenants (id) deferrable initially deferred,
    -- The data key wrapped by transit (key tenant-pii, the tenant as context); never stored unwrapped.
    wrapped_key text not null check (wrapped_key like 'vault:v%'),
    -- Its tenant-pii version: a rotation rewraps the keys left on older versions, found by this index.
    key_version integer not null check (key_version >= 1),
    created_at timestamptz not null default clock_timestamp()
);
create index tenant_data_keys_key_version_idx on tenant_data_keys (key_version);
"""

# A billing email is sealed with the data key (no transit version) or, from before, transit ciphertext (with its
# version). NOT VALID as before: rows from before the column was encrypted keep their plaintext until a rewrap.
BILLING_EMAIL = """
alter table tenants drop constraint tenants_billing_email_sealed;
alter table tenants add constraint tenants_billing_email_sealed check (
    billing_email is null
    or (billing_email like 'dk:v1:%' and billing_email_key_version is null)
    or (billing_email like 'vault:v%' and billing_email_key_version is not null)
) not valid;
drop index tenants_billing_email_key_version_idx;
create index tenants_billing_email_unmoved_idx on tenants (id)
    where billing_email is not null and billing_email not like 'dk:v1:%';
"""

# A profile is sealed whole: every field with the data key (no version), or every field transit ciphertext of
# the version kept beside them.
BILLING_PROFILE = """
alter table tenant_billing_profiles
    drop constraint tenant_billing_profiles_contact_name_check,
    drop constraint tenant_billing_profiles_contact_email_check,
    drop constraint tenant_billing_profiles_tax_id_check,
    drop constraint tenant_billing_profiles_address_check,
    alter column key_version drop not null,
    add constraint tenant_billing_profiles_sealed check (
        (key_version is null
            and coalesce(contact_name, 'dk:v1:') like 'dk:v1:%' and coalesce(contact_email, 'dk:v1:') like 'dk:v1:%'
            and coalesce(tax_id, 'dk:v1:') like 'dk:v1:%' and coalesce(address, 'dk:v1:') like 'dk:v1:%')
        or (key_version is not null
            and coalesce(contact_name, 'vault:v') like 'vault:v%' and coalesce(contact_email, 'vault:v') like 'vault:v%'
            and coalesce(tax_id, 'vault:v') like 'vault:v%' and coalesce(address, 'vault:v') like 'vault:v%')
    );
drop index tenant_billing_profiles_key_version_idx;
create index tenant_billing_profiles_unmoved_idx on tenant_billing_profiles (tenant_id) where key_version is not null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                DATA_KEYS,
                rls.tenant_isolation("tenant_data_keys"),
                rls.grant_to_app(role, "tenant_data_keys", "select, insert, update, delete"),
                BILLING_EMAIL,
                BILLING_PROFILE,
            ]
        )

    manager.add_raw(run)
    return manager
