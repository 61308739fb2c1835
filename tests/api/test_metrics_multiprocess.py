"""With PROMETHEUS_MULTIPROC_DIR (API and workers in several processes) the scrape merges them all."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def test_multiprocess_scrape_merges_processes_and_passes_promtool(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    # Two other processes record a request each (as two API workers would).
    record = (
        "from controlplane.core import metrics; "
        "metrics.HTTP_REQUESTS_TOTAL.labels(method='GET', route='/v1/tenants', status='200').inc()"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", record], env=env, check=True, timeout=60)  # noqa: S603
    scrape = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from controlplane.core import metrics; sys.stdout.write(metrics.exposition()[0].decode())",
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert 'controlplane_http_requests_total{method="GET",route="/v1/tenants",status="200"} 2.0' in scrape
    assert "process_resident_memory_bytes" in scrape
    promtool = shutil.which("promtool")
    assert promtool
    check = subprocess.run(  # noqa: S603
        [promtool, "check", "metrics"], input=scrape, capture_output=True, text=True, check=False, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
