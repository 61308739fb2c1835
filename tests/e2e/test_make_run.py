"""The whole stack as `make run` starts it: embedded services, API, worker and beat; Ctrl-C stops all.

This is the issue's "done when": /health/ready is 200 with all services, and a token from
`controlplane tokens issue` works against /v1/tenants.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICE_ENV = ("DATABASE_URL", "DATABASE_OWNER_URL", "REDIS_URL", "BAO_ADDR", "BAO_TOKEN", "STRIPE_API_BASE")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(  # noqa: S603 (our own interpreter and module)
        [sys.executable, "-m", "controlplane.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _tenant_lists_served(base: str) -> int:
    scrape = httpx.get(f"{base}/metrics", timeout=10).text
    served = [
        float(line.rsplit(" ", 1)[1])
        for line in scrape.splitlines()
        if line.startswith("controlplane_http_requests_total{")
        and 'method="GET"' in line
        and 'route="/v1/tenants"' in line
        and 'status="200"' in line
    ]
    return int(sum(served))


@pytest.mark.slow
def test_run_serves_a_ready_api_and_stops_everything_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    # Nothing configured: every service is embedded, under a folder of this test's own.
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
    env |= {"CONTROLPLANE_DEVSTACK_DIR": str(tmp_path / "devstack"), "PORT": str(port), "API_WORKERS": "2"}
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [sys.executable, "-m", "controlplane.cli", "run"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        ready = None
        while time.monotonic() < deadline and run.poll() is None:
            try:
                ready = httpx.get(f"{base}/health/ready", timeout=2)
                if ready.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        assert ready is not None and ready.status_code == 200, (tmp_path / "run.log").read_text()[-3000:]
        assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "openbao": "ok"}

        stack = dict(line.split("=", 1) for line in _cli(env, "devstack", "env").splitlines())
        assert set(SERVICE_ENV) <= set(stack) and stack["CONTROLPLANE_URL"] == base
        _cli(
            env,
            "users",
            "create",
            "--email",
            "ops@example.com",
            "--password",
            "a-long-operator-password",
            "--role",
            "platform_staff",
        )
        token = _cli(env, "tokens", "issue", "--email", "ops@example.com")
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{base}/v1/tenants", json={"name": "E2E", "slug": "e2e", "currency": "EUR"}, headers=headers, timeout=10
        )
        assert created.status_code == 201, created.text
        listed = httpx.get(f"{base}/v1/tenants", headers=headers, timeout=10)
        assert [t["slug"] for t in listed.json()["items"]] == ["e2e"]
        # The console beside the API, with the demo plan a newcomer signs up to.
        assert f"Console {base}/console/" in (tmp_path / "run.log").read_text()
        signup = httpx.get(f"{base}/console/signup", timeout=10)
        assert signup.status_code == 200 and "content-security-policy" in signup.headers
        plans = httpx.get(f"{base}/v1/plans", headers=headers, timeout=10).json()["items"]
        assert [(p["code"], p["trial_days"]) for p in plans] == [("starter", 14)]
        assert httpx.get(f"{base}/v1/tenants", timeout=10).status_code == 401
        children = _descendants(run.pid)
        assert len(children) >= 3  # api, worker, beat (and the worker's pool)
        # Two API processes serve the port; /metrics, from whichever answers, counts what both served.
        [api] = [child for child in children if "uvicorn" in " ".join(child.cmdline())]
        # (uvicorn's workers are spawned; the spawn's resource tracker is a child too)
        assert len([child for child in api.children() if "spawn_main" in " ".join(child.cmdline())]) == 2
        for _ in range(20):
            assert httpx.get(f"{base}/v1/tenants", headers=headers, timeout=10).status_code == 200
        assert {_tenant_lists_served(base) for _ in range(4)} == {21}
    finally:
        run.send_signal(signal.SIGINT)  # what Ctrl-C delivers
        code = run.wait(timeout=60)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    time.sleep(1)
    leftovers = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert leftovers == []
    services = [p for p in psutil.process_iter(["cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert services == [], [p.info["cmdline"] for p in services]
