"""Readiness, the parts without services: quantiles from a /metrics text, the required-check rules, the
backup folder, and the table."""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from controlplane.core.settings import Settings
from controlplane.ops.readiness import (
    CHECK_NAMES,
    CheckResult,
    Options,
    Report,
    buckets_of,
    error_ratio,
    histogram_quantile,
    latest_backup,
    parse_exposition,
    render_table,
    required_checks,
)
from controlplane.ops.readiness._model import ALWAYS_REQUIRED, REQUIRED_IN_PRODUCTION, Context
from controlplane.ops.readiness._operations import backups
from controlplane.ops.readiness._promtext import BILLING_LAST_SUCCESS, DB_SECONDS, HTTP_SECONDS, gauge_max

EXPOSITION = """\
# HELP controlplane_http_request_duration_seconds Time to answer an HTTP request.
# TYPE controlplane_http_request_duration_seconds histogram
controlplane_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/a",status="200"} 50.0
controlplane_http_request_duration_seconds_bucket{le="0.5",method="GET",route="/a",status="200"} 90.0
controlplane_http_request_duration_seconds_bucket{le="1.0",method="GET",route="/a",status="200"} 100.0
controlplane_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/a",status="200"} 100.0
controlplane_http_request_duration_seconds_count{method="GET",route="/a",status="200"} 100.0
controlplane_http_request_duration_seconds_sum{method="GET",route="/a",status="200"} 21.0
controlplane_http_request_duration_seconds_bucket{le="0.1",method="POST",route="/b",status="503"} 0.0
controlplane_http_request_duration_seconds_bucket{le="0.5",method="POST",route="/b",status="503"} 0.0
controlplane_http_request_duration_seconds_bucket{le="1.0",method="POST",route="/b",status="503"} 100.0
controlplane_http_request_duration_seconds_bucket{le="+Inf",method="POST",route="/b",status="503"} 100.0
controlplane_http_request_duration_seconds_count{method="POST",route="/b",status="503"} 100.0
controlplane_http_request_duration_seconds_sum{method="POST",route="/b",status="503"} 80.0
# HELP controlplane_http_requests_total HTTP requests answered.
# TYPE controlplane_http_requests_total counter
controlplane_http_requests_total{method="GET",route="/a",status="200"} 100.0
controlplane_http_requests_total{method="POST",route="/b",status="503"} 100.0
# HELP controlplane_db_query_duration_seconds Time PostgreSQL took to answer one query.
# TYPE controlplane_db_query_duration_seconds histogram
controlplane_db_query_duration_seconds_bucket{le="0.001"} 0.0
controlplane_db_query_duration_seconds_bucket{le="0.01"} 10.0
controlplane_db_query_duration_seconds_bucket{le="+Inf"} 20.0
controlplane_db_query_duration_seconds_count 20.0
controlplane_db_query_duration_seconds_sum 3.0
# HELP controlplane_billing_last_success_timestamp_seconds When a billing cycle last finished.
# TYPE controlplane_billing_last_success_timestamp_seconds gauge
controlplane_billing_last_success_timestamp_seconds 1.7e+09
"""


def test_p95_of_a_histogram_summed_over_its_label_sets() -> None:
    samples = parse_exposition(EXPOSITION)
    buckets = buckets_of(samples, HTTP_SECONDS)
    # `sum by (le)`: /a and /b added bucket by bucket.
    assert buckets == [(0.1, 50.0), (0.5, 90.0), (1.0, 200.0), (math.inf, 200.0)]
    # Rank 0.95 * 200 = 190 falls in (0.5, 1.0], which holds observations 90..200: 0.5 + 0.5 * 100/110.
    assert histogram_quantile(0.95, buckets) == pytest.approx(0.5 + 0.5 * 100 / 110)
    # The median, 100, is in the same bucket: 0.5 + 0.5 * 10/110; the 25th percentile interpolates from 0.
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.5 + 0.5 * 10 / 110)
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.1 * 50 / 50)


