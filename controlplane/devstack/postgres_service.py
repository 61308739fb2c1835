"""PostgreSQL 16 from the pgserver wheel's binaries, on TCP 127.0.0.1 only, scram-sha-256 passwords.

Roles follow the RLS rules of ARCHITECTURE.md: `controlplane_owner` owns the database and its `public`
schema (migrations run as it); `controlplane_app` owns nothing and is what the app connects as, so row
level security applies to it. Neither is superuser nor BYPASSRLS.

PostgreSQL refuses to run as root; under root we do what pgserver does: run initdb and the server as
a `pgserver` system account, after opening traversal of the folders it needs.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import warnings
from collections.abc import Mapping
from pathlib import Path

from controlplane.devstack.errors import DevStackError
from controlplane.devstack.files import read_json, write_private, write_private_json
from controlplane.devstack.processes import ProcessRecord, RunAs, spawn

DATABASE = "controlplane"
SUPERUSER = "postgres"
OWNER_ROLE = "controlplane_owner"
APP_ROLE = "controlplane_app"
SYSTEM_ACCOUNT = "pgserver"  # the same account pgserver itself creates when run as root

# Idempotent: roles and the database are created when missing, then their attributes and ownership
# are (re)asserted, so an older or hand-edited dev database converges. Passwords come in through the
# environment (\getenv) rather than argv, where `ps` would show them.
BOOTSTRAP_SQL = f"""
\\set ON_ERROR_STOP on
\\getenv owner_password DEVSTACK_OWNER_PASSWORD
\\getenv app_password DEVSTACK_APP_PASSWORD
SELECT 'CREATE ROLE {OWNER_ROLE}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{OWNER_ROLE}')
\\gexec
ALTER ROLE {OWNER_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION
    PASSWORD :'owner_password';
SELECT 'CREATE ROLE {APP_ROLE}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}')
\\gexec
ALTER ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION INHERIT
    PASSWORD :'app_password';
SELECT 'CREATE DATABASE {DATABASE} OWNER {OWNER_ROLE}'
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{DATABASE}')
\\gexec
ALTER DATABASE {DATABASE} OWNER TO {OWNER_ROLE};
REVOKE ALL ON DATABASE {DATABASE} FROM PUBLIC;
GRANT CONNECT ON DATABASE {DATABASE} TO {APP_ROLE};
\\connect {DATABASE}
ALTER SCHEMA public OWNER TO {OWNER_ROLE};
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO {APP_ROLE};
"""  # noqa: S608 - module constants only, no input


class PostgresService:
    name = "postgres"
    provides = ("DATABASE_URL", "DATABASE_OWNER_URL")
    port_names = ("postgres",)
    stop_signal = signal.SIGINT  # "fast" shutdown; SIGTERM would wait for every client to disconnect

    def __init__(self, root: Path, *, durable: bool = True) -> None:
        self.durable = durable
        self.dir = root / "postgres"
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.credentials_file = self.dir / "credentials.json"

    def start(self, ports: Mapping[str, int]) -> ProcessRecord:
        self.dir.mkdir(parents=True, exist_ok=True)
        run_as = _unprivileged_account(self.dir) if os.geteuid() == 0 else None
        if not (self.data / "PG_VERSION").exists():
            self._initdb(run_as)
        command = [
            str(_bin_dir() / "postgres"),
            "-D", str(self.data),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={ports['postgres']}",
            "-c", "unix_socket_directories=",  # TCP only: no socket file in /tmp to collide on
        ]  # fmt: skip
        if not self.durable:  # a test run's throwaway cluster: nothing it writes must outlive a crash
            command += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        return spawn(command, self.log, cwd=self.dir, run_as=run_as)

    def is_ready(self, ports: Mapping[str, int]) -> bool:
        # pg_isready, not a bare TCP connect: the server listens before it accepts ("starting up").
        check = [str(_bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(ports["postgres"])]
        return subprocess.run(check, check=False).returncode == 0  # noqa: S603

    def bootstrap(self, ports: Mapping[str, int]) -> dict[str, str]:
        passwords = self._credentials()
        port = ports["postgres"]
        conninfo = f"host=127.0.0.1 port={port} user={SUPERUSER} dbname=postgres sslmode=disable"
        env = {
            **os.environ,
            "PGPASSWORD": passwords[SUPERUSER],
            "DEVSTACK_OWNER_PASSWORD": passwords[OWNER_ROLE],
            "DEVSTACK_APP_PASSWORD": passwords[APP_ROLE],
        }
        result = subprocess.run(  # noqa: S603
            [str(_bin_dir() / "psql"), "-X", "-q", "-d", conninfo, "-f", "-"],
            input=BOOTSTRAP_SQL,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            raise DevStackError(f"postgres bootstrap failed:\n{result.stderr}")
        return {
            "DATABASE_URL": f"postgresql://{APP_ROLE}:{passwords[APP_ROLE]}@127.0.0.1:{port}/{DATABASE}",
            "DATABASE_OWNER_URL": f"postgresql://{OWNER_ROLE}:{passwords[OWNER_ROLE]}@127.0.0.1:{port}/{DATABASE}",
        }

    def _credentials(self) -> dict[str, str]:
        """Random passwords made at first start and kept (0600) for every later one."""
        if self.credentials_file.exists():
            return dict(read_json(self.credentials_file))
        # hex: no character needs escaping in a URL or in SQL
        passwords = {role: secrets.token_hex(24) for role in (SUPERUSER, OWNER_ROLE, APP_ROLE)}
        write_private_json(self.credentials_file, passwords)
        return passwords

    def _initdb(self, run_as: RunAs | None) -> None:
        shutil.rmtree(self.data, ignore_errors=True)  # a half-made cluster from a failed first start
        self.data.mkdir(mode=0o700)
        pwfile = self.dir / "superuser.pw"
        write_private(pwfile, self._credentials()[SUPERUSER])
        if run_as is not None:
            os.chown(self.data, run_as.uid, run_as.gid)
            os.chown(pwfile, run_as.uid, run_as.gid)
        command = [
            str(_bin_dir() / "initdb"),
            "-D", str(self.data),
            "-U", SUPERUSER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",  # C collation: the same ordering on every developer's machine
        ]  # fmt: skip
        try:
            result = subprocess.run(  # noqa: S603
                command,
                capture_output=True,
                text=True,
                check=False,
                cwd=self.dir,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise DevStackError(f"initdb failed:\n{result.stdout}\n{result.stderr}")


def _bin_dir() -> Path:
    _import_pgserver()
    from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _import_pgserver() -> None:
    """Import the devstack extra quietly: its import probes XDG_RUNTIME_DIR, which we never use."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver  # noqa: F401
    except ImportError as error:
        raise DevStackError("pgserver is not installed: install the `devstack` extra") from error


def _unprivileged_account(service_dir: Path) -> RunAs:
    """As pgserver does under root: a system account, and enough permissions for it to reach its files."""
    import stat

    _import_pgserver()
    from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

    entry = ensure_user_exists(SYSTEM_ACCOUNT)
    assert entry is not None
    bin_dir = _bin_dir()
    read = stat.S_IRGRP | stat.S_IROTH
    execute = stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(service_dir)  # its parents
    service_dir.chmod(service_dir.stat().st_mode | read | execute)  # and itself (credentials stay 0600)
    ensure_prefix_permissions(bin_dir)
    ensure_folder_permissions(bin_dir, read | execute)
    ensure_folder_permissions(bin_dir.parent / "lib", read)
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid)
