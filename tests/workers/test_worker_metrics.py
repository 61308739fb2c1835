"""A worker pod's /metrics: what its prefork children did, merged through PROMETHEUS_MULTIPROC_DIR."""

from __future__ import annotations

import shutil
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.workers._worker import running_worker


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_a_prefork_worker_serves_its_childrens_task_metrics(
    stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("worker-metrics")
    port = _free_port()
    extra = {"PROMETHEUS_MULTIPROC_DIR": str(folder / "prometheus"), "CONTROLPLANE_WORKER_METRICS_PORT": str(port)}
    Path(extra["PROMETHEUS_MULTIPROC_DIR"]).mkdir()
    pool = ("--pool", "prefork", "--concurrency", "2")
    with running_worker(stack_env, folder / "worker.log", pool, extra_env=extra) as client:
        # The scheduled form: nothing is due in a fresh stack's first minute, so each run is skipped.
        for _ in range(3):
            client.send_task("controlplane.secrets.rotate").get(timeout=60)
        scrape = _scrape(port)

    runs = [line for line in scrape.splitlines() if line.startswith("controlplane_celery_task_runs_total{")]
    assert runs == ['controlplane_celery_task_runs_total{outcome="success",task="controlplane.secrets.rotate"} 3.0']
    assert 'controlplane_secret_rotations_total{outcome="skipped",secret="jwt_signing_key"} 3.0' in scrape
    promtool = shutil.which("promtool")
    assert promtool, "promtool is installed by `make install` (Debian package prometheus)"
    checked = subprocess.run([promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, check=False)  # noqa: S603
    assert checked.returncode == 0, checked.stdout + checked.stderr
