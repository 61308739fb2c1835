"""The history of plugin installs and trials, from which plugin adoption is computed for any month
(`plugins_registry.service.plugin_adoption`): one row per step, written in the transaction of the change.

- `plugin_install_events`: `installed`, `uninstalled` (of one install; a reinstall is a new install, so a new
  `installed`), `trial_started`, `trial_converted` (the trial's license became paid), `trial_ended` (a trial
  that ended without converting: it expired, or its install was uninstalled, or its tenant erased). `at` is when
  the step takes effect, `recorded_at` when it was written: a trial converts or expires at its end, which the
  expiry job may record minutes later.
- Append-only: the app role may read and insert; the trigger refuses any UPDATE or DELETE, whoever asks. An
  erasure keeps these rows: they hold ids, slugs and times, no personal data (like the audit trail).
- RLS forced, the tenant policy and the system scope, as every tenant table.

The backfill writes the history of today's installs and licenses, which keep everything it needs (an uninstalled
install stays as a row, a reinstall is a row of its own, a license stays with its install):
- installed at `installed_at`; uninstalled at `uninstalled_at`;
- a trial started with its install (`installed_at`): the trial's end is the install's time plus the trial;
- converted at `trial_ends_at` when the license is no longer a trial but had one (only the expiry job turns a
  trial into a paid license, and it keeps `trial_ends_at`); this is when it takes effect (the add-on is billed
  from then), not when the job noticed;
- a trial that ended unconverted (still a trial, expired or revoked) ended at its `trial_ends_at`, or earlier
  when it was revoked (uninstalled, erased) before that.
What it cannot know: nothing of the figures is lost, but the backfilled rows' `recorded_at` is the migration's
time, not when each step was first recorded; and a trial past its end whose license the expiry job has not
handled yet has no ending: the job records it (at `trial_ends_at`) when it runs.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

from controlplane.core import rls
from controlplane.core.migrate import app_role, execute_all

ID = "2026-12-04T12:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "plugin install events: the history of installs and trials"

SCHEMA = """
create table plugin_install_events (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references tenants (id),
    plugin_id uuid not null references plugins (id),
    slug text not null,
    kind text not null check (kind in ('installed', 'uninstalled', 'trial_started', 'trial_converted', 'trial_ended')),
    at timestamptz not null,
    recorded_at timestamptz not null default clock_timestamp()
);
-- A month's steps, and each tenant and plugin's last step before an instant (in the order written).
create index plugin_install_events_at_idx on plugin_install_events (at);
create index plugin_install_events_install_idx on plugin_install_events (plugin_id, tenant_id, id);

create function plugin_install_events_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'plugin install event % is history: it is never changed or removed', old.id
        using errcode = 'check_violation';
end $$;
create trigger plugin_install_events_append_only before update or delete on plugin_install_events
    for each row execute function plugin_install_events_append_only();
"""

# In time order (ids follow it); the policies are forced on the owner too: the system scope sees every tenant.
BACKFILL = """
select set_config('app.scope', 'system', true);
insert into plugin_install_events (tenant_id, plugin_id, slug, kind, at)
select tenant_id, plugin_id, slug, kind, at from (
    select tenant_id, plugin_id, slug, 'installed' as kind, installed_at as at, 0 as step from plugin_installs
    union all
    select l.tenant_id, l.plugin_id, l.slug, 'trial_started', i.installed_at, 1
    from licenses l join plugin_installs i on i.id = l.install_id
    where l.trial_ends_at is not null
    union all
    select tenant_id, plugin_id, slug, 'trial_converted', trial_ends_at, 2 from licenses
    where not trial and trial_ends_at is not null
    union all
    select tenant_id, plugin_id, slug, 'trial_ended', least(trial_ends_at, coalesce(revoked_at, expired_at)), 2
    from licenses
    where trial and status in ('expired', 'revoked')
    union all
    -- An uninstall sets both; `updated_at` is that same step's time.
    select tenant_id, plugin_id, slug, 'uninstalled', coalesce(uninstalled_at, updated_at), 3 from plugin_installs
    where status = 'uninstalled'
) steps
order by at, step;
"""


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="plugins_registry", description=DESCRIPTION)
    role = app_role()

    async def run() -> None:
        await execute_all(
            [
                SCHEMA,
                rls.tenant_isolation("plugin_install_events"),
                # History: read and added to, never changed or removed (the trigger refuses even the owner).
                rls.grant_to_app(role, "plugin_install_events", "select, insert"),
                BACKFILL,
            ]
        )

    manager.add_raw(run)
    return manager
