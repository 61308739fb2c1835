"""Backups of the control plane's database, and restore drills that prove a backup can be used.

`create_backup` dumps the database with the `pg_dump` of the PostgreSQL build the stack runs (the
`pgserver` wheel's), in custom format, as the owner role, into `<dir>/controlplane-<UTC time>.dump`, with
`<same name>.json` beside it: file, sha256, size, created_at, database, server and pg_dump versions and
per-table row counts. Consistency: the counts run in a REPEATABLE READ transaction that first exports its
snapshot (`pg_export_snapshot()`), and `pg_dump --snapshot` dumps from that very snapshot while the
transaction stays open, so the counts describe exactly the rows in the dump.

Row-level security is forced on tenant tables, so the owner sees rows only in the platform scope: both the
counting connection and pg_dump start with `app.scope=system` (as `tests/conftest.py::connect_as_inspector`
does), and pg_dump runs with `--enable-row-security` (otherwise it refuses tables whose policies apply).

`restore_check` takes the newest backup, verifies its size and sha256 before anything else, restores it as
the owner into a scratch database on the same server (`restore_check_<UTC time>_<random>`, dropped
afterwards), then checks the row counts against the manifest, the RLS catalogue (every table with a
`tenant_id` column has RLS enabled and forced and a policy on `app.tenant_id`) and the ledger
(`billing.service.verify_ledger()` as the app role, which opens its own `system_tx`). Each drill is
appended to `<dir>/restore-drills.json` (the last 50 are kept); `latest_backup` and `last_drill` read the
folder back for a readiness check. Creating a database needs CREATEDB, which the owner role lacks in the dev
stack, so the scratch database is created (owned by the owner role) through an admin connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from billing import service as billing
from controlplane.core.db import run_with_pool
from controlplane.devstack.files import read_json, write_private_json
from controlplane.devstack.postgres_service import SUPERUSER

BACKUP_DIR_ENV = "CONTROLPLANE_BACKUP_DIR"
ADMIN_URL_ENV = "CONTROLPLANE_RESTORE_ADMIN_URL"
DRILLS_FILE = "restore-drills.json"
KEEP_DRILLS = 50
PREFIX = "controlplane-"
_LEDGER_DSN_ENV = "CONTROLPLANE_LEDGER_CHECK_DSN"  # the child process's DSN, kept out of argv
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SYSTEM = {"app.scope": "system"}

TABLES_SQL = """
select n.nspname as schema, c.relname as name
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and not c.relispartition
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
order by 1, 2
"""

# The idea of tests/integration/test_rls_catalogue.py: tenant tables are found by their tenant_id column.
TENANT_TABLES_SQL = """
select c.relname, c.relrowsecurity, c.relforcerowsecurity,
       coalesce(array_agg(p.polname::text) filter (where p.polname is not null), '{}') as policies,
       coalesce(bool_or(regexp_replace(lower(pg_get_expr(p.polqual, p.polrelid)), '\\s', '', 'g')
                        like '%current_setting(''app.tenant_id''%'
                    and regexp_replace(lower(pg_get_expr(p.polwithcheck, p.polrelid)), '\\s', '', 'g')
                        like '%current_setting(''app.tenant_id''%'), false) as isolating
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_policy p on p.polrelid = c.oid
where n.nspname = 'public' and c.relkind in ('r', 'p')
  and (c.relname = 'tenants' or exists (
        select 1 from pg_attribute a
        where a.attrelid = c.oid and a.attname = 'tenant_id' and a.attnum > 0 and not a.attisdropped))
