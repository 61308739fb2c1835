"""Backups and restore drills against the test stack: a backup of real rows restores and passes its drill;
a tampered dump fails on its checksum, an edited manifest on its row counts, a weakened RLS table and
tampered books on the catalogue and the ledger; every drill is recorded for readiness."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing.ledger.rules import REVENUE, receivable
from controlplane.ops import backups
from tests.conftest import connect_as_inspector
from tests.factories import Factory


@pytest.fixture(scope="module")
def admin_url(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The test stack's superuser (the owner role may not create the scratch database): found in the
    stack's own folder, the one whose state.json names this server."""
    roots = (
        [Path(os.environ["CONTROLPLANE_TEST_DEVSTACK_DIR"])] if os.environ.get("CONTROLPLANE_TEST_DEVSTACK_DIR") else []
    )
    roots += sorted(tmp_path_factory.getbasetemp().glob("devstack*"))
    for root in roots:
        url = backups.devstack_admin_url(root, stack_env["DATABASE_OWNER_URL"])
        if url is not None:
            return url
    pytest.fail(f"no dev stack folder among {roots} runs {stack_env['DATABASE_OWNER_URL'].split('@')[-1]}")


async def _some_rows(factory: Factory) -> dict[str, Any]:
    staff = await factory.staff()
    tenant = await factory.tenant(staff)
    await factory.member(tenant["id"])
    return tenant


async def _scratch_databases(stack_env: dict[str, str]) -> list[str]:
    connection = await connect_as_inspector(stack_env)
    try:
        rows = await connection.fetch("select datname from pg_database where datname like 'restore_check_%'")
        return [row["datname"] for row in rows]
    finally:
        await connection.close()


async def _drill(stack_env: dict[str, str], directory: Path, admin_url: str) -> backups.Drill:
    return await backups.restore_check(
        stack_env["DATABASE_OWNER_URL"], stack_env["DATABASE_URL"], directory, admin_url=admin_url
    )


async def test_a_backup_restores_and_passes_its_drill(
    stack_env: dict[str, str], client: httpx.AsyncClient, factory: Factory, tmp_path: Path, admin_url: str, report: Any
) -> None:
    await _some_rows(factory)
    backup = await backups.create_backup(stack_env["DATABASE_OWNER_URL"], tmp_path)

    manifest = json.loads(backup.manifest_path.read_text())
    assert manifest == backup.manifest
    assert manifest["file"] == backup.dump.name and backup.dump.name.endswith("Z.dump")
    assert manifest["sha256"] == backups.sha256_of(backup.dump) and manifest["size"] == backup.dump.stat().st_size
    assert manifest["database"] == "controlplane" and manifest["server_version"].startswith("16")
    counts = manifest["row_counts"]
    assert counts["public.tenants"] == 1 and counts["public.memberships"] == 1 and counts["public.users"] == 2
    assert backup.dump.read_bytes()[:5] == b"PGDMP"  # custom format
    assert backup.dump.stat().st_mode & 0o777 == 0o600
    assert backups.latest_backup(tmp_path) == backup
    assert 0 <= backup.age_seconds() < 60

    drill = await _drill(stack_env, tmp_path, admin_url)
    assert drill.passed, drill.problems
    assert drill.details["checksum"] == "ok" and drill.details["restore"] == "ok"
    assert drill.details["row_counts"]["differences"] == {}
    assert drill.details["rls"]["tenant_tables"] >= 5 and drill.details["rls"]["problems"] == []
    assert drill.details["ledger"]["ok"] is True
    assert drill.database is not None and drill.database.startswith("restore_check_")
    assert await _scratch_databases(stack_env) == []  # dropped afterwards
    recorded = backups.last_drill(tmp_path)
    assert recorded is not None and recorded["passed"] is True and recorded["backup"] == backup.dump.name
    assert recorded["started_at"] <= recorded["finished_at"]
    report(f"backups: {backup.dump.name} ({manifest['size']} bytes) restored into {drill.database}: passed")