def test_p95_of_one_label_set_and_the_edges() -> None:
    only_a = [(0.1, 50.0), (0.5, 90.0), (1.0, 100.0), (math.inf, 100.0)]
    assert histogram_quantile(0.95, only_a) == pytest.approx(0.75)  # 0.5 + 0.5 * (95 - 90) / 10
    # Past the highest finite bound, PromQL answers that bound.
    db = buckets_of(parse_exposition(EXPOSITION), DB_SECONDS)
    assert db == [(0.001, 0.0), (0.01, 10.0), (math.inf, 20.0)]
    assert histogram_quantile(0.95, db) == pytest.approx(0.01)
    # Nothing observed, or no +Inf bucket: no answer rather than a reassuring zero.
    assert histogram_quantile(0.95, [(0.1, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.95, []) is None
    assert histogram_quantile(0.95, [(0.1, 3.0)]) is None


def test_error_ratio_and_the_billing_gauge() -> None:
    samples = parse_exposition(EXPOSITION)
    assert error_ratio(samples) == (0.5, 200.0)
    assert error_ratio([]) is None
    assert gauge_max(samples, BILLING_LAST_SUCCESS) == 1.7e9


def _settings(env: str = "development") -> Settings:
    return Settings(env=env)  # type: ignore[arg-type]


def test_which_checks_are_required() -> None:
    assert required_checks(_settings(), Options(), {}) == ALWAYS_REQUIRED
    production = required_checks(_settings("production"), Options(), {})
    assert production == ALWAYS_REQUIRED | REQUIRED_IN_PRODUCTION
    assert "celery_beat" not in production
    assert "celery_workers" in required_checks(_settings(), Options(), {"CONTROLPLANE_REQUIRE_WORKERS": "1"})
    waived = required_checks(_settings("production"), Options(), {"CONTROLPLANE_REQUIRE_WORKERS": "0"})
    assert "celery_workers" not in waived and "backups" in waived
    assert "backups" in required_checks(_settings(), Options(require=frozenset({"backups"})), {})


def _backup(directory: Path, made: datetime, name: str = "controlplane-20260101T000000.000000Z") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.dump").write_bytes(b"PGDMP")
    manifest = {"file": f"{name}.dump", "created_at": made.isoformat(), "sha256": "x", "size": 5}
    (directory / f"{name}.json").write_text(json.dumps(manifest))


def _drills(directory: Path, *passed: bool) -> None:
    now = datetime.now(UTC)
    records = [
        {
            "backup": "controlplane-20260101T000000.000000Z.dump",
            "started_at": (now - timedelta(hours=len(passed) - i, minutes=5)).isoformat(),
            "finished_at": (now - timedelta(hours=len(passed) - i)).isoformat(),
            "passed": ok,
            "details": {},
            "problems": [] if ok else ["checksum failed"],
        }
        for i, ok in enumerate(passed)
    ]
    (directory / "restore-drills.json").write_text(json.dumps(records))


def _remove_dumps(directory: Path) -> None:
    for dump in directory.glob("*.dump"):
        dump.unlink()


async def _backups_check(directory: Path, max_age_hours: float = 26) -> CheckResult:
    outcome = await backups(Context(_settings(), Options(backup_dir=directory, backup_max_age_hours=max_age_hours)))
    return CheckResult("backups", outcome.passed, outcome.observed, "", True, outcome.detail, outcome.value)


async def test_backups_fresh_and_drilled_pass(tmp_path: Path) -> None:
    _backup(tmp_path, datetime.now(UTC) - timedelta(hours=3))
    _drills(tmp_path, False, True)
    result = await _backups_check(tmp_path)
    assert result.passed, result
    assert result.observed.startswith("3.0 h old, drill passed")


async def test_backups_old_missing_or_with_a_failed_drill_fail(tmp_path: Path) -> None:
    assert (await _backups_check(tmp_path / "none")).observed == "no backup"
    _backup(tmp_path, datetime.now(UTC) - timedelta(hours=30))
    no_drill = await _backups_check(tmp_path)
    assert not no_drill.passed and "older than 26 h" in no_drill.detail and "no restore drill" in no_drill.detail
    assert (await _backups_check(tmp_path, max_age_hours=48)).detail.startswith("no restore drill")
    _drills(tmp_path, True, False)  # the last drill failed, though an earlier one passed
    failed = await _backups_check(tmp_path, max_age_hours=48)
    assert not failed.passed and "drill FAILED" in failed.observed and "checksum failed" in failed.detail
    # A manifest whose dump is gone is not a backup.
    _remove_dumps(tmp_path)
    assert not (await _backups_check(tmp_path, max_age_hours=48)).passed


async def test_backups_without_the_backups_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "controlplane.ops.backups", None)  # import fails: the fallback reader
    _backup(tmp_path, datetime.now(UTC) - timedelta(hours=1), name="other")
    (tmp_path / "partial.dump").write_bytes(b"")  # no manifest: not complete, not counted
    found = latest_backup(tmp_path)
    assert found is not None and found[0].name == "other.dump"
    _drills(tmp_path, True)
    assert (await _backups_check(tmp_path)).passed


def test_the_table_says_what_is_required_and_what_failed() -> None:
    results = tuple(
        CheckResult(name, name != "redis", "observed", "budget", name in ALWAYS_REQUIRED, "why") for name in CHECK_NAMES
    )
    table = render_table(Report("development", results, datetime.now(UTC)))
    header = table.splitlines()[0].split()
    assert header == ["CHECK", "REQUIRED", "STATUS", "OBSERVED", "BUDGET"]
    assert "NOT READY: required checks failed: redis" in table
    assert [r.status for r in results if r.name in ("redis", "postgres")] == ["pass", "fail"]
    informational = CheckResult("billing", False, "not observed", "b", False, "x", measured=False)
    assert informational.status == "skip"
    assert CheckResult("backups", False, "no backup", "b", False).status == "warn"