group by c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity
order by c.relname
"""


class BackupError(Exception):
    """A backup could not be made, found or trusted."""


@dataclass(frozen=True)
class Backup:
    dump: Path
    manifest_path: Path
    manifest: dict[str, Any]

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.manifest["created_at"])

    def age_seconds(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.created_at).total_seconds()


@dataclass
class Drill:
    backup: str | None
    started_at: str
    finished_at: str = ""
    passed: bool = False
    database: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "passed": self.passed,
            "database": self.database,
            "details": self.details,
            "problems": self.problems,
        }


# -- reading the folder (for readiness) ---------------------------------------------------------------


def backup_dir(environ: Mapping[str, str], devstack_root: Path) -> Path:
    return Path(environ.get(BACKUP_DIR_ENV) or devstack_root / "backups")


def latest_backup(directory: Path) -> Backup | None:
    """The newest backup with a manifest (written last, so a half-made backup has none), or None."""
    manifests = sorted(Path(directory).glob(f"{PREFIX}*.json"))
    if not manifests:
        return None
    path = manifests[-1]
    try:
        manifest = read_json(path)
        return Backup(dump=path.with_name(manifest["file"]), manifest_path=path, manifest=manifest)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"unreadable manifest {path}: {exc}") from exc


def drills(directory: Path) -> list[dict[str, Any]]:
    path = Path(directory) / DRILLS_FILE
    if not path.exists():
        return []
    try:
        return list(read_json(path))
    except (OSError, ValueError, TypeError) as exc:
        raise BackupError(f"unreadable drill record {path}: {exc}") from exc


def last_drill(directory: Path) -> dict[str, Any] | None:
    """The latest restore drill (`passed`, `backup`, `started_at`, `finished_at`, `details`), or None."""
    recorded = drills(directory)
    return recorded[-1] if recorded else None


def record_drill(directory: Path, drill: Drill) -> None:
    write_private_json(Path(directory) / DRILLS_FILE, [*drills(directory), drill.to_json()][-KEEP_DRILLS:])


# -- PostgreSQL's tools and connections ----------------------------------------------------------------


def pg_bin(name: str) -> Path:
    """A client binary of the PostgreSQL build the dev stack runs: the pgserver wheel's.

    Found from the package's location without importing it (its import probes XDG_RUNTIME_DIR)."""
    spec = find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise BackupError("pgserver is not installed: install the `devstack` extra")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / name
    if not path.exists():
        raise BackupError(f"{path} is missing from the pgserver wheel")
    return path