async def test_a_tampered_dump_fails_on_its_checksum(
    stack_env: dict[str, str], client: httpx.AsyncClient, factory: Factory, tmp_path: Path, admin_url: str
) -> None:
    await _some_rows(factory)
    backup = await backups.create_backup(stack_env["DATABASE_OWNER_URL"], tmp_path)
    data = bytearray(backup.dump.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte changed
    backup.dump.write_bytes(bytes(data))

    drill = await _drill(stack_env, tmp_path, admin_url)
    assert not drill.passed
    assert len(drill.problems) == 1 and drill.problems[0].startswith("checksum failed"), drill.problems
    assert drill.database is None and "restore" not in drill.details  # nothing restored from an untrusted file
    recorded = backups.last_drill(tmp_path)
    assert recorded is not None and recorded["passed"] is False and "checksum failed" in recorded["problems"][0]


async def test_row_counts_that_disagree_with_the_manifest_fail(
    stack_env: dict[str, str], client: httpx.AsyncClient, factory: Factory, tmp_path: Path, admin_url: str
) -> None:
    await _some_rows(factory)
    backup = await backups.create_backup(stack_env["DATABASE_OWNER_URL"], tmp_path)
    manifest = json.loads(backup.manifest_path.read_text())
    manifest["row_counts"]["public.tenants"] += 1
    backup.manifest_path.write_text(json.dumps(manifest))

    drill = await _drill(stack_env, tmp_path, admin_url)
    assert not drill.passed
    assert drill.problems == ["row count of public.tenants: manifest 2, restored 1"], drill.problems
    assert drill.details["row_counts"]["differences"] == {"public.tenants": {"manifest": 2, "restored": 1}}
    assert await _scratch_databases(stack_env) == []
    assert backups.last_drill(tmp_path)["passed"] is False  # type: ignore[index]


async def test_weakened_rls_and_tampered_books_fail_the_drill(
    stack_env: dict[str, str], client: httpx.AsyncClient, factory: Factory, tmp_path: Path, admin_url: str
) -> None:
    tenant = await _some_rows(factory)
    victim = uuid.UUID(tenant["id"])
    owner = await connect_as_inspector(stack_env)
    try:
        journal_id = uuid.uuid4()
        async with owner.transaction():  # balanced, but moves 100 of the receivable to revenue
            await owner.execute(
                "insert into ledger_journals (id, tenant_id, source_type, source_id, description) "
                "values ($1, $2, 'payment', $3, 'tampering')",
                journal_id,
                victim,
                uuid.uuid4(),
            )
            await owner.executemany(
                "insert into ledger_postings (tenant_id, journal_id, account, amount_minor, currency) "
                "values ($1, $2, $3, $4, 'EUR')",
                [(victim, journal_id, receivable(victim), -100), (victim, journal_id, REVENUE, 100)],
            )
        await owner.execute("alter table api_keys no force row level security")
        try:
            await backups.create_backup(stack_env["DATABASE_OWNER_URL"], tmp_path)
        finally:
            await owner.execute("alter table api_keys force row level security")
    finally:
        await owner.close()

    drill = await _drill(stack_env, tmp_path, admin_url)
    assert not drill.passed
    assert "rls: api_keys: row level security is not forced" in drill.problems, drill.problems
    assert drill.details["ledger"]["ok"] is False and drill.details["ledger"]["receivable_differences"] == 1
    assert any(problem.startswith("ledger verification failed") for problem in drill.problems), drill.problems
    assert drill.details["row_counts"]["differences"] == {}


def test_drills_keep_the_last_fifty(tmp_path: Path) -> None:
    assert backups.last_drill(tmp_path) is None and backups.latest_backup(tmp_path) is None
    for number in range(backups.KEEP_DRILLS + 5):
        backups.record_drill(tmp_path, backups.Drill(backup=f"b{number}", started_at=str(number), passed=True))
    kept = backups.drills(tmp_path)
    assert len(kept) == backups.KEEP_DRILLS and kept[0]["backup"] == "b5"
    assert backups.last_drill(tmp_path) == kept[-1] and kept[-1]["backup"] == f"b{backups.KEEP_DRILLS + 4}"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "controlplane.cli", "backup", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_the_cli(
    stack_env: dict[str, str], client: httpx.AsyncClient, factory: Factory, tmp_path: Path, admin_url: str
) -> None:
    await _some_rows(factory)
    env = {**stack_env, backups.BACKUP_DIR_ENV: str(tmp_path), backups.ADMIN_URL_ENV: admin_url}

    empty = _cli(env, "restore-check")
    assert empty.returncode == 1 and f"no backup in {tmp_path}" in empty.stderr, (empty.stdout, empty.stderr)
    assert "Traceback" not in empty.stderr

    created = _cli(env, "create")
    assert created.returncode == 0, (created.stdout, created.stderr)
    assert created.stdout.startswith(f"backup {tmp_path}/controlplane-"), created.stdout

    checked = _cli(env, "restore-check")
    assert checked.returncode == 0, (checked.stdout, checked.stderr)
    assert checked.stdout.strip().splitlines()[-1].endswith(": passed"), checked.stdout
    assert [drill["passed"] for drill in backups.drills(tmp_path)] == [False, True]
