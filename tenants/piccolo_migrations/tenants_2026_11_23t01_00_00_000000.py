"""The tenant's billing email (its billing contact) is stored as transit ciphertext, like the billing profile."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core.migrate import execute_all

ID = "2026-11-23T01:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "billing email as ciphertext"

# A migration cannot reach OpenBao: rows written before this one keep their plaintext (key version null)
# until the next `controlplane secrets rotate --what pii` encrypts them. NOT VALID: the check binds every
# write from now on without failing on those rows.
SCHEMA = """
alter table tenants add column billing_email_key_version integer check (billing_email_key_version >= 1);
alter table tenants add constraint tenants_billing_email_sealed
    check (billing_email is null or (billing_email like 'vault:v%' and billing_email_key_version is not null))
    not valid;
create index tenants_billing_email_key_version_idx on tenants (billing_email_key_version)
    where billing_email is not null;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="tenants", description=DESCRIPTION)

    async def run() -> None:
        await execute_all([SCHEMA])

    manager.add_raw(run)
    return manager