def _libpq(url: str, *, database: str | None = None) -> tuple[list[str], dict[str, str]]:
    """libpq arguments and environment for `url`; the password goes in PGPASSWORD, never in argv."""
    parts = urlsplit(url)
    env = {**os.environ, "PGOPTIONS": f"{os.environ.get('PGOPTIONS', '')} -c app.scope=system".strip()}
    if parts.password:
        env["PGPASSWORD"] = parts.password
    args = ["-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432), "-U", parts.username or ""]
    return [*args, "-d", database or parts.path.lstrip("/")], env


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def _role(url: str) -> str:
    role = urlsplit(url).username or ""
    if not _NAME.match(role):
        raise BackupError(f"{role!r} is not a plain role name")
    return role


def devstack_admin_url(devstack_root: Path, owner_url: str) -> str | None:
    """The dev stack's superuser on the owner URL's server, if this dev stack made that server."""

    credentials = Path(devstack_root) / "postgres" / "credentials.json"
    state = Path(devstack_root) / "state.json"
    if not credentials.exists() or not state.exists():
        return None
    recorded = urlsplit(read_json(state).get("env", {}).get("DATABASE_OWNER_URL", ""))
    given = urlsplit(owner_url)
    if (recorded.hostname, recorded.port) != (given.hostname, given.port):
        return None
    password = read_json(credentials)[SUPERUSER]
    return urlunsplit(given._replace(netloc=f"{SUPERUSER}:{password}@{given.hostname}:{given.port}", path="/postgres"))


async def _run(command: list[str], env: dict[str, str]) -> str:
    process = await asyncio.create_subprocess_exec(*command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed ({process.returncode}): {err.decode().strip()}")
    return out.decode()


async def _row_counts(connection: asyncpg.Connection) -> dict[str, int]:
    counts = {}
    for row in await connection.fetch(TABLES_SQL):
        quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (row["schema"], row["name"]))
        counts[f"{row['schema']}.{row['name']}"] = await connection.fetchval(f"select count(*) from {quoted}")  # noqa: S608
    return counts


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- backup ---------------------------------------------------------------------------------------------


async def create_backup(owner_url: str, directory: Path, *, now: datetime | None = None) -> Backup:
    """Dump the database consistently into `directory`; returns the backup with its manifest."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = now or datetime.now(UTC)
    name = f"{PREFIX}{created:%Y%m%dT%H%M%S.%f}Z"
    dump, partial = directory / f"{name}.dump", directory / f".{name}.dump.partial"
    pg_dump = pg_bin("pg_dump")
    args, env = _libpq(owner_url)
    try:
        connection = await asyncpg.connect(owner_url, server_settings=_SYSTEM)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise BackupError(f"cannot connect as the owner role: {exc}") from exc
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # private before pg_dump writes
    try:
        async with connection.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await connection.fetchval("select pg_export_snapshot()")
            counts = await _row_counts(connection)
            database = await connection.fetchval("select current_database()")
            server_version = await connection.fetchval("show server_version")
            # The transaction stays open until pg_dump has dumped from its snapshot.
            await _run(
                [str(pg_dump), "-Fc", "--enable-row-security", f"--snapshot={snapshot}", "-f", str(partial), *args],
                env,
            )
    except BaseException as exc:
        partial.unlink(missing_ok=True)
        if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
            raise BackupError(f"backup failed: {exc}") from exc
        raise
    finally:
        await connection.close()
    partial.replace(dump)
    manifest = {
        "file": dump.name,
        "sha256": sha256_of(dump),
        "size": dump.stat().st_size,
        "created_at": created.isoformat(),
        "database": database,
        "server_version": server_version,
        "pg_dump_version": (await _run([str(pg_dump), "--version"], env)).strip(),
        "format": "custom",
        "consistency": "row counts and dump share one exported REPEATABLE READ snapshot",
        "row_counts": counts,
    }
    manifest_path = directory / f"{name}.json"
    write_private_json(manifest_path, manifest)  # last: a backup without a manifest does not count
    return Backup(dump=dump, manifest_path=manifest_path, manifest=manifest)


# -- restore drill ----------------------------------------------------------------------------------------


def verify_checksum(backup: Backup) -> None:
    expected = backup.manifest
    if not backup.dump.exists():
        raise BackupError(f"{backup.dump} is missing")
    size = backup.dump.stat().st_size
    if size != expected.get("size"):
        raise BackupError(
            f"checksum failed: {backup.dump.name} is {size} bytes, the manifest says {expected.get('size')}"
        )
    actual = sha256_of(backup.dump)
    if actual != expected.get("sha256"):
        raise BackupError(
            f"checksum failed: {backup.dump.name} sha256 {actual}, the manifest says {expected.get('sha256')}"
        )


async def restore_check(owner_url: str, app_url: str, directory: Path, *, admin_url: str | None = None) -> Drill:
    """Restore the newest backup into a scratch database and check it; records and returns the drill.

    `admin_url` (a role that may create databases) creates and drops the scratch database; by default the
    owner role itself, which then needs CREATEDB."""
    directory = Path(directory)
    drill = Drill(backup=None, started_at=datetime.now(UTC).isoformat())
    admin = admin_url or owner_url
    try:
        backup = latest_backup(directory)
        if backup is None:
            raise BackupError(f"no backup in {directory}")
        drill.backup = backup.dump.name
        verify_checksum(backup)
        drill.details["checksum"] = "ok"
        drill.database = f"restore_check_{datetime.now(UTC):%Y%m%d%H%M%S}_{secrets.token_hex(3)}"
        await _create_scratch(admin, drill.database, owner=_role(owner_url), app=_role(app_url))
        args, env = _libpq(owner_url, database=drill.database)
        await _run(
            [str(pg_bin("pg_restore")), "--exit-on-error", "--single-transaction", "--no-password", *args,
             str(backup.dump)],
            env,
        )  # fmt: skip
        drill.details["restore"] = "ok"
        await _check_restored(drill, backup, with_database(owner_url, drill.database))
        await _check_ledger(drill, with_database(app_url, drill.database))
    except (BackupError, OSError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        drill.problems.append(str(exc) or type(exc).__name__)
    finally:
        if drill.database is not None:
            try:
                await _drop_scratch(admin, drill.database)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                drill.problems.append(f"could not drop {drill.database}: {exc}")
        drill.passed = not drill.problems
        drill.finished_at = datetime.now(UTC).isoformat()
        record_drill(directory, drill)
    return drill


async def _create_scratch(admin_url: str, database: str, *, owner: str, app: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        # Names are checked plain identifiers (_NAME, and ours); CREATE DATABASE takes no parameters.
        try:
            await connection.execute(f'create database "{database}" owner "{owner}"')
        except asyncpg.InsufficientPrivilegeError as exc:
            raise BackupError(
                f"cannot create the scratch database: {exc}; set {ADMIN_URL_ENV} to a role that may create databases"
            ) from exc
        await connection.execute(f'revoke all on database "{database}" from public')
        await connection.execute(f'grant connect on database "{database}" to "{app}"')
    finally:
        await connection.close()


async def _drop_scratch(admin_url: str, database: str) -> None:
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(f'drop database if exists "{database}" with (force)')
    finally:
        await connection.close()


async def _check_restored(drill: Drill, backup: Backup, scratch_owner_url: str) -> None:
    connection = await asyncpg.connect(scratch_owner_url, server_settings=_SYSTEM)
    try:
        counts = await _row_counts(connection)
        expected: dict[str, int] = backup.manifest.get("row_counts", {})
        differences = {
            table: {"manifest": expected.get(table), "restored": counts.get(table)}
            for table in sorted(set(expected) | set(counts))
            if expected.get(table) != counts.get(table)
        }
        drill.details["row_counts"] = {"tables": len(counts), "rows": sum(counts.values()), "differences": differences}
        for table, pair in differences.items():
            drill.problems.append(f"row count of {table}: manifest {pair['manifest']}, restored {pair['restored']}")
        tables = await connection.fetch(TENANT_TABLES_SQL)
        rls_problems = [
            f"{row['relname']}: {problem}"
            for row in tables
            for problem, failed in (
                ("row level security is not enabled", not row["relrowsecurity"]),
                ("row level security is not forced", not row["relforcerowsecurity"]),
                ("no policy", not row["policies"]),
                ("no policy checks app.tenant_id in USING and WITH CHECK", row["policies"] and not row["isolating"]),
            )
            if failed
        ]
        if not tables:
            rls_problems.append("no tenant tables found")
        drill.details["rls"] = {"tenant_tables": len(tables), "problems": rls_problems}
        drill.problems.extend(f"rls: {problem}" for problem in rls_problems)
    finally:
        await connection.close()


async def _check_ledger(drill: Drill, scratch_app_url: str) -> None:
    """`verify_ledger()` as the app role on the restored database (its own `system_tx` sets the platform
    scope), in a child process: the ledger code runs on the process-wide engine, which a caller (the API,
    a test) may already be using for the live database."""
    env = {**os.environ, _LEDGER_DSN_ENV: scratch_app_url}
    output = await _run([sys.executable, "-m", "controlplane.ops.backups"], env)
    report = json.loads(output.strip().splitlines()[-1])
    drill.details["ledger"] = report
    if not report["ok"]:
        drill.problems.append(f"ledger verification failed on the restored database: {report}")


def _verify_ledger_main() -> None:

    report = run_with_pool(os.environ[_LEDGER_DSN_ENV], billing.verify_ledger)
    summary = {
        "ok": report.ok,
        "journals": report.journals,
        "postings": report.postings,
        "unbalanced_journals": len(report.unbalanced_journals),
        "receivable_differences": len(report.receivable_differences),
        "invoices_without_journal": len(report.invoices_without_journal),
        "escrow_differences": len(report.escrow_differences),
        "payee_postings_without_release": len(report.payee_postings_without_release),
        "credit_liability_differences": len(report.credit_liability_differences),
    }
    sys.stdout.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    _verify_ledger_main()
